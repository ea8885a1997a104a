package imapsync_test

import (
	"os"
	"time"

	"github.com/emersion/go-imap/v2"
	"path/filepath"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestFolders: folders created, renamed and deleted on either side are
// carried over, and renames move no message.
func TestFolders(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(4, 40, corpus.Options{Folders: []string{"INBOX", "A", "B", "B/C"}}))
	e.sync()
	e.compare()
	c := e.d.Client(t, testenv.DefaultUser.Name)

	t.Run("renamed upstream", func(t *testing.T) {
		if err := c.Rename("B", "B2", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		res, _ := e.sync()
		if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 {
			t.Errorf("rename moved messages: %+v", tot)
		}
		server := e.compare()
		if _, ok := server["B2/C"]; !ok {
			t.Errorf("B2/C missing upstream: %v", keys(server))
		}
		if _, err := os.Stat(filepath.Join(e.root, "acct", "B")); !os.IsNotExist(err) {
			t.Errorf("local B still exists: %v", err)
		}
	})

	t.Run("new local folder", func(t *testing.T) {
		p, _ := maildir.FolderDir(e.root, "acct", "Local/Neu")
		if _, err := maildir.Open(p); err != nil {
			t.Fatal(err)
		}
		e.writeForeign("Local/Neu", "1.M1.host", []byte("Subject: one\nMessage-ID: <one@x>\n\n1\n"))
		e.writeForeign("Local/Neu", "2.M2.host", []byte("Subject: two\nMessage-ID: <two@x>\n\n2\n"))
		res, _ := e.sync()
		if tot := res.Totals(); tot.Uploaded != 2 {
			t.Errorf("uploaded %d, want 2", tot.Uploaded)
		}
		server := e.compare()
		if len(server["Local/Neu"]) != 2 {
			t.Errorf("server Local/Neu has %d messages", len(server["Local/Neu"]))
		}
	})

	t.Run("renamed locally", func(t *testing.T) {
		from, _ := maildir.FolderDir(e.root, "acct", "A")
		to, _ := maildir.FolderDir(e.root, "acct", "A renamed")
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		res, _ := e.sync()
		if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 || tot.ExpungedRemote != 0 {
			t.Errorf("rename moved messages: %+v", tot)
		}
		server := e.compare()
		if _, ok := server["A"]; ok {
			t.Errorf("A still upstream")
		}
	})

	t.Run("deleted upstream", func(t *testing.T) {
		if err := c.Delete("A renamed").Wait(); err != nil {
			t.Fatal(err)
		}
		// 6 messages: the deletion valve wants --force (TestFolderRemoveValve).
		if _, _, err := e.trySync(true); err != nil {
			t.Fatal(err)
		}
		e.compare()
		if _, err := os.Stat(filepath.Join(e.root, "acct", "A renamed", "cur")); !os.IsNotExist(err) {
			t.Errorf("local folder still there: %v", err)
		}
	})

	t.Run("deleted locally", func(t *testing.T) {
		p, _ := maildir.FolderDir(e.root, "acct", "Local/Neu")
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		e.sync()
		server := e.compare()
		if _, ok := server["Local/Neu"]; ok {
			t.Errorf("Local/Neu still upstream")
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMove: a message moved between local folders (its file renamed into
// the other Maildir, as mutt does) is moved upstream, not copied.
func TestMove(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, 30, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()
	src, dst := e.dir("INBOX"), e.dir("Archive")
	for _, x := range e.entries("INBOX")[:3] {
		if err := os.Rename(src.FilePath(x), filepath.Join(dst.Path, "cur", x.Name)); err != nil {
			t.Fatal(err)
		}
	}
	res, _ := e.sync()
	tot := res.Totals()
	if res.Moved != 3 || tot.Uploaded != 0 || tot.ExpungedRemote != 0 || tot.New != 0 {
		t.Errorf("moved %d, totals %+v; want 3 moved and nothing copied", res.Moved, tot)
	}
	e.compare()
}

// TestLimits: max_age_days and max_size leave messages where they are.
func TestLimits(t *testing.T) {
	e := newEnv(t)
	old := corpus.Generate(8, 20, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 10, BigAttachmentSize: 2 << 20})
	recent := corpus.Generate(9, 6, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 3, BigAttachmentSize: 2 << 20})
	for i := range recent {
		recent[i].Date = time.Now().Add(-time.Duration(i) * time.Hour)
	}
	e.d.Seed(t, testenv.DefaultUser.Name, append(old, recent...))
	e.opts = func(o *imapsync.Options) { o.MaxAgeDays, o.MaxSize = 30, 1<<20 }
	res, _ := e.sync()
	if got := res.Totals().New; got != 4 { // 6 recent, 2 of them too large
		t.Errorf("downloaded %d, want the 4 recent small ones", got)
	}
	// A second run changes nothing, and deletes nothing upstream.
	res, _ = e.sync()
	if tot := res.Totals(); tot.New != 0 || tot.ExpungedRemote != 0 || tot.Uploaded != 0 {
		t.Errorf("second run: %+v", tot)
	}
	c := e.d.Client(t, testenv.DefaultUser.Name)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 26 {
		t.Errorf("server INBOX: %v messages, err %v; want all 26 kept", st.NumMessages, err)
	}
}
