package main

// Helpers of the end-to-end tests of `postfach run` (agent_e2e_test.go):
// one account "work" on a private Dovecot, the model of what it must hold,
// another IMAP client and another Maildir program (internal/agenttest).

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// runAccount is the account name of the run tests.
const runAccount = "work"

// runEnv is one agent test: a Dovecot, a store, a config, a model.
type runEnv struct {
	d      *testenv.Dovecot
	dir    string
	store  string
	config string
	env    []string

	model *agenttest.Model
	// server makes upstream changes; observer only reads (its own
	// connection, redialled after an outage).
	server   *agenttest.Server
	observer *agenttest.Server
	local    *agenttest.Maildir
}

// newRunEnv starts Dovecot and writes a config for one account whose
// idle_folders are all of folders (INBOX first), with the deletion valve
// open (max_delete_percent = 100: the tests delete much on purpose).
func newRunEnv(t *testing.T, prefix string, folders ...string) *runEnv {
	t.Helper()
	d := testenv.StartDovecot(t, noAuthPenalty)
	e := &runEnv{d: d, dir: t.TempDir()}
	e.store = filepath.Join(e.dir, "store")
	e.config = writeConfig(t, e.dir, "config.toml", e.store, imapAccount(d, runAccount))
	quoted := make([]string, len(folders))
	for i, f := range folders {
		quoted[i] = fmt.Sprintf("%q", f)
	}
	extra := fmt.Sprintf("idle_folders = [%s]\nmax_delete_percent = 100\n", strings.Join(quoted, ", "))
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(extra); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.env = environ(t, nil)
	e.model = agenttest.NewModel(prefix, uint64(time.Now().UnixNano()), folders...)
	e.server = e.dial(t)
	e.observer = e.dial(t)
	e.local = agenttest.NewMaildir(e.store, runAccount, e.model)
	t.Cleanup(func() {
		e.server.Close()
		e.observer.Close()
	})
	return e
}

func (e *runEnv) dial(t testing.TB) *agenttest.Server {
	t.Helper()
	c, err := e.d.Dial(testenv.DefaultUser.Name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := agenttest.NewServer(c, e.model)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// redial replaces both IMAP connections (after an outage).
func (e *runEnv) redial(t testing.TB) {
	t.Helper()
	e.server.Close()
	e.observer.Close()
	e.server, e.observer = e.dial(t), e.dial(t)
}

// seedUpstream puts n new messages on the server, spread over the
// model's folders, owned by owner: by APPEND when few, straight into
// Dovecot's Maildir when many.
func (e *runEnv) seedUpstream(t testing.TB, n int, owner agenttest.Side) {
	t.Helper()
	if n <= 50 {
		for i := range n {
			if _, err := e.server.Deliver(e.model.Folders[i%len(e.model.Folders)], owner); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	msgs := make([]corpus.Message, n)
	for i := range msgs {
		m := e.model.Prepare(e.model.Folders[i%len(e.model.Folders)], owner)
		msgs[i] = corpus.Message{Folder: m.Folder, MessageID: m.ID, Raw: m.CRLF(), Date: time.Now().Add(-time.Hour)}
	}
	e.d.SeedFiles(t, testenv.DefaultUser.Name, msgs)
}

// startAgent starts `postfach run` (with extra arguments) and waits until
// every account is idle. The agent is killed at the end of the test if it
// still runs; its output is logged when the test failed.
func (e *runEnv) startAgent(t testing.TB, extra ...string) *agenttest.Agent {
	t.Helper()
	a := e.spawnAgent(t, extra...)
	if _, err := a.WaitIdle(idleTimeout()); err != nil {
		t.Fatal(err)
	}
	return a
}

// spawnAgent starts `postfach run` without waiting.
func (e *runEnv) spawnAgent(t testing.TB, extra ...string) *agenttest.Agent {
	t.Helper()
	a, err := agenttest.StartAgent(postfachBin, e.config, e.env, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("postfach run (pid %d) output:\n%s", a.PID(), a.Log().String())
		}
	})
	return a
}

// idleTimeout bounds the wait for an agent's first idle state (its first
// sync included).
func idleTimeout() time.Duration {
	if raceEnabled {
		return 3 * time.Minute
	}
	return time.Minute
}

// stopAgent stops the agent with SIGTERM, which must take under 5 s.
func stopAgent(t testing.TB, a *agenttest.Agent) time.Duration {
	t.Helper()
	took, err := a.Stop(5 * time.Second)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, a.Log().String())
	}
	return took
}

// serverSnapshot reads the server through the observer connection.
func (e *runEnv) serverSnapshot(withBody bool) (map[string][]agenttest.Seen, error) {
	return e.observer.Snapshot(withBody)
}

// checkBoth checks the server and the Maildir against the model, byte for
// byte, then (no agent may run) the store against the server with
// mirrortest.Compare, which also checks the index and tmp/.
func (e *runEnv) checkBoth(t testing.TB) {
	t.Helper()
	var diffs []string
	server, err := e.serverSnapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	diffs = append(diffs, e.model.Diff("server", server)...)
	local, err := e.local.Snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	diffs = append(diffs, e.model.Diff("local", local)...)
	for i, d := range diffs {
		if i == 40 {
			t.Errorf("... and %d more differences", len(diffs)-40)
			break
		}
		t.Error(d)
	}
	if len(diffs) > 0 {
		t.FailNow()
	}
	compare(t, e.d, e.store, runAccount)
}

// latencies summarises delays: median and worst.
type latencies []time.Duration

func (l latencies) String() string {
	if len(l) == 0 {
		return "none"
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return fmt.Sprintf("median %v, worst %v over %d", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}
