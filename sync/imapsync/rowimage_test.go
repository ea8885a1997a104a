package imapsync_test

import (
	"sync/atomic"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestRowImageRuns: from its first run on, a folder has an image of its
// rows, and a run after changes on both sides of it (a new file, a flag
// renamed, a file removed here; a new message, a flag, an expunge
// upstream) compares its listing with that image, reading none of its
// rows; both sides end up alike, and the run after has nothing to do.
// Every later run does the same: the image catches up with the run's own
// changes to the rows.
func TestRowImageRuns(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 40, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()
	var reads atomic.Int32
	imapsync.SetRowsReadHook(func() { reads.Add(1) })
	t.Cleanup(func() { imapsync.SetRowsReadHook(nil) })
	for _, tag := range []string{"a", "b", "c"} {
		e.changeBothSides(tag)
		res, _ := e.sync()
		if n := reads.Load(); n != 0 {
			t.Fatalf("run %s: %d folders' rows read", tag, n)
		}
		tot := res.Totals()
		if tot.Uploaded != 2 || tot.New != 2 {
			t.Errorf("run %s: %+v, want 2 uploaded and 2 new", tag, tot)
		}
		e.compare()
		res, _ = e.sync()
		if tot := res.Totals(); tot.Uploaded+tot.New+tot.FlagsPushed+tot.FlagsChanged != 0 {
			t.Errorf("run %s: the run after did %+v", tag, tot)
		}
	}
}
