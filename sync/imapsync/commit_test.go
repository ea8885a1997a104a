package imapsync_test

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestCommitWhenFetchesEnd: a few new messages are committed by the time
// their FETCH is over (as they come, once their folder's job is the run's
// last task), while their folder's job goes on (having pushed a flag
// change, it asks the server what changed meanwhile), not when a batch
// timer runs out or the run ends: every "committing" line comes before
// the folder's "planned". The folder's worker waits, once its downloads'
// FETCH is over (refreshHook), up to 200 ms for all five to be committed
// (in one batch or more): a busy machine (CI runs two race-detector
// suites side by side) may not run the committer within the worker's
// next round trips; and 200 ms is less than the batch timer's 250, which
// alone would commit them after the folder's plan ends.
func TestCommitWhenFetchesEnd(t *testing.T) {
	e := newEnv(t)
	msgs := corpus.Generate(21, 35, corpus.Options{Folders: []string{"INBOX"}})
	e.d.Seed(t, testenv.DefaultUser.Name, msgs[:30])
	e.sync()
	e.d.Seed(t, testenv.DefaultUser.Name, msgs[30:])
	x := e.entries("INBOX")[0]
	if _, err := e.dir("INBOX").SetFlags(x, x.Flags^maildir.FlagFlagged); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	e.opts = func(o *imapsync.Options) {
		o.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	imapsync.SetRefreshHook(func() {
		for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if committed(log.String()) == 5 {
				return
			}
		}
	})
	defer imapsync.SetRefreshHook(nil)
	res, _ := e.sync()
	if tot := res.Totals(); tot.New != 5 || tot.FlagsPushed != 1 {
		t.Fatalf("the run did %+v; want 5 new and 1 flag change pushed", tot)
	}
	var order []string
	for _, l := range strings.Split(log.String(), "\n") {
		switch {
		case strings.Contains(l, "msg=committing"):
			order = append(order, "committing")
		case strings.Contains(l, "msg=planned") && strings.Contains(l, "folder=INBOX"):
			order = append(order, "planned")
		}
	}
	if len(order) < 2 || order[0] != "committing" || order[len(order)-1] != "planned" {
		t.Errorf("log order %v; want the commits before the folder's plan ends", order)
	}
	e.compare()
}

// committed adds up the messages of a log's "committed" lines.
func committed(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "msg=committed") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "messages="); ok {
				k, _ := strconv.Atoi(v)
				n += k
			}
		}
	}
	return n
}
