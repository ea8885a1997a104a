package imapsync_test

// Folder removals are deletions: the valve, the recovery of what has no
// copy upstream, and folders that only look gone (issue 8, defect 5).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// seedSpread seeds n messages without flags, spread over folders in turn.
func (e *env) seedSpread(seed int64, n int, folders ...string) {
	e.t.Helper()
	msgs := corpus.Generate(seed, n, corpus.Options{Folders: folders})
	for i := range msgs {
		msgs[i].Folder = folders[i%len(folders)]
		msgs[i].Flags = nil
	}
	e.d.Seed(e.t, testenv.DefaultUser.Name, msgs)
}

// runWith runs one sync with DryRun and Force set as given.
func (e *env) runWith(dry, force bool) (*imapsync.Result, error) {
	e.t.Helper()
	prev := e.opts
	e.opts = func(o *imapsync.Options) {
		if prev != nil {
			prev(o)
		}
		o.DryRun = dry
	}
	defer func() { e.opts = prev }()
	res, _, err := e.trySync(force)
	return res, err
}

// serverMsgs returns the messages of a server folder (its server name) by
// Message-ID, with LF line ends; nil if the folder does not exist.
func (e *env) serverMsgs(folder string) map[string][]byte {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	defer c.Logout()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil
	}
	out := map[string][]byte{}
	if sel.NumMessages == 0 {
		return out
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, b := range bufs {
		raw := lf(b.FindBodySection(section))
		out[index.ParseHeader(raw).MessageID] = raw
	}
	return out
}

// localMsgs returns the files of a local folder by Message-ID; nil if the
// folder does not exist.
func (e *env) localMsgs(folder string) map[string][]byte {
	e.t.Helper()
	p, err := maildir.FolderDir(e.root, "acct", folder)
	if err != nil {
		e.t.Fatal(err)
	}
	d := &maildir.Dir{Path: p}
	entries, err := d.Scan()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, en := range entries {
		raw, err := os.ReadFile(d.FilePath(en))
		if err != nil {
			e.t.Fatal(err)
		}
		out[index.ParseHeader(raw).MessageID] = raw
	}
	return out
}

