package imapsync_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestOnly: a partial run (Options.Only) syncs the named folders alone,
// carries a move out of a named folder over as a move, and never takes a
// folder that is absent on one side for a deleted one: whatever needs the
// folder-level pass makes the run a full one.
func TestOnly(t *testing.T) {
	e := newEnv(t)
	user := testenv.DefaultUser.Name
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.d.Seed(t, user, corpus.Generate(11, 24, corpus.Options{Folders: []string{"INBOX", "Archive", "Old"}}))
	e.sync()
	e.compare()
	force := false
	only := func(folders ...string) *imapsync.Result {
		t.Helper()
		prev := e.opts
		e.opts = func(o *imapsync.Options) { prev(o); o.Only, o.Force = folders, force }
		defer func() { e.opts = prev }()
		res, _ := e.sync()
		return res
	}

	t.Run("named folders alone", func(t *testing.T) {
		more := corpus.Generate(12, 2, corpus.Options{})
		more[0].Folder, more[1].Folder = "INBOX", "Archive"
		e.d.Seed(t, user, more)
		before := len(e.entries("Archive"))
		res := only("inbox") // IMAP's INBOX in any case
		if !res.Partial || len(res.Folders) != 1 || res.Folders[0].Name != "INBOX" || res.Folders[0].New != 1 {
			t.Fatalf("partial run of INBOX: partial %v, folders %+v", res.Partial, res.Folders)
		}
		if got := len(e.entries("Archive")); got != before {
			t.Errorf("Archive has %d files after a run of INBOX alone, had %d", got, before)
		}
		// The message that came is the server's, byte for byte.
		if !e.hasBody("INBOX", more[0].Raw) {
			t.Errorf("the new INBOX message is not in the local INBOX")
		}
		res = only("Archive")
		if !res.Partial || len(res.Folders) != 1 || res.Folders[0].New != 1 {
			t.Fatalf("partial run of Archive: partial %v, folders %+v", res.Partial, res.Folders)
		}
		e.compare()
	})

	t.Run("moved out of a named folder", func(t *testing.T) {
		src, dst := e.dir("INBOX"), e.dir("Archive")
		x := e.entries("INBOX")[0]
		if err := os.Rename(src.FilePath(x), filepath.Join(dst.Path, "cur", x.Name)); err != nil {
			t.Fatal(err)
		}
		res := only("INBOX")
		tot := res.Totals()
		if !res.Partial || res.Moved != 1 || tot.Uploaded != 0 || tot.ExpungedRemote != 0 {
			t.Errorf("partial %v, moved %d, totals %+v; want a partial run with 1 move and nothing copied", res.Partial, res.Moved, tot)
		}
		e.compare()
	})

	t.Run("folder deleted upstream, another named", func(t *testing.T) {
		c := e.d.Client(t, user)
		if err := c.Delete("Old").Wait(); err != nil {
			t.Fatal(err)
		}
		n := len(e.entries("Old"))
		res := only("INBOX")
		if !res.Partial || len(res.FolderActions) != 0 {
			t.Fatalf("partial %v, folder actions %q", res.Partial, res.FolderActions)
		}
		if got := len(e.entries("Old")); got != n || n == 0 {
			t.Fatalf("local Old has %d files after a partial run, had %d", got, n)
		}
		// Named, the folder needs the folder-level pass: a full run
		// (which removes it: it has more than 5 messages).
		force = true
		defer func() { force = false }()
		res = only("Old")
		if res.Partial || len(res.FolderActions) == 0 {
			t.Errorf("a run naming a folder gone upstream: partial %v, actions %q", res.Partial, res.FolderActions)
		}
	})

	t.Run("local folder gone", func(t *testing.T) {
		p := e.dir("Archive").Path
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		server := e.serverCount(t, "Archive")
		res := only("INBOX")
		if !res.Partial || len(res.FolderActions) != 0 || e.serverCount(t, "Archive") != server {
			t.Fatalf("partial %v, folder actions %q, server Archive %d messages (had %d)",
				res.Partial, res.FolderActions, e.serverCount(t, "Archive"), server)
		}
		// Named, a full run: with remove_folders off, it is fetched again.
		e.opts = func(o *imapsync.Options) { o.CreateFolders = true }
		res = only("Archive")
		if res.Partial || e.serverCount(t, "Archive") != server || len(e.entries("Archive")) != server {
			t.Errorf("a run naming a folder gone locally: partial %v, server %d messages, local %d; want a full run fetching all %d",
				res.Partial, e.serverCount(t, "Archive"), len(e.entries("Archive")), server)
		}
	})

	t.Run("never synced", func(t *testing.T) {
		e.d.Seed(t, user, corpus.Generate(13, 2, corpus.Options{Folders: []string{"Fresh"}}))
		res := only("Fresh")
		if res.Partial {
			t.Fatalf("a run naming a new server folder was partial")
		}
		e.compare()
		if res := only("Fresh", "Fresh", "Excluded-by-nobody-but-absent"); res.Partial {
			t.Errorf("a run naming a folder that exists nowhere was partial")
		}
	})
}

// hasBody reports whether a file of the local folder holds raw (CRLF
// turned into LF, as stored).
func (e *env) hasBody(folder string, raw []byte) bool {
	e.t.Helper()
	want := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	d := e.dir(folder)
	for _, x := range e.entries(folder) {
		b, err := os.ReadFile(d.FilePath(x))
		if err == nil && bytes.Equal(b, want) {
			return true
		}
	}
	return false
}

func (e *env) serverCount(t *testing.T, folder string) int {
	t.Helper()
	c := e.d.Client(t, testenv.DefaultUser.Name)
	server, err := mirrortest.ServerFolders(c)
	if err != nil {
		t.Fatal(err)
	}
	return len(server[folder])
}
