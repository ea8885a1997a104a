package imapsync_test

import (
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

// TestDryRun: --dry-run reports exactly what the real run then does, and
// changes nothing on either side.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(6, 60, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()

	d := e.dir("INBOX")
	es := e.entries("INBOX")
	for _, x := range es[:2] {
		if _, err := d.SetFlags(x, x.Flags^maildir.FlagFlagged); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(d.FilePath(es[2]))
	// a move from INBOX to Archive, as mutt does it
	if err := os.Rename(d.FilePath(es[3]), filepath.Join(e.dir("Archive").Path, "cur", es[3].Name)); err != nil {
		t.Fatal(err)
	}
	e.writeForeign("INBOX", "99.M9.host", []byte("Subject: new here\nMessage-ID: <dry@x>\n\nx\n"))
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	pre, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	wantPulled := 0
	for _, m := range pre {
		if !slices.Contains(m.Flags, imap.FlagAnswered) {
			wantPulled++
		}
	}
	c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}, Silent: true}, nil).Close()
	c.Store(imap.SeqSetNum(4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close()
	c.Expunge().Close()
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 2, corpus.Options{Folders: []string{"Archive"}}))

	before := e.snapshot()
	e.opts = func(o *imapsync.Options) { o.DryRun = true }
	dry, _ := e.sync()
	if after := e.snapshot(); after != before {
		t.Fatalf("dry run changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	e.opts = nil
	real, _ := e.sync()
	dt, rt := dry.Totals(), real.Totals()
	dt.Bytes, rt.Bytes = 0, 0 // sizes of new messages are not known before fetching them incrementally
	dt.Name, rt.Name = "", ""
	if fmt.Sprint(dt) != fmt.Sprint(rt) || dry.Moved != real.Moved || real.Moved != 1 {
		t.Errorf("dry run planned %+v (%d moved), the real run did %+v (%d moved)", dt, dry.Moved, rt, real.Moved)
	}
	if rt.New != 2 || rt.Uploaded != 1 || rt.ExpungedRemote != 1 || rt.FlagsPushed != 2 || rt.Expunged != 1 || rt.FlagsChanged != wantPulled {
		t.Errorf("real run: %+v", rt)
	}
	e.compare()
}
