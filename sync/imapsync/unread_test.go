package imapsync_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestUnreadInNew: server mail without \Seen is stored in new/ (no info
// when it has no flags at all), read mail in cur/, as mbsync and Dovecot
// store it. What mail clients then do with a message in new/ syncs as
// usual: mutt's move to cur/ when it is read (\Seen upstream) or merely
// seen in the index (nothing), a move to another folder (UID MOVE), a
// deletion; a server-side \Seen moves it to cur/; a lost index matches it
// again without copying anything.
func TestUnreadInNew(t *testing.T) {
	e := newEnv(t)
	msgs := corpus.Generate(31, 30, corpus.Options{Folders: []string{"INBOX", "Archive"}})
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)
	e.sync()
	unread := 0
	for _, f := range []string{"INBOX", "Archive"} {
		for _, x := range e.entries(f) {
			switch {
			case x.Flags&maildir.FlagSeen == 0 && x.Sub != "new":
				t.Errorf("%s: unread %s is in %s/", f, x.Name, x.Sub)
			case x.Flags&maildir.FlagSeen != 0 && x.Sub != "cur":
				t.Errorf("%s: read %s is in %s/", f, x.Name, x.Sub)
			case x.Flags == 0 && strings.Contains(x.Name, ":"):
				t.Errorf("%s: new/%s has info", f, x.Name)
			}
			if x.Sub == "new" {
				unread++
			}
		}
	}
	if unread < 10 {
		t.Fatalf("only %d unread messages in the corpus", unread)
	}
	e.compare()

	var inNew []maildir.Entry
	for _, x := range e.entries("INBOX") {
		if x.Sub == "new" && x.Flags == 0 {
			inNew = append(inNew, x)
		}
	}
	if len(inNew) < 5 {
		t.Fatalf("%d flagless unread messages in INBOX, want 5", len(inNew))
	}
	d := e.dir("INBOX")
	// mutt, reading one: new/ -> cur/ with S.
	read := inNew[0]
	if err := os.Rename(d.FilePath(read), filepath.Join(d.Path, "cur", read.Name+":2,S")); err != nil {
		t.Fatal(err)
	}
	// mutt, listing one (no longer new, not read): new/ -> cur/ ":2,".
	old := inNew[1]
	if err := os.Rename(d.FilePath(old), filepath.Join(d.Path, "cur", old.Name+":2,")); err != nil {
		t.Fatal(err)
	}
	// Saved to Archive from new/, deleted from new/.
	moved, gone := inNew[2], inNew[3]
	if err := os.Rename(d.FilePath(moved), filepath.Join(e.dir("Archive").Path, "new", moved.Name)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.FilePath(gone)); err != nil {
		t.Fatal(err)
	}
	// Read on another device.
	other := inNew[4]
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(imap.UID(other.UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, _ := e.sync()
	tot := res.Totals()
	if tot.FlagsPushed != 1 || tot.FlagsChanged != 1 || tot.ExpungedRemote != 1 || res.Moved != 1 ||
		tot.Uploaded+tot.New+tot.Expunged != 0 {
		t.Errorf("after the clients' changes: %+v, %d moved; want 1 flag up (read), 1 down, 1 deleted, 1 moved", tot, res.Moved)
	}
	if x := e.entryByKey("INBOX", other.Key); x.Sub != "cur" || x.Flags != maildir.FlagSeen {
		t.Errorf("read upstream: now %s/%s, want it in cur/ with S", x.Sub, x.Name)
	}
	if x := e.entryByKey("INBOX", old.Key); x.Sub != "cur" || x.Flags != 0 {
		t.Errorf("seen by mutt: now %s/%s", x.Sub, x.Name)
	}
	e.compare()
	if res, _ := e.sync(); len(res.Actions()) != 0 || res.Moved != 0 {
		t.Errorf("a third run did %+v", res.Actions())
	}

	// A lost index: the files in new/ are matched again, nothing copied.
	e.store.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(index.DefaultPath(e.root) + suffix)
	}
	e.openIndex()
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded+tot.New+tot.ExpungedRemote+tot.Expunged != 0 {
		t.Errorf("after losing the index: %+v", tot)
	}
	e.compare()
}
