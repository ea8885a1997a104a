package imapsync_test

import (
	"os"
	"path/filepath"
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

// selects counts the SELECTs of folder in a protocol trace.
func selects(trace, folder string) int {
	return len(regexp.MustCompile(`(?m)^\S+ SELECT "?`+regexp.QuoteMeta(folder)+`"?(\s|$)`).FindAllString(trace, -1))
}

// TestListStatusOnlyToSkip: a run asks each folder's STATUS in its LIST
// only when some known folder may be skipped, its stamp vouching for its
// listing. When every folder changed here since its stamp, a plain LIST
// goes out and each folder's own SELECT tells its state, made ahead while
// the Maildir is read (ahead.go), once: the largest folder's on the first
// connection, the other's on the connection dialed ahead for it; the run
// mirrors all the same, on both sides. When one folder is unchanged here,
// the LIST asks the STATUS, and that folder, unchanged upstream too, is
// skipped. A move between the folders, which the first connection
// carries out after the SELECTs ahead, makes both plans SELECT again.
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
	syncTraced := func() (*imapsync.Result, string, string) {
		t.Helper()
		var trace testenv.Buffer
		e.opts = func(o *imapsync.Options) { o.Endpoint.Debug = &trace }
		defer func() { e.opts = nil }()
		res, _ := e.sync()
		lists := listCommand.FindAllString(trace.String(), -1)
		if len(lists) != 1 {
			t.Fatalf("LIST commands: %q, want one", lists)
		}
		return res, lists[0], trace.String()
	}

	// Both folders changed here, and one upstream as well.
	stamp()
	for _, f := range folders {
		flagOne(f)
	}
	e.appendServer("Archive", "new-upstream", imap.FlagSeen)
	taken := imapsync.AheadTaken()
	res, list, trace := syncTraced()
	if regexp.MustCompile(`STATUS \(`).MatchString(list) {
		t.Errorf("every folder changed here, and the LIST asks the STATUS: %s", list)
	}
	// Each folder selected ahead: the larger on the first connection, the
	// other on the one dialed ahead for it.
	if n := imapsync.AheadTaken() - taken; n != 2 {
		t.Errorf("%d plans took a SELECT made ahead, want 2", n)
	}
	for _, f := range []string{"INBOX", "Archive"} {
		if n := selects(trace, f); n != 1 {
			t.Errorf("%s SELECTed %d times, want once", f, n)
		}
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
	taken = imapsync.AheadTaken()
	res, list, _ = syncTraced()
	if imapsync.AheadTaken() != taken {
		t.Error("a plan took a SELECT made ahead in a run that asked the STATUS")
	}
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

	// A message moved from the larger folder into the other: both changed
	// here, both are selected ahead, and the move upstream SELECTs the
	// larger again on the first connection, so its plan does too; the
	// other's connection heard nothing of the move (its UIDNEXT is before
	// the moved message's UID), so its plan does too.
	stamp()
	larger, other := "INBOX", "Archive"
	if len(e.entries(other)) > len(e.entries(larger)) {
		larger, other = other, larger
	}
	x := e.entries(larger)[0]
	if err := os.Rename(e.dir(larger).FilePath(x), filepath.Join(e.dir(other).Path, "cur", x.Name)); err != nil {
		t.Fatal(err)
	}
	taken = imapsync.AheadTaken()
	res, list, trace = syncTraced()
	if regexp.MustCompile(`STATUS \(`).MatchString(list) {
		t.Errorf("every folder changed here, and the LIST asks the STATUS: %s", list)
	}
	if res.Moved != 1 {
		t.Errorf("moved %d, want 1", res.Moved)
	}
	if imapsync.AheadTaken() != taken {
		t.Error("a plan took a SELECT made ahead of a move on its connection")
	}
	if n := selects(trace, larger); n != 3 {
		t.Errorf("%s SELECTed %d times, want 3 (ahead, for the move, for the plan)", larger, n)
	}
	if n := selects(trace, other); n != 2 {
		t.Errorf("%s SELECTed %d times, want 2 (ahead, for the plan)", other, n)
	}
	e.compare()
}
