package imapsync_test

import (
	"slices"
	"testing"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestDryRunFolders: the dry run lists exactly the folder actions the real
// run then carries out (a rename upstream of a folder with a subfolder, a
// folder deleted locally, one deleted upstream with a message to recover,
// a new local folder), with the same recoveries, and changes nothing.
func TestDryRunFolders(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	e.seedSpread(46, 20, "INBOX", "P", "P/C", "D", "E")
	e.sync()
	e.compare()

	c := e.d.Client(t, testenv.DefaultUser.Name)
	if err := c.Rename("P", "P2", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.removeLocalFolder("D")
	e.writeForeign("E", "1.M1.host", []byte("Subject: e\nMessage-ID: <e@x>\n\nnever uploaded\n"))
	if err := c.Delete("E").Wait(); err != nil {
		t.Fatal(err)
	}
	e.writeForeign("N", "2.M2.host", []byte("Subject: n\nMessage-ID: <n@x>\n\nnew folder\n"))

	before := e.snapshot()
	dry, err := e.runWith(true, false)
	if err != nil {
		t.Fatal(err)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("dry run changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	real, err := e.runWith(false, false)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, a := range real.FolderActions {
		want = append(want, "would "+a)
	}
	if !slices.Equal(dry.FolderActions, want) || len(want) != 4 {
		t.Errorf("dry run planned\n  %q\nthe real run did\n  %q", dry.FolderActions, real.FolderActions)
	}
	if !slices.Equal(dry.Recovered, real.Recovered) || len(real.Recovered) != 1 {
		t.Errorf("recovered: dry run %+v, real run %+v", dry.Recovered, real.Recovered)
	}
	e.sync()
	e.compare()
}