// sameMsgs reports the differences between two folders' messages.
func sameMsgs(what string, want, got map[string][]byte) error {
	var diffs []string
	for id, raw := range want {
		if g, ok := got[id]; !ok {
			diffs = append(diffs, "missing "+id)
		} else if !bytes.Equal(g, raw) {
			diffs = append(diffs, "differs "+id)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, "extra "+id)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("%s: %d messages, want %d: %s", what, len(got), len(want), strings.Join(diffs, ", "))
}

func (e *env) folderGone(folder string) bool {
	p, _ := maildir.FolderDir(e.root, "acct", folder)
	_, err := os.Stat(filepath.Join(p, "cur"))
	return errors.Is(err, fs.ErrNotExist)
}

func (e *env) removeLocalFolder(folder string) {
	e.t.Helper()
	p, _ := maildir.FolderDir(e.root, "acct", folder)
	if err := os.RemoveAll(p); err != nil {
		e.t.Fatal(err)
	}
}

func linesWith(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// TestFolderRemoveValve: removing a folder deletes all its messages, so
// with 5 or more it stops without --force, in both directions, and the
// dry run says how many messages each removal deletes.
func TestFolderRemoveValve(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(31, 27, "INBOX", "Big", "Gone") // 9 each
	e.sync()
	e.compare()

	t.Run("deleted locally", func(t *testing.T) {
		before := e.serverMsgs("Big")
		e.removeLocalFolder("Big")
		for _, dry := range []bool{true, false} {
			res, err := e.runWith(dry, false)
			if !errors.Is(err, imapsync.ErrTooManyDeletes) || !strings.Contains(err.Error(), `server folder "Big" (deleted locally) with its 9 messages`) {
				t.Fatalf("dry run %v: err = %v, want the deletion valve for Big's 9 messages", dry, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("not one line: %q", err)
			}
			if res == nil || len(linesWith(res.FolderActions, "Big")) != 0 {
				t.Errorf("dry run %v: actions %q", dry, res.FolderActions)
			}
			if err := sameMsgs("server Big", before, e.serverMsgs("Big")); err != nil {
				t.Fatal(err)
			}
		}
		dry, err := e.runWith(true, true)
		if err != nil {
			t.Fatal(err)
		}
		want := `delete server folder "Big" with its 9 messages (deleted locally)`
		if got := linesWith(dry.FolderActions, "Big"); !slices.Equal(got, []string{"would " + want}) {
			t.Errorf("dry run with --force: %q, want %q", got, "would "+want)
		}
		res, err := e.runWith(false, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := linesWith(res.FolderActions, "Big"); !slices.Equal(got, []string{want}) {
			t.Errorf("run with --force: %q, want %q", got, want)
		}
		if e.serverMsgs("Big") != nil {
			t.Error("server folder Big still there")
		}
	})

	t.Run("deleted upstream", func(t *testing.T) {
		before := e.localMsgs("Gone")
		c := e.d.Client(t, testenv.DefaultUser.Name)
		if err := c.Delete("Gone").Wait(); err != nil {
			t.Fatal(err)
		}
		_, err := e.runWith(false, false)
		if !errors.Is(err, imapsync.ErrTooManyDeletes) || !strings.Contains(err.Error(), `local folder "Gone" (deleted upstream) with its 9 messages`) {
			t.Fatalf("err = %v, want the deletion valve for Gone's 9 messages", err)
		}
		if err := sameMsgs("local Gone", before, e.localMsgs("Gone")); err != nil {
			t.Fatal(err)
		}
		res, err := e.runWith(false, true)
		if err != nil {
			t.Fatal(err)
		}
		if !e.folderGone("Gone") || len(res.Recovered) != 0 {
			t.Errorf("local Gone not removed, or recovered %v", res.Recovered)
		}
		e.compare()
	})
}

// TestFolderRemoveRecovers: a folder deleted upstream takes with it only
// the local files whose copy the server had; the others (never uploaded,
// a ,U= tag the folder never confirmed, changed here since the last sync)
// move to Recovered/<folder>, which the next run uploads.
func TestFolderRemoveRecovers(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(32, 6, "INBOX", "Work") // 3 each
	e.sync()
	e.compare()

	want := map[string][]byte{}
	for i, name := range []string{"1.M1.host", "2.M2.host", "3.M3.host,U=99:2,S"} {
		raw := []byte(fmt.Sprintf("Subject: local %d\nMessage-ID: <local%d@x>\n\nnever uploaded\n", i, i))
		sub := "new"
		if strings.Contains(name, ":2,") {
			sub = "cur"
		}
		if err := os.WriteFile(filepath.Join(e.dir("Work").Path, sub, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("local%d@x", i)] = raw
	}
	// One synced message flagged here since: changed locally, kept.
	d := e.dir("Work")
	var en maildir.Entry
	for _, x := range e.entries("Work") { // a synced one (in cur/ or, unread, new/)
		if !strings.Contains(x.Name, ".M") {
			en = x
			break
		}
	}
	en, err := d.SetFlags(en, en.Flags|maildir.FlagFlagged)
	if err != nil {
		t.Fatal(err)
	}
	id := e.fileMessageID("Work", en)
	want[id] = e.localMsgs("Work")[id]

	c := e.d.Client(t, testenv.DefaultUser.Name)
	if err := c.Delete("Work").Wait(); err != nil {
		t.Fatal(err)
	}
	res, _ := e.sync()
	if !e.folderGone("Work") {
		t.Fatal("local Work not removed")
	}
	if err := sameMsgs("Recovered/Work", want, e.localMsgs("Recovered/Work")); err != nil {
		t.Fatal(err)
	}
	if len(res.Recovered) != 1 || res.Recovered[0] != (imapsync.Recovery{From: "Work", To: "Recovered/Work", Messages: 4}) {
		t.Errorf("Result.Recovered = %+v", res.Recovered)
	}
	if l := linesWith(res.FolderActions, `"Recovered/Work"`); len(l) != 1 || !strings.Contains(l[0], "2 messages") {
		t.Errorf("actions %q: want the removal of Work's 2 messages and the move of 4 to Recovered/Work", res.FolderActions)
	}
	for _, en := range e.entries("Recovered/Work") {
		if en.UID != 0 {
			t.Errorf("recovered file %s keeps a UID of the old folder", en.Name)
		}
		if e.fileMessageID("Recovered/Work", en) == id && en.Flags&maildir.FlagFlagged == 0 {
			t.Errorf("recovered file %s lost its local flag", en.Name)
		}
	}
	// The next run uploads them like any new local folder.
	e.sync()
	server := e.compare()
	if len(server["Recovered/Work"]) != 4 {
		t.Errorf("server Recovered/Work has %d messages, want 4", len(server["Recovered/Work"]))
	}
}

// TestFolderRemoveKeepsNewServerMail: a folder deleted locally is not
// DELETEd upstream when the server got mail for it since the last sync:
// the messages that were here are deleted one by one, the new one comes
// down.
func TestFolderRemoveKeepsNewServerMail(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(33, 4, "INBOX", "Box", "Box", "Box")
	e.sync()
	e.compare()
	e.removeLocalFolder("Box")
	fresh := corpus.Generate(34, 1, corpus.Options{Folders: []string{"Box"}})
	e.d.Seed(t, testenv.DefaultUser.Name, fresh)

	e.sync()
	want := map[string][]byte{fresh[0].MessageID: lf(fresh[0].Raw)}
	if err := sameMsgs("server Box", want, e.serverMsgs("Box")); err != nil {
		t.Error(err)
	}
	e.compare()
}

// TestFolderRemoveKeepsLimited: a folder deleted locally is not DELETEd
// upstream when it holds messages max_size kept from coming here.
func TestFolderRemoveKeepsLimited(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders, o.MaxSize = true, true, 1<<20 }
	msgs := corpus.Generate(47, 3, corpus.Options{Folders: []string{"Box"}, BigAttachmentEvery: 3, BigAttachmentSize: 2 << 20})
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)
	e.sync()
	big := e.serverMsgs("Box")
	for id := range e.localMsgs("Box") {
		delete(big, id)
	}
	if len(big) != 1 {
		t.Fatalf("%d messages left upstream by max_size, want 1", len(big))
	}
	e.removeLocalFolder("Box")
	e.sync()
	if err := sameMsgs("server Box", big, e.serverMsgs("Box")); err != nil {
		t.Error(err)
	}
}

const aclConfig = "mail_plugins = $mail_plugins acl\nprotocol imap {\n  mail_plugins = $mail_plugins imap_acl\n}\nplugin {\n  acl = vfile\n}"

// TestFolderListGlitch: a folder the server leaves out of one LIST but
// still has (here hidden by an ACL without the lookup right) is not
// deleted: STATUS finds it, and it is synced as usual.
func TestFolderListGlitch(t *testing.T) {
	e := newEnv(t, testenv.WithConfig(aclConfig))
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(35, 9, "INBOX", "Hidden", "Hidden")
	e.sync()
	e.compare()

	acl := filepath.Join(e.d.MailDir(testenv.DefaultUser.Name), ".Hidden", "dovecot-acl")
	if err := os.WriteFile(acl, []byte("owner rwstipekxa\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := e.d.Client(t, testenv.DefaultUser.Name)
	list, err := c.List("", "*", nil).Collect()
	if err != nil || slices.ContainsFunc(list, func(l *imap.ListData) bool { return l.Mailbox == "Hidden" }) {
		t.Fatalf("the ACL did not hide Hidden from LIST (%v)", err)
	}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(36, 1, corpus.Options{Folders: []string{"Hidden"}}))
	res, _ := e.sync()
	if l := linesWith(res.FolderActions, "Hidden"); len(l) != 0 {
		t.Errorf("actions: %q", l)
	}
	if err := sameMsgs("local Hidden", e.serverMsgs("Hidden"), e.localMsgs("Hidden")); err != nil {
		t.Fatal(err)
	}
	if n := len(e.localMsgs("Hidden")); n != 7 {
		t.Errorf("local Hidden has %d messages, want 7", n)
	}
	if err := os.Remove(acl); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.compare()
}

// TestFolderRemapNotDeleted: a server folder that folder_map now sends to
// a name the patterns exclude has not been deleted: its local folder is
// kept (not synced); once the name is included it is renamed, not fetched
// again.
func TestFolderRemapNotDeleted(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(37, 8, "INBOX", "Sent", "Sent", "Sent")
	e.sync()
	e.compare()
	before := e.localMsgs("Sent")

	e.opts = func(o *imapsync.Options) {
		o.CreateFolders, o.RemoveFolders = true, true
		o.FolderMap = map[string]string{"Sent": "Gesendet"}
		o.Folders = []string{"*", "!Gesendet"}
	}
	res, _ := e.sync()
	if err := sameMsgs("local Sent", before, e.localMsgs("Sent")); err != nil {
		t.Fatal(err)
	}
	if err := sameMsgs("server Sent", before, e.serverMsgs("Sent")); err != nil {
		t.Fatal(err)
	}
	if l := linesWith(res.FolderActions, `keep local folder "Sent" without syncing it`); len(l) != 1 {
		t.Errorf("actions %q", res.FolderActions)
	}

	e.opts = func(o *imapsync.Options) {
		o.CreateFolders, o.RemoveFolders = true, true
		o.FolderMap = map[string]string{"Sent": "Gesendet"}
	}
	res, _ = e.sync()
	if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 || !e.folderGone("Sent") {
		t.Errorf("moved messages (%+v) or kept local Sent; actions %q", tot, res.FolderActions)
	}
	if err := sameMsgs("local Gesendet", before, e.localMsgs("Gesendet")); err != nil {
		t.Fatal(err)
	}
}

// setUIDValidity gives a server folder (top-level, Maildir++ on disk) the
// UIDVALIDITY uv, as a server that hands out equal ones would.
func (e *env) setUIDValidity(folder string, uv uint32) {
	e.t.Helper()
	dir := filepath.Join(e.d.MailDir(testenv.DefaultUser.Name), "."+folder)
	p := filepath.Join(dir, "dovecot-uidlist")
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	b = regexp.MustCompile(`^(\d+) V\d+ `).ReplaceAll(b, []byte(fmt.Sprintf("$1 V%d ", uv)))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	idx, _ := filepath.Glob(filepath.Join(dir, "dovecot.index*"))
	for _, f := range idx {
		os.Remove(f)
	}
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	st, err := c.Status(folder, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil || st.UIDValidity != uv {
		e.t.Fatalf("could not set %s's UIDVALIDITY to %d: %v %v", folder, uv, st, err)
	}
}

// TestRenameSharedUIDValidity: a new server folder with the UIDVALIDITY of
// one deleted meanwhile is not taken for it renamed: its messages differ.
func TestRenameSharedUIDValidity(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(38, 6, "INBOX", "A", "A", "A", "INBOX", "A")
	e.sync()
	e.compare()
	c := e.d.Client(t, testenv.DefaultUser.Name)
	st, err := c.Status("A", &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("A").Wait(); err != nil {
		t.Fatal(err)
	}
	other := corpus.Generate(39, 4, corpus.Options{Folders: []string{"B"}})
	e.d.Seed(t, testenv.DefaultUser.Name, other)
	e.setUIDValidity("B", st.UIDValidity)

	res, _ := e.sync()
	if !e.folderGone("A") || len(linesWith(res.FolderActions, "rename")) != 0 {
		t.Errorf("local A kept, or renamed: %q", res.FolderActions)
	}
	e.compare()
}

// TestRenameLocalUnrelated: a local folder carrying the
// .postfach-uidvalidity of a folder deleted locally (copied from it) is
// not that folder renamed: without remove_folders the deleted folder is
// fetched again, and nothing of it is deleted upstream.
func TestRenameLocalUnrelated(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders = true }
	e.seedSpread(40, 4, "INBOX", "X", "X", "X")
	e.sync()
	e.compare()
	before := e.serverMsgs("X")

	y := e.dir("Y")
	uv, err := os.ReadFile(filepath.Join(e.dir("X").Path, maildir.UIDValidityFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(y.Path, maildir.UIDValidityFile), uv, 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeForeign("Y", "1.M1.host", []byte("Subject: y1\nMessage-ID: <y1@x>\n\ny\n"))
	e.writeForeign("Y", "2.M2.host", []byte("Subject: y2\nMessage-ID: <y2@x>\n\ny\n"))
	e.removeLocalFolder("X")

	e.sync()
	if err := sameMsgs("server X", before, e.serverMsgs("X")); err != nil {
		t.Fatal(err)
	}
	server := e.compare()
	if len(server["Y"]) != 2 {
		t.Errorf("server Y has %d messages, want 2", len(server["Y"]))
	}
}
