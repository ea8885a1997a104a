package main

// End-to-end tests of `postfach run`, the agent, against a private
// Dovecot: how fast changes cross in each direction, a server outage, a
// SIGTERM during a busy sync, kill -9 at random moments under load. The
// harness (internal/agenttest) keeps a model of what the account must hold
// and checks both sides against it byte for byte; mirrortest.Compare then
// checks the store, its index included, against the server.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/maildir"
)

// pushLimit is how long a change may take to cross: issue 10's "within 2
// seconds". A binary built with -race (the CI's -short race run) is several
// times slower than the product: there it is 6 s.
func pushLimit() time.Duration {
	if raceEnabled {
		return 6 * time.Second
	}
	return 2 * time.Second
}

// waitLimit is how long a test waits for a change that is late, before it
// gives up on it (a late change is an error already).
const waitLimit = 30 * time.Second

// TestRunLatency: with `postfach run` idle, N messages APPENDed by another
// client (to INBOX and to a second folder in idle_folders) each reach the
// Maildir within 2 s, and N changes made in the Maildir by another program
// (a file added to new/ or cur/, a flag rename, a move to the other folder,
// a deletion) each reach Dovecot within 2 s. The changes come one every
// 250 ms, as a steady stream, each timed on its own from the moment it was
// made to the first look that finds it on the other side. Median and worst
// are logged. Afterwards both sides hold exactly what the model says, byte
// for byte.
//
// Not parallel: it runs before the package's parallel tests (the kill -9
// loop, the outage), whose agents would otherwise share the two cores
// with the one being timed.
func TestRunLatency(t *testing.T) {
	n := 40 // of each direction; POSTFACH_LATENCY_N=100 for the README's figures
	if testing.Short() {
		n = 12
	}
	if s := os.Getenv("POSTFACH_LATENCY_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 4 {
			t.Fatalf("POSTFACH_LATENCY_N=%q: want a number of changes, 4 or more", s)
		}
	}
	e := newRunEnv(t, "latency", "INBOX", "Second")
	a := e.startAgent(t)

	// Down: deliveries alternating between the folders.
	delivered := make([]string, 0, n)
	down, _ := measureLatency(t, "upstream -> Maildir", n, pushLimit(), func(i int) (string, string, error) {
		folder := e.model.Folders[i%2]
		msg, err := e.server.Deliver(folder, agenttest.Local) // the local phase changes them
		delivered = append(delivered, msg.ID)
		return msg.ID, "APPEND to " + folder, err
	}, func() (map[string][]agenttest.Seen, error) { return e.local.Snapshot(false) }, e.model)
	t.Logf("upstream -> Maildir (APPEND to INBOX and Second): %s", down)

	// Up: kinds in turn, each on a message of its own.
	next := 0 // next delivered message to change
	up, perKind := measureLatency(t, "Maildir -> upstream", n, pushLimit(), func(i int) (string, string, error) {
		if i%4 == 0 {
			folder := e.model.Folders[(i/4)%2]
			if (i/8)%2 == 0 {
				msg, err := e.local.Add(folder, 0, agenttest.Local)
				return msg.ID, "new file in new/", err
			}
			msg, err := e.local.Add(folder, maildir.FlagSeen, agenttest.Local)
			return msg.ID, "new file in cur/", err
		}
		msg, _ := e.model.Get(delivered[next])
		next++
		switch i % 4 {
		case 1:
			return msg.ID, "flag rename", e.local.SetFlags(msg, e.model.RandomFlags(msg.Flags))
		case 2:
			return msg.ID, "move", e.local.Move(msg, e.model.OtherFolder(msg.Folder))
		default:
			return msg.ID, "deletion", e.local.Delete(msg)
		}
	}, func() (map[string][]agenttest.Seen, error) { return e.serverSnapshot(false) }, e.model)
	t.Logf("Maildir -> upstream (all changes): %s", up)
	for k, l := range perKind {
		t.Logf("Maildir -> upstream (%s): %s", k, l)
	}

	// SIGTERM may land in a sync a late nudge started, which then stops
	// half done by design (the next run completes it): the store is held
	// to the server after that next run.
	stopAgent(t, a)
	mustRun(t, nil, "--config", e.config, "sync")
	e.checkBoth(t)
}

