package imapsync_test

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// snapshot renders both sides and the index as text, to prove a dry run
// changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !strings.Contains(p, ".postfach") {
			fmt.Fprintln(&b, "file", strings.TrimPrefix(p, e.root))
		}
		return nil
	})
	e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		folders, _ := tx.Folders(a)
		for _, f := range folders {
			fmt.Fprintln(&b, "folder", f.Name, f.UIDValidity, f.UIDNext, f.HighestModSeq)
			rows, _ := tx.Messages(f.ID)
			for _, m := range rows {
				fmt.Fprintln(&b, "row", m.Key, m.UID, m.Flags.Info(), m.SyncedFlags.Info(), m.File, m.Keywords)
			}
		}
		return nil
	})
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	server, err := mirrortest.ServerFolders(c)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for n := range server {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, m := range server[n] {
			fmt.Fprintln(&b, "server", n, m.UID, m.Flags.Info(), m.Keywords, len(m.Raw))
		}
	}
	return b.String()
}

// TestDryRun: --dry-run plans exactly what the real run then does, message
// by message (the Result's actions: keys and UIDs of what is downloaded,
// uploaded, flagged and deleted on either side), and changes nothing on
// either side; the plan is the one the changes made by the test call for.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(6, 60, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()

	// want is the plan, by what the test changes below.
	type act struct {
		op, folder string
		uid        uint32
		key        string
	}
	var want []act
	d := e.dir("INBOX")
	es := e.entries("INBOX")
	for _, x := range es[:2] {
		if _, err := d.SetFlags(x, x.Flags^maildir.FlagFlagged); err != nil {
			t.Fatal(err)
		}
		want = append(want, act{imapsync.OpFlagsServer, "INBOX", x.UID, x.Key})
	}
	os.Remove(d.FilePath(es[2]))
	want = append(want, act{imapsync.OpDeleteServer, "INBOX", es[2].UID, es[2].Key})
	// a move from INBOX to Archive, as mutt does it: a MOVE upstream, counted apart
	if err := os.Rename(d.FilePath(es[3]), filepath.Join(e.dir("Archive").Path, "cur", es[3].Name)); err != nil {
		t.Fatal(err)
	}
	e.writeForeign("INBOX", "99.M9.host", []byte("Subject: new here\nMessage-ID: <dry@x>\n\nx\n"))
	want = append(want, act{imapsync.OpReindex, "INBOX", 0, "99.M9.host"}, act{imapsync.OpUpload, "INBOX", 0, "99.M9.host"})

	archive := map[uint32]string{} // UID -> key of Archive's files
	for _, x := range e.entries("Archive") {
		if x.Key != es[3].Key {
			archive[x.UID] = x.Key
		}
	}
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	pre, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(pre) != 4 {
		t.Fatalf("Archive 1:4: %d messages, %v", len(pre), err)
	}
	for _, m := range pre[:3] {
		if !slices.Contains(m.Flags, imap.FlagAnswered) {
			want = append(want, act{imapsync.OpFlagsLocal, "Archive", uint32(m.UID), archive[uint32(m.UID)]})
		}
	}
	want = append(want, act{imapsync.OpDeleteLocal, "Archive", uint32(pre[3].UID), archive[uint32(pre[3].UID)]})
	c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}, Silent: true}, nil).Close()
	c.Store(imap.SeqSetNum(4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close()
	c.Expunge().Close()
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 2, corpus.Options{Folders: []string{"Archive"}}))
	if err := c.Noop().Wait(); err != nil { // let the new messages in
		t.Fatal(err)
	}
	uids, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range uids.AllUIDs() {
		if _, ok := archive[uint32(u)]; !ok {
			want = append(want, act{imapsync.OpDownload, "Archive", uint32(u), ""})
		}
	}

	before := e.snapshot()
	e.opts = func(o *imapsync.Options) { o.DryRun = true }
	dry, _ := e.sync()
	if after := e.snapshot(); after != before {
		t.Fatalf("dry run changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	e.opts = nil
	real, _ := e.sync()

	format := func(acts []imapsync.Action) string {
		var b strings.Builder
		for _, a := range acts {
			fmt.Fprintf(&b, "%s %s uid %d key %q %s\n", a.Folder, a.Op, a.UID, a.Key, a.Flags)
		}
		return b.String()
	}
	if d, r := format(dry.Actions()), format(real.Actions()); d != r {
		t.Errorf("the dry run planned:\n%sthe real run did:\n%s", d, r)
	}
	var got []act
	for _, a := range real.Actions() {
		got = append(got, act{a.Op, a.Folder, a.UID, a.Key})
	}
	byAll := func(a, b act) int {
		return cmp.Or(strings.Compare(a.folder, b.folder), strings.Compare(a.op, b.op), cmp.Compare(a.uid, b.uid), strings.Compare(a.key, b.key))
	}
	slices.SortFunc(want, byAll)
	if !slices.Equal(got, want) {
		t.Errorf("the real run did:\n%v\nwant:\n%v", got, want)
	}
	if dry.Moved != real.Moved || real.Moved != 1 {
		t.Errorf("the dry run planned %d moves, the real run did %d, want 1", dry.Moved, real.Moved)
	}
	// The counts add the actions up.
	dt, rt := dry.Totals(), real.Totals()
	if dt.New != 2 || dt.Uploaded != 1 || dt.ExpungedRemote != 1 || dt.FlagsPushed != 2 || dt.Expunged != 1 ||
		dt.FlagsChanged != rt.FlagsChanged || rt.New != 2 || rt.Uploaded != 1 || rt.ExpungedRemote != 1 || rt.FlagsPushed != 2 || rt.Expunged != 1 {
		t.Errorf("dry run counts %+v, real run %+v", dt, rt)
	}
	e.compare()
}
