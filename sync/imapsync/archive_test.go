package imapsync_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// archived checks that the message with Message-ID id is in the archive
// view of folder, once, with bytes raw, as an indexed row marked archived
// that full-text search finds; that folder has no copy of it, here or
// upstream; and that no archive folder exists upstream.
func (e *env) archived(folder, id string, raw []byte) {
	e.t.Helper()
	view := index.ArchiveFolder(folder)
	if got := e.localMsgs(view)[id]; string(got) != string(raw) {
		e.t.Errorf("%s: %s is %q, want the bytes it had (%d)", view, id, got, len(raw))
	}
	if n := e.localCopies(view, id); n != 1 {
		e.t.Errorf("%s: %d copies of %s, want 1", view, n, id)
	}
	if _, ok := e.localMsgs(folder)[id]; ok {
		e.t.Errorf("%s still holds %s locally", folder, id)
	}
	if _, ok := e.serverMsgs(folder)[id]; ok {
		e.t.Errorf("%s still holds %s upstream", folder, id)
	}
	ctx := context.Background()
	if _, err := e.store.IndexPending(ctx, e.root, nil); err != nil {
		e.t.Fatal(err)
	}
	f := e.folderRow(view)
	subject := index.ParseHeader(raw).Subject
	err := e.store.Read(ctx, func(tx *index.ReadTx) error {
		ms, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		var row *index.Message
		for _, m := range ms {
			if m.Header.MessageID == id {
				row = m
			}
		}
		if row == nil || row.UID != 0 {
			e.t.Errorf("%s: row of %s = %+v, want one without UID", view, id, row)
			return nil
		}
		if at, err := tx.ArchivedAt(row.ID); err != nil || at.IsZero() {
			e.t.Errorf("%s: %s not marked archived (%v, %v)", view, id, at, err)
		}
		hits, err := tx.Search(subject, 100)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(hits, func(h index.SearchResult) bool { return h.ID == row.ID && h.FolderName == view }) {
			e.t.Errorf("search %q does not find %s in %s", subject, id, view)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	defer c.Logout()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range list {
		if strings.Contains(l.Mailbox, "Archive-Deleted") {
			e.t.Errorf("server has folder %q", l.Mailbox)
		}
	}
}

// rawByUID returns the Message-ID and bytes of folder's file with uid.
func (e *env) rawByUID(folder string, uid uint32) (string, []byte) {
	e.t.Helper()
	en := e.entryByUID(folder, uid)
	raw, err := os.ReadFile(e.dir(folder).FilePath(en))
	if err != nil {
		e.t.Fatal(err)
	}
	return index.ParseHeader(raw).MessageID, raw
}

// quiet fails unless a run changed nothing on either side.
func (e *env) quiet(what string) {
	e.t.Helper()
	res, _ := e.sync()
	for _, l := range res.FolderActions {
		if strings.Contains(l, index.ArchivePrefix) {
			e.t.Errorf("%s: the run planned %q", what, l)
		}
	}
	if tot := res.Totals(); tot.Uploaded+tot.ExpungedRemote+tot.FlagsPushed+tot.New+tot.Expunged+tot.FlagsChanged+tot.Archived != 0 {
		e.t.Errorf("%s: the next run did something: %+v", what, tot)
	}
}

// TestArchive: in an account with Options.Archive, a message expunged
// upstream, one whose file a mail client removed and one expunged through
// the store's door (the local IMAP endpoint) all end up in the local-only
// archive view with their bytes, indexed and searchable, never uploaded
// again nor back in their folder; purge removes them for good.
func TestArchive(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.Archive, o.CreateFolders, o.RemoveFolders = true, true, true }
	e.seedSpread(1, 8, "INBOX", "Work")
	e.sync()
	ctx := context.Background()

	// Expunged upstream.
	id1, raw1 := e.rawByUID("INBOX", 1)
	e.serverExpunge("INBOX", 1)
	res := e.parity("upstream expunge")
	if tot := res.Totals(); tot.Archived != 1 || tot.Expunged != 0 || tot.Uploaded != 0 {
		t.Errorf("upstream expunge: %+v, want 1 archived, nothing expunged or uploaded", tot)
	}
	e.archived("INBOX", id1, raw1)
	e.quiet("upstream expunge")
	e.archived("INBOX", id1, raw1)

	// Deleted locally by a mail client; a killed run left a copy of it in
	// the view without its row (renamed there by the door, not committed).
	id2, raw2 := e.rawByUID("INBOX", 2)
	en2 := e.entryByUID("INBOX", 2)
	if err := os.Remove(e.dir("INBOX").FilePath(en2)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir(index.ArchiveFolder("INBOX")).Path, "new", en2.Key), raw2, 0o600); err != nil {
		t.Fatal(err)
	}
	res = e.parity("local deletion")
	if tot := res.Totals(); tot.Archived != 1 || tot.ExpungedRemote != 1 || tot.Uploaded != 0 || tot.New != 0 {
		t.Errorf("local deletion: %+v, want 1 archived and deleted upstream", tot)
	}
	e.archived("INBOX", id2, raw2)
	e.quiet("local deletion")

	// Expunged through the door (agent/imapd's EXPUNGE).
	id3, raw3 := e.rawByUID("Work", 1)
	if err := e.store.Expunge(ctx, []*index.Message{e.rowByUID("Work", 1)}); err != nil {
		t.Fatal(err)
	}
	if got := e.localMsgs(index.ArchiveFolder("Work"))[id3]; string(got) != string(raw3) {
		t.Errorf("door expunge: not in the archive view at once")
	}
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded != 0 || tot.New != 0 {
		t.Errorf("door expunge: %+v, want nothing uploaded or downloaded", tot)
	}
	e.archived("Work", id3, raw3)
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents open", n)
	}
	e.quiet("door expunge")

	// The folders themselves are as before: every other message on both sides.
	for _, f := range []string{"INBOX", "Work"} {
		if err := sameMsgs(f, e.serverMsgs(f), e.localMsgs(f)); err != nil {
			t.Error(err)
		}
	}

	// A lost index: the view is indexed again from its files (ScanArchive),
	// the folders are matched again by content, nothing moves.
	e.store.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(index.DefaultPath(e.root) + suffix)
	}
	e.openIndex()
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded+tot.New+tot.Archived+tot.ExpungedRemote+tot.Expunged != 0 {
		t.Errorf("after a lost index: %+v, want nothing moved", tot)
	}
	e.archived("INBOX", id1, raw1)
	e.archived("INBOX", id2, raw2)
	e.archived("Work", id3, raw3)
	e.quiet("lost index")

	// Purge removes for good, and nothing comes back.
	var all []index.Archived
	if err := e.store.Read(ctx, func(tx *index.ReadTx) (err error) {
		all, err = tx.ArchivedMessages(e.folderRow("INBOX").Account, time.Time{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("archive view holds %d messages, want 3", len(all))
	}
	msgs := make([]*index.Message, len(all))
	for i, a := range all {
		msgs[i] = a.Message
	}
	if err := e.store.Purge(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"INBOX", "Work"} {
		if n := len(e.localMsgs(index.ArchiveFolder(f))); n != 0 {
			t.Errorf("after purge %s holds %d files", index.ArchiveFolder(f), n)
		}
	}
	e.quiet("purge")
	for _, id := range []string{id1, id2} {
		if e.localCopies("INBOX", id) != 0 {
			t.Errorf("%s came back", id)
		}
	}
}

// Without Archive, an expunge upstream deletes here as before.
func TestArchiveOff(t *testing.T) {
	e := newEnv(t)
	e.seedSpread(2, 3, "INBOX")
	e.sync()
	id, _ := e.rawByUID("INBOX", 1)
	e.serverExpunge("INBOX", 1)
	res := e.parity("upstream expunge")
	if tot := res.Totals(); tot.Expunged != 1 || tot.Archived != 0 {
		t.Errorf("%+v, want 1 expunged", tot)
	}
	if e.localCopies("INBOX", id) != 0 || !e.folderGone(index.ArchiveFolder("INBOX")) {
		t.Error("the message stayed, or an archive view was made")
	}
}

// parity runs a dry run, then the real run, and fails unless the dry run
// planned exactly what the real run did (planSummary, and the archived
// counts); it returns the real run's result.
func (e *env) parity(what string) *imapsync.Result {
	e.t.Helper()
	dry, err := e.runWith(true, false)
	if err != nil {
		e.t.Fatalf("%s: dry run: %v", what, err)
	}
	res, _ := e.sync()
	if d, r := planSummary(dry), planSummary(res); d != r || dry.Totals().Archived != res.Totals().Archived {
		e.t.Errorf("%s: the dry run planned\n%s(%d archived)\nthe real run did\n%s(%d archived)", what, d, dry.Totals().Archived, r, res.Totals().Archived)
	}
	return res
}

// TestArchiveFolderDeleted: with Archive, a folder deleted upstream is
// kept here with every message, even with remove_folders, and not
// created upstream again.
func TestArchiveFolderDeleted(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) {
		o.Archive, o.CreateFolders, o.RemoveFolders, o.Force = true, true, true, true
	}
	e.seedSpread(3, 6, "INBOX", "Work")
	e.sync()
	before := e.localMsgs("Work")
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if err := c.Delete("Work").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	e.sync()
	if err := sameMsgs("Work", before, e.localMsgs("Work")); err != nil {
		t.Error(err)
	}
	if e.serverMsgs("Work") != nil {
		t.Error("Work was created upstream again")
	}
}

// TestArchiveFolderGoneLocally: with Archive, remove_folders and pushed
// deletions, a folder whose Maildir a mail client removed is not deleted
// upstream (its messages would be gone for good): the dry run plans, and
// the real run does, fetching it again (the same folder actions); every message is on both sides
// byte for byte. An empty folder, as the last sync left it, is deleted
// upstream: nothing is lost.
func TestArchiveFolderGoneLocally(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) {
		o.Archive, o.CreateFolders, o.RemoveFolders, o.Force = true, true, true, true
	}
	e.seedSpread(5, 6, "INBOX", "Work")
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if err := c.Create("Empty", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	e.sync()
	server, local := e.serverMsgs("Work"), e.localMsgs("Work")
	if len(server) != 3 {
		t.Fatalf("server Work holds %d messages, want 3", len(server))
	}
	for _, f := range []string{"Work", "Empty"} {
		if err := os.RemoveAll(e.dir(f).Path); err != nil {
			t.Fatal(err)
		}
	}
	dry, err := e.runWith(true, false)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := e.sync()
	planned := slices.Clone(dry.FolderActions)
	for i, a := range planned {
		planned[i] = strings.TrimPrefix(a, "would ")
	}
	if !slices.Equal(planned, res.FolderActions) {
		t.Errorf("the dry run planned %q, the real run did %q", dry.FolderActions, res.FolderActions)
	}
	if got := e.serverMsgs("Work"); got == nil {
		t.Fatalf("server folder Work was deleted (actions %q)", res.FolderActions)
	} else if err := sameMsgs("server Work", server, got); err != nil {
		t.Error(err)
	}
	if err := sameMsgs("local Work", local, e.localMsgs("Work")); err != nil {
		t.Error(err)
	}
	if e.serverMsgs("Empty") != nil {
		t.Errorf("the empty server folder stayed (actions %q)", res.FolderActions)
	}
}

// TestArchiveLostIndexExpunged: with Archive, the index is lost and
// meanwhile a message is expunged upstream. The run that rebuilds the
// index from the Maildir finds the file's ,U= UID gone upstream: the
// message moves to the archive view (byte for byte, one copy, counted as
// archived), it is not removed.
func TestArchiveLostIndexExpunged(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.Archive = true }
	e.seedSpread(7, 4, "INBOX")
	e.sync()
	id, raw := e.rawByUID("INBOX", 1)
	e.store.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(index.DefaultPath(e.root) + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	e.serverExpunge("INBOX", 1)
	e.openIndex()
	res, _ := e.sync()
	if tot := res.Totals(); tot.Archived != 1 || tot.Expunged != 0 {
		t.Errorf("totals %+v, want 1 archived, none expunged", tot)
	}
	e.archived("INBOX", id, raw)
}

// TestArchiveCopyMissing: with Archive, two messages are deleted here and
// the server's FETCH of their copies returns one of them under a UID
// nobody asked for (as good as no body): that one is not archived, so it
// is not expunged upstream either; the other is archived and expunged.
// Once the server answers right, the next run archives it too.
func TestArchiveCopyMissing(t *testing.T) {
	e := newEnv(t)
	e.seedSpread(9, 3, "INBOX")
	var lie atomic.Bool
	p := startRewriteProxy(t, e.d.IMAPAddr(), func(line string) string {
		if lie.Load() && strings.Contains(line, "BODY[]") {
			return strings.Replace(line, "UID 2 ", "UID 77 ", 1)
		}
		return line
	})
	e.opts = func(o *imapsync.Options) { o.Archive, o.Endpoint.Addr, o.Connections = true, p.Addr(), 1 }
	e.sync()
	id1, raw1 := e.rawByUID("INBOX", 1)
	id2, raw2 := e.rawByUID("INBOX", 2)
	for _, uid := range []uint32{1, 2} {
		if err := os.Remove(e.dir("INBOX").FilePath(e.entryByUID("INBOX", uid))); err != nil {
			t.Fatal(err)
		}
	}
	lie.Store(true)
	e.sync()
	e.archived("INBOX", id1, raw1)
	if got := e.serverMsgs("INBOX")[id2]; string(got) != string(raw2) {
		t.Errorf("the message the server sent no copy of is gone upstream (%q)", got)
	}
	if _, ok := e.localMsgs(index.ArchiveFolder("INBOX"))[id2]; ok {
		t.Error("the message the server sent no copy of is in the archive view")
	}
	lie.Store(false)
	e.sync()
	e.archived("INBOX", id1, raw1)
	e.archived("INBOX", id2, raw2)
}