// latencyPace is the time between two changes of TestRunLatency.
const latencyPace = 250 * time.Millisecond

// measureLatency makes n changes, one every latencyPace (change(i) makes
// the i-th and returns its message and its kind), and looks at the other
// side (snapshot) between them until each change is there as the model
// has it. Each change over limit is an error; one missing after
// waitLimit ends the test. It returns the latencies, also by kind.
func measureLatency(t *testing.T, what string, n int, limit time.Duration, change func(i int) (id, kind string, err error),
	snapshot func() (map[string][]agenttest.Seen, error), model *agenttest.Model) (latencies, map[string]latencies) {
	t.Helper()
	type pending struct {
		id, kind string
		i        int
		at       time.Time
	}
	var all latencies
	perKind := map[string]latencies{}
	var waiting []pending
	made := 0
	nextAt := time.Now()
	for made < n || len(waiting) > 0 {
		if made < n && !time.Now().Before(nextAt) {
			id, kind, err := change(made)
			if err != nil {
				t.Fatalf("%s: change %d (%s of %s): %v", what, made, kind, id, err)
			}
			waiting = append(waiting, pending{id: id, kind: kind, i: made, at: time.Now()})
			made++
			nextAt = nextAt.Add(latencyPace)
		}
		got, err := snapshot()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		kept := waiting[:0]
		for _, p := range waiting {
			want, _ := model.Get(p.id)
			if len(model.DiffOf("", got, []agenttest.Msg{want})) > 0 {
				if now.Sub(p.at) > waitLimit {
					t.Fatalf("%s: change %d (%s of %s) not there after %v: %s", what, p.i, p.kind, p.id, waitLimit,
						strings.Join(model.DiffOf("", got, []agenttest.Msg{want}), "; "))
				}
				kept = append(kept, p)
				continue
			}
			lat := now.Sub(p.at)
			if lat > limit {
				t.Errorf("%s: change %d (%s of %s) took %v, over %v", what, p.i, p.kind, p.id, lat.Round(time.Millisecond), limit)
			}
			all = append(all, lat)
			perKind[p.kind] = append(perKind[p.kind], lat)
		}
		waiting = kept
		time.Sleep(5 * time.Millisecond) // between looks, not a wait for a condition
	}
	return all, perKind
}

// TestRunOutage: with the agent running, Dovecot stops for a while (30 s,
// long enough for the backoff to grow past 10 s; 10 s with -short) while
// local changes are made. status --json says offline with the next
// retry; when Dovecot is back every change reaches it without a restart of
// the agent; the log shows the outage once and the recovery once, not a
// line per retry.
func TestRunOutage(t *testing.T) {
	t.Parallel()
	outage := 30 * time.Second
	if testing.Short() {
		outage = 10 * time.Second
	}
	e := newRunEnv(t, "outage", "INBOX", "Second")
	e.seedUpstream(t, 24, agenttest.Local)
	a := e.startAgent(t, "--log-format", "json")
	if _, err := agenttest.Poll(waitLimit, 20*time.Millisecond, func() (bool, error) {
		got, err := e.local.Snapshot(false)
		return err == nil && len(e.model.Diff("local", got)) == 0, err
	}); err != nil {
		t.Fatalf("the seeded messages did not reach the Maildir: %v", err)
	}

	stopped := time.Now()
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	// Changes of every kind, spread over the outage; the first one makes
	// the agent try the server (if its IDLE has not noticed already), and
	// it must then say offline, with its next retry.
	if err := outageChange(e, 0); err != nil {
		t.Fatal(err)
	}
	kinds := 1
	st, err := a.WaitStatus(waitLimit, "account offline", func(s *agenttest.AgentStatus) bool { return s.AllIn("offline") })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("offline %v after Dovecot stopped: %s", time.Since(stopped).Round(time.Millisecond), st.States())
	checkNextRetry(t, st)
	tick := time.NewTicker(outage / 16)
	for time.Since(stopped) < outage {
		<-tick.C
		if err := outageChange(e, kinds); err != nil {
			t.Fatal(err)
		}
		kinds++
	}
	tick.Stop()
	st, err = a.WaitStatus(waitLimit, "account still offline", func(s *agenttest.AgentStatus) bool { return s.AllIn("offline") })
	if err != nil {
		t.Fatal(err)
	}
	checkNextRetry(t, st)

	restarted := time.Now()
	if err := e.d.Start(); err != nil {
		t.Fatal(err)
	}
	e.redial(t)
	// The agent retries at its next_retry at the latest (its backoff is
	// capped); allow for that plus the sync.
	limit := waitLimit
	for _, acct := range st.Accounts {
		if at, err := time.Parse(time.RFC3339, acct.NextRetry); err == nil && time.Until(at)+waitLimit > limit {
			limit = time.Until(at) + waitLimit
		}
	}
	recovered, err := agenttest.Poll(limit, 50*time.Millisecond, func() (bool, error) {
		got, err := e.serverSnapshot(false)
		if err != nil {
			return false, err
		}
		return len(e.model.Diff("server", got)) == 0, nil
	})
	if err != nil {
		got, _ := e.serverSnapshot(false)
		t.Fatalf("%d changes made during the outage did not all reach Dovecot %v after it came back: %v\n%s",
			kinds, limit, err, strings.Join(e.model.Diff("server", got), "\n"))
	}
	t.Logf("%d changes made during a %v outage reached Dovecot %v after it came back", kinds, outage, recovered.Sub(restarted).Round(time.Millisecond))
	if _, err := a.WaitIdle(waitLimit); err != nil {
		t.Fatal(err)
	}
	idle := time.Now()
	select {
	case <-a.Exited():
		t.Fatalf("the agent exited: %v", a.ExitErr())
	default:
	}

	checkOutageLog(t, a.Log().Lines(stopped, restarted), a.Log().Lines(restarted, idle.Add(time.Second)))
	stopAgent(t, a)
	e.checkBoth(t)
}

