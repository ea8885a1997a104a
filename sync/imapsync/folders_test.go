package imapsync_test

import (
	"os"
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
		e.sync()
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
