package imapsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// killChild is what TestKillTwoWay passes to the sync process it kills.
type killChild struct {
	Root, Addr, User, Password string
}

const killChildEnv = "POSTFACH_KILL_CHILD"

// killSyncOptions are the options of every run in TestKillTwoWay: small
// chunks and batches, so that a kill finds many commit points to land
// between.
func killSyncOptions(o *imapsync.Options) {
	o.Force = true
	o.ChunkSize = 16
	o.BatchSize = 8
}

// TestKillTwoWayChild is the sync process TestKillTwoWay starts and kills
// with SIGKILL. Run on its own it does nothing.
func TestKillTwoWayChild(t *testing.T) {
	v := os.Getenv(killChildEnv)
	if v == "" {
		return
	}
	var c killChild
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	st, err := index.OpenStore(c.Root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o := imapsync.Options{
		Account: "acct", Root: c.Root, Index: st,
		Endpoint: imapsync.Endpoint{Addr: c.Addr, TLS: "none", Username: c.User, Password: c.Password},
		// The committer's debug lines tell the parent where a kill landed.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	killSyncOptions(&o)
	if _, err := imapsync.Sync(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "sync:", err)
		os.Exit(3)
	}
	st.Close()
	os.Exit(0)
}

// TestKillTwoWay makes several hundred changes on both sides, then runs
// the sync in a separate process (this test binary, see
// TestKillTwoWayChild) and kills it with SIGKILL until POSTFACH_KILL_LOOPS
// runs were killed (50, or 5 with -short; at most three times as many
// runs), and finishes with a clean run. Two kills in three come at a
// random moment; every third (and every one once enough runs were killed
// but none inside a commit) comes the moment the committer starts its
// first or second batch (its "committing" debug line), so that
// kills land inside commits (between "committing" and "committed": the
// files synced, renamed into cur/ or indexed in part). The test fails
// unless every run it meant to kill was killed (up to the attempts) and
// at least one kill landed inside a commit. A run that finishes before
// its kill is followed by a new, smaller wave of changes. Both sides must
// then hold exactly the merged state of the model in model_test.go: every
// message once, none lost, none duplicated, flags merged, and the mirror
// invariant holds.
//
// The changes (the first wave): locally 300 flag renames, 50 new files, 20
// moves between folders and 20 deletions; upstream 300 flag or keyword
// changes, 50 APPENDs and 20 expunges, overlapping the local changes as the
// model test allows (a message moved locally is left alone upstream and
// has no keywords).
func TestKillTwoWay(t *testing.T) {
	loops := 50
	if testing.Short() {
		loops = 5
	}
	loops = modelEnvInt("POSTFACH_KILL_LOOPS", loops)
	seed := int64(modelEnvInt("POSTFACH_KILL_SEED", 1))
	t.Logf("seed %d (replay with POSTFACH_KILL_SEED=%d)", seed, seed)

	e := newEnv(t)
	e.opts = killSyncOptions
	r := newModelRun(t, e, seed)
	r.replay = fmt.Sprintf("POSTFACH_KILL_SEED=%d go test -run 'TestKillTwoWay$' ./sync/imapsync "+
		"(the same changes; the kill moments depend on timing: run it a few times)", seed)
	r.beginRound()

	// 700 messages on the server, one in four of the same size.
	folders := []string{"INBOX", "Archive"}
	for _, f := range folders {
		r.m.base[f], r.m.local[f], r.m.server[f] = map[string]mstate{}, map[string]mstate{}, map[string]mstate{}
	}
	var msgs []corpus.Message
	for i, cm := range corpus.Generate(seed, 700, corpus.Options{Folders: folders}) {
		if i%4 == 3 {
			cm.Raw = tinyMessage(seed, 100000+i, &cm.MessageID)
		}
		msgs = append(msgs, cm)
		var st mstate
		st.flags, st.kw = stateOf(cm.Flags)
		r.m.server[cm.Folder][cm.MessageID] = st
		r.raw[cm.MessageID] = lf(cm.Raw)
	}
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)
	r.syncAndCheck()

	// A run with nothing to do measures how fast the sync process starts
	// here (about 0.1 s on 2 cores; more with -race).
	pass, _ := e.d.Password(testenv.DefaultUser.Name)
	cfg, err := json.Marshal(killChild{Root: e.root, Addr: e.d.IMAPAddr(), User: testenv.DefaultUser.Name, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	idle := time.Minute
	for range 3 {
		k := runKilled(t, string(cfg), time.Minute, 0)
		if k.code != 0 {
			t.Fatalf("a sync process with nothing to do: exit %d: %s", k.code, k.out)
		}
		idle = min(idle, k.took)
	}

	// The changes.
	r.round = 1
	r.beginRound()
	start := time.Now()
	r.killWave(folders, 1)
	t.Logf("%d changes made in %v", len(r.ops), time.Since(start).Round(time.Millisecond))

	// The killed runs.
	killed, finished, midCommit := 0, 0, 0
	lastFinished := false
	// A run with all the changes takes about ten times as long as one with
	// nothing to do (0.5 to 1 s on 2 cores), a third of it before the first
	// commit. When a run finishes before its kill, a smaller wave of changes
	// gives the next one work.
	maxDelay := min(max(10*idle, 600*time.Millisecond), 20*time.Second)
	if ms := modelEnvInt("POSTFACH_KILL_MAX_DELAY_MS", 0); ms > 0 {
		maxDelay = time.Duration(ms) * time.Millisecond
	}
	t.Logf("an idle run takes %v: kills within %v", idle.Round(time.Millisecond), maxDelay.Round(time.Millisecond))
	for i := 0; (killed < loops || midCommit == 0) && i < 3*loops; i++ {
		if lastFinished {
			// The last run finished the work: more work for the next kill,
			// on messages no earlier change touched.
			r.killWave(folders, 2)
		}
		delay := time.Duration(r.rng.Int64N(int64(maxDelay)))
		atCommit := 0
		if i%3 == 2 || killed >= loops {
			atCommit, delay = 1+r.rng.IntN(2), time.Minute
		}
		k := runKilled(t, string(cfg), delay, atCommit)
		lastFinished = k.code == 0
		if lastFinished && atCommit == 0 {
			// Aim the next kills at runs of about this length.
			maxDelay = max((maxDelay+k.took)/2, 100*time.Millisecond)
		}
		switch {
		case k.code == -1:
			killed++
			if k.midCommit {
				midCommit++
			}
		case k.code == 0:
			finished++
		default:
			t.Errorf("run %d: exit %d: %s", i, k.code, k.out)
		}
		what := fmt.Sprintf("kill after %v", delay)
		if atCommit > 0 {
			what = fmt.Sprintf("kill at commit %d", atCommit)
		}
		line := fmt.Sprintf("run %d: %s: exit %d after %v, %d commits begun, %d ended",
			i, what, k.code, k.took.Round(time.Millisecond), k.begun, k.ended)
		r.logf("%s", line)
		if testing.Verbose() {
			t.Log(line)
		}
	}
	t.Logf("%d runs killed (%d inside a commit), %d finished before the kill", killed, midCommit, finished)
	if killed < loops {
		t.Errorf("%d runs killed, want %d: the runs finished before their kills", killed, loops)
	}
	if midCommit == 0 {
		t.Errorf("no kill landed inside a commit: the test did not try the hardest moment")
	}

	// The clean run, and the state it must reach.
	r.syncAndCheck()
	t.Logf("the clean run: %s", r.ops[len(r.ops)-1])
}

// killWave makes the changes of TestKillTwoWay, divided by div. Changes
// after the first wave (div > 1) touch only messages no earlier change
// touched on either side, so that the model stays exact whatever the
// killed runs already carried over.
func (r *modelRun) killWave(folders []string, div int) {
	n := func(x int) int { return max(1, x/div) }
	fresh := func(id string) bool { return div == 1 || !r.touchedL[id] && !r.touchedS[id] }
	type fm struct{ folder, id string }
	take := func(side mside, count int, ok func(id string) bool) []fm {
		var all []fm
		for _, f := range folders {
			for _, id := range sortedKeys(side[f]) {
				if _, inBase := r.m.base[f][id]; inBase && fresh(id) && ok(id) {
					all = append(all, fm{f, id})
				}
			}
		}
		r.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		return all[:min(count, len(all))]
	}
	for _, c := range take(r.m.local, n(300), func(string) bool { return true }) {
		r.localFlag(c.folder, c.id, pick(r.rng, modelFlags))
	}
	for range n(50) {
		r.localAdd(pick(r.rng, folders))
	}
	for _, c := range take(r.m.local, n(20), func(id string) bool { return !r.anyKeywords(id) }) {
		r.localMove(c.folder, otherFolder(folders, c.folder), c.id)
		r.touchedS[c.id] = true // reserved: the server leaves it alone
	}
	for _, c := range take(r.m.local, n(20), func(id string) bool { return !r.moved[id] }) {
		r.localDelete(c.folder, c.id)
	}
	for _, c := range take(r.m.server, n(300), func(id string) bool { return !r.moved[id] && !r.touchedS[id] }) {
		if r.rng.IntN(3) == 0 {
			r.serverToggle(c.folder, c.id, 0, pick(r.rng, modelKeywords))
		} else {
			r.serverToggle(c.folder, c.id, pick(r.rng, modelFlags), "")
		}
	}
	for range n(50) {
		r.serverAppend(pick(r.rng, folders))
	}
	for _, c := range take(r.m.server, n(20), func(id string) bool { return !r.touchedS[id] }) {
		r.serverDelete(c.folder, c.id)
	}
}

func otherFolder(folders []string, f string) string {
	i := slices.Index(folders, f)
	return folders[(i+1)%len(folders)]
}

// killed is the outcome of one run of runKilled.
type killed struct {
	code      int // exit code; -1: killed
	took      time.Duration
	out       string
	begun     int  // "committing" lines the run logged
	ended     int  // "committed" lines
	midCommit bool // killed between a "committing" and its "committed"
}

// runKilled runs one sync process and sends it SIGKILL after delay, or the
// moment it logs its atCommit-th "committing" line (with atCommit > 0),
// unless it exits first.
func runKilled(t *testing.T, cfg string, delay time.Duration, atCommit int) killed {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillTwoWayChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+cfg)
	w := testenv.NewCommitWatch(atCommit)
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		err = <-done
	case <-w.Hit:
		cmd.Process.Signal(syscall.SIGKILL)
		err = <-done
	}
	k := killed{took: time.Since(start)}
	k.out = w.String()
	k.begun, k.ended = w.Counts()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			k.code, k.midCommit = -1, k.begun > k.ended
		} else {
			k.code = ee.ExitCode()
		}
	default:
		t.Fatal(err)
	}
	return k
}