// outageChange makes the i-th local change of the outage test: kinds in
// turn (new file, flag rename, move, deletion).
func outageChange(e *runEnv, i int) error {
	var err error
	switch i % 4 {
	case 0:
		_, err = e.local.Add(e.model.Folders[(i/4)%2], 0, agenttest.Local)
	default:
		msg, ok := e.model.Pick(agenttest.Local, func(m agenttest.Msg) bool { return m.Flags == 0 && m.Moved == "" })
		if !ok {
			return errors.New("no message left to change")
		}
		switch i % 4 {
		case 1:
			err = e.local.SetFlags(msg, maildir.FlagFlagged|maildir.FlagSeen)
		case 2:
			err = e.local.Move(msg, e.model.OtherFolder(msg.Folder))
		case 3:
			err = e.local.Delete(msg)
		}
	}
	return err
}

// checkNextRetry: an offline account names its next retry, in RFC 3339.
func checkNextRetry(t *testing.T, st *agenttest.AgentStatus) {
	t.Helper()
	for _, acct := range st.Accounts {
		if _, err := time.Parse(time.RFC3339, acct.NextRetry); err != nil {
			t.Errorf("status --json: offline account %s: next_retry %q is not RFC 3339", acct.Name, acct.NextRetry)
		}
	}
}

// stateWords are what a log line about connectivity says.
var stateWords = regexp.MustCompile(`(?i)offline|online|unreachable|reconnect|recover|retry|connect|refused`)

// checkOutageLog: during the outage something was logged, and no line
// twice (a line per retry repeats itself); after it, the recovery was
// logged, and no line about connectivity and no warning or error twice.
func checkOutageLog(t *testing.T, during, after []agenttest.LogLine) {
	t.Helper()
	dump := func(lines []agenttest.LogLine) string {
		var b strings.Builder
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s %s\n", l.Time.Format("15:04:05.000"), l.Text)
		}
		return b.String()
	}
	if len(during) == 0 {
		t.Errorf("nothing logged while Dovecot was down")
	}
	for k, n := range agenttest.Repeated(during) {
		t.Errorf("during the outage, %q logged %d times, want once:\n%s", k, n, dump(during))
	}
	if len(after) == 0 {
		t.Errorf("nothing logged when Dovecot came back")
	}
	var watched []agenttest.LogLine
	for _, l := range after {
		k := l.Key()
		if stateWords.MatchString(k) || strings.HasPrefix(k, "WARN") || strings.HasPrefix(k, "ERROR") {
			watched = append(watched, l)
		}
	}
	for k, n := range agenttest.Repeated(watched) {
		t.Errorf("after the outage, %q logged %d times, want once:\n%s", k, n, dump(after))
	}
	t.Logf("log during the outage:\n%safter it:\n%s", dump(during), dump(after))
}

