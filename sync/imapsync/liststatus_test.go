package imapsync_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// listCommand matches the LIST command a run sends (not its answers).
var listCommand = regexp.MustCompile(`(?m)^\S+ LIST "" "\*".*$`)

// TestListStatusOnlyToSkip: a run asks each folder's STATUS in its LIST
// only when some known folder may be skipped, its stamp vouching for its
// listing. When every folder changed here since its stamp, a plain LIST
// goes out and each folder's own SELECT tells its state; the run mirrors
// all the same, on both sides. When one folder is unchanged here, the
// LIST asks the STATUS, and that folder, unchanged upstream too, is
// skipped.
func TestListStatusOnlyToSkip(t *testing.T) {
	folders := []string{"INBOX", "Archive"}
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(11, 30, corpus.Options{Folders: folders}))
	e.sync()
	stamp := func() {
		t.Helper()
		old := time.Now().Add(-time.Hour)
		for _, f := range folders {
			e.backdate(f, old)
		}
		if res, _ := e.sync(); res.Totals().Uploaded+res.Totals().New != 0 {
			t.Fatalf("the stamping run moved messages: %+v", res.Totals())
		}
	}
	flagOne := func(f string) {
		t.Helper()
		for _, en := range e.entries(f) {
			if en.UID != 0 {
				if _, err := e.dir(f).SetFlags(en, en.Flags^maildir.FlagFlagged); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("%s: no synced message", f)
	}
	syncTraced := func() (*imapsync.Result, string) {
		t.Helper()
		var trace testenv.Buffer
		e.opts = func(o *imapsync.Options) { o.Endpoint.Debug = &trace }
		defer func() { e.opts = nil }()
		res, _ := e.sync()
		lists := listCommand.FindAllString(trace.String(), -1)
		if len(lists) != 1 {
			t.Fatalf("LIST commands: %q, want one", lists)
		}
		return res, lists[0]
	}

	// Both folders changed here, and one upstream as well.
	stamp()
	for _, f := range folders {
		flagOne(f)
	}
	e.appendServer("Archive", "new-upstream", imap.FlagSeen)
	res, list := syncTraced()
	if regexp.MustCompile(`STATUS \(`).MatchString(list) {
		t.Errorf("every folder changed here, and the LIST asks the STATUS: %s", list)
	}
	if tot := res.Totals(); tot.FlagsPushed != 2 || tot.New != 1 {
		t.Errorf("run did %+v, want 2 flag changes pushed and 1 new message", tot)
	}
	for _, f := range res.Folders {
		if f.Skipped || f.Err != nil {
			t.Errorf("%s: skipped %v, err %v", f.Name, f.Skipped, f.Err)
		}
	}
	e.compare()

	// Only INBOX changed here: Archive may be skipped, so the STATUS is
	// asked, and Archive, unchanged upstream too, is.
	stamp()
	flagOne("INBOX")
	res, list = syncTraced()
	if !regexp.MustCompile(`STATUS \(`).MatchString(list) {
		t.Errorf("Archive is unchanged here, and the LIST asks no STATUS: %s", list)
	}
	for _, f := range res.Folders {
		if want := f.Name == "Archive"; f.Skipped != want {
			t.Errorf("%s: skipped %v, want %v", f.Name, f.Skipped, want)
		}
	}
	if tot := res.Totals(); tot.FlagsPushed != 1 {
		t.Errorf("run did %+v, want 1 flag change pushed", tot)
	}
	e.compare()
}