// TestRunSIGTERMBusy: SIGTERM while the agent is busy with its first sync
// of a few thousand messages stops it within 5 s; the next start
// completes the sync, and nothing is lost or doubled on either side.
func TestRunSIGTERMBusy(t *testing.T) {
	t.Parallel()
	n := 4000
	if testing.Short() {
		n = 2000
	}
	e := newRunEnv(t, "sigterm", "INBOX", "Second")
	e.seedUpstream(t, n, agenttest.Upstream)

	a := e.spawnAgent(t)
	var before int
	if _, err := agenttest.Poll(idleTimeout(), 2*time.Millisecond, func() (bool, error) {
		select {
		case <-a.Exited():
			return false, fmt.Errorf("postfach run exited: %v\n%s", a.ExitErr(), a.Log().String())
		default:
		}
		before = countFiles(e.store)
		return before > 0, nil
	}); err != nil {
		t.Fatalf("no message reached the Maildir: %v", err)
	}
	took := stopAgent(t, a)
	after := countFiles(e.store)
	// In-flight work may be finished after SIGTERM (within the 5 s).
	t.Logf("SIGTERM with %d of %d messages stored: exited after %v, %d stored then", before, n, took.Round(time.Millisecond), after)
	if before >= n {
		t.Fatalf("the sync had finished (%d of %d stored) before SIGTERM: not a busy sync; raise n", before, n)
	}

	a = e.startAgent(t)
	stopAgent(t, a)
	e.checkBoth(t)
}

// countFiles counts message files below dir (cur/ and new/).
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if s := filepath.Base(filepath.Dir(path)); s == "cur" || s == "new" {
				n++
			}
		}
		return nil
	})
	return n
}

// TestRunKill9: under a mixed load on both sides (another IMAP client
// delivering, flagging, moving and deleting; another program doing the
// same with files in the Maildir), `postfach run` is killed with SIGKILL
// at 50 random moments (8 with -short), each time restarted. Then a clean
// `postfach sync`: both sides hold exactly what the model says, byte for
// byte, nothing lost or doubled.
func TestRunKill9(t *testing.T) {
	t.Parallel()
	rounds := 50
	if testing.Short() {
		rounds = 8
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 9))
	e := newRunEnv(t, "kill", "INBOX", "Second")
	e.seedUpstream(t, 20, agenttest.Upstream)
	e.seedUpstream(t, 20, agenttest.Local)
	// The local side's messages must be local before it can change them.
	a := e.startAgent(t)
	a.Kill()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait() // before the store is removed
	defer cancel()
	var upN, localN int
	var upErr, localErr error
	wg.Go(func() {
		upN, upErr = agenttest.RunSteps(ctx, 40*time.Millisecond, func() (string, error) { return agenttest.UpstreamStep(e.server) })
	})
	wg.Go(func() {
		localN, localErr = agenttest.RunSteps(ctx, 40*time.Millisecond, func() (string, error) { return agenttest.LocalStep(e.local) })
	})
	var early []string
	for r := range rounds {
		a := e.spawnAgent(t)
		delay := time.Duration(rnd.IntN(1500)) * time.Millisecond
		select {
		case <-time.After(delay):
			a.Kill()
			t.Logf("round %d: killed pid %d at %s, %v after its start", r, a.PID(), time.Now().Format("15:04:05.000"), delay)
		case <-a.Exited():
			early = append(early, fmt.Sprintf("round %d: postfach run exited by itself (%v):\n%s", r, a.ExitErr(), a.Log().String()))
		}
	}
	cancel()
	wg.Wait()
	if upErr != nil || localErr != nil {
		t.Fatalf("load: upstream: %v; local: %v", upErr, localErr)
	}
	for _, s := range early {
		t.Error(s)
	}
	t.Logf("%d kills under %d upstream and %d local changes", rounds, upN, localN)

	mustRun(t, nil, "--config", e.config, "sync")
	e.checkBoth(t)
}
