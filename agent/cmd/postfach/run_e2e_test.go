package main

// End-to-end tests of `postfach run`, the agent: started as a subprocess
// against a private Dovecot, driven by signals, the control socket
// (status, sync) and the config file.

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// agentProc is a running `postfach run`.
type agentProc struct {
	cmd    *exec.Cmd
	config string
	log    *syncBuffer // its stderr
	exited chan struct{}
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent starts `postfach --config config run -v` (text log on
// stderr); the test's end kills it if it still runs.
func startAgent(t *testing.T, config string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{config: config, log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(postfachBin, append([]string{"--config", config, "run", "-v"}, args...)...)
	p.cmd.Env = environ(t, nil)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("postfach run log:\n%s", p.log)
		}
	})
	return p
}

// runStatus is `status --json` with the agent's block: the keys of the
// interface later checks rely on, and no others.
type runStatus struct {
	Accounts []struct {
		Name     string `json:"name"`
		Messages int    `json:"messages"`
		Error    string `json:"error"`
	} `json:"accounts"`
	Agent *struct {
		PID      int `json:"pid"`
		Accounts []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			NextRetry string `json:"next_retry"`
		} `json:"accounts"`
	} `json:"agent"`
}

// status runs `status --json` and decodes it; the agent block must hold
// exactly the documented keys.
func (p *agentProc) status(t *testing.T) runStatus {
	t.Helper()
	r := mustRun(t, nil, "--config", p.config, "status", "--json")
	checkStatusShape(t, r.stdout)
	var doc struct {
		Agent json.RawMessage `json:"agent"`
	}
	json.Unmarshal([]byte(r.stdout), &doc)
	if doc.Agent != nil {
		var ag struct {
			Accounts []json.RawMessage `json:"accounts"`
		}
		if err := json.Unmarshal(doc.Agent, &ag); err != nil {
			t.Fatalf("status --json: agent: %v\n%s", err, r.stdout)
		}
		for _, a := range ag.Accounts {
			var keys map[string]any
			json.Unmarshal(a, &keys)
			for _, k := range []string{"name", "state", "next_retry"} {
				if _, ok := keys[k].(string); !ok {
					t.Errorf("status --json: agent account %s: %q is not a string", a, k)
				}
			}
			if len(keys) != 3 {
				t.Errorf("status --json: agent account %s: want exactly name, state and next_retry", a)
			}
		}
	}
	var st runStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

// states returns the agent's account states ("" when no agent answers),
// with next_retry after a comma when set.
func (st runStatus) states() map[string]string {
	out := map[string]string{}
	if st.Agent == nil {
		return out
	}
	for _, a := range st.Agent.Accounts {
		out[a.Name] = a.State
		if a.NextRetry != "" {
			out[a.Name] += "," + a.NextRetry
		}
	}
	return out
}

// waitStates waits until the agent reports exactly the states want (for
// "offline", any next_retry).
func (p *agentProc) waitStates(t *testing.T, timeout time.Duration, want map[string]string) runStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			t.Fatalf("postfach run exited (%v) while waiting for %v", p.cmd.ProcessState, want)
		default:
		}
		st := p.status(t)
		got := st.states()
		ok := len(got) == len(want)
		for name, w := range want {
			g, _, _ := strings.Cut(got[name], ",")
			ok = ok && g == w
		}
		if ok {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent states %v after %v, want %v", got, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFiles waits until dir holds n message files.
func waitFiles(t *testing.T, dir string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, _ := fileCounts(t, dir)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d message files after %v, want %d", dir, got, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends sig and waits for the agent's exit, at most 5 seconds.
func (p *agentProc) stop(t *testing.T, sig syscall.Signal) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, into the log
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("postfach run still runs 5 s after %v", sig)
	}
	return time.Since(start), p.cmd.ProcessState.ExitCode()
}

// withPoll sets poll_interval on every account of a config file.
func withPoll(t *testing.T, config, interval string) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("\nusername = "), []byte("\npoll_interval = "+strconv.Quote(interval)+"\nusername = "))
	if err := os.WriteFile(config, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRun: `postfach run` syncs every account at start; a second run is
// refused naming the first's process; status --json shows the agent;
// `sync` goes through the agent; a wrong password parks its account with
// state "error" while the other one keeps syncing (on request and on its
// poll); SIGHUP adds an account and retries the parked one once its
// password is fixed, without restarting the others; SIGTERM stops it
// within 5 seconds with exit status 0, leaving an exact mirror.
func TestRun(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, noAuthPenalty)
	user := testenv.DefaultUser.Name
	d.Seed(t, user, corpus.Generate(101, 40, corpus.Options{}))
	encoded, _ := searchMessages(t)
	d.Seed(t, user, encoded)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	work := imapAccount(d, "work")
	bad := imapAccount(d, "bad")
	bad.password = "wrong"
	cfg := writeConfig(t, dir, "config.toml", store, work, bad)
	withPoll(t, cfg, "10s")

	p := startAgent(t, cfg)
	st := p.waitStates(t, 60*time.Second, map[string]string{"work": "idle", "bad": "error"})
	if st.Agent.PID != p.cmd.Process.Pid {
		t.Errorf("status: agent pid %d, want %d", st.Agent.PID, p.cmd.Process.Pid)
	}
	waitFiles(t, filepath.Join(store, "work"), 43, 10*time.Second)
	// The agent indexes new mail for search when idle (search leaves it
	// to a running agent): a word only the decoded body holds is found.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := mustSearch(t, nil, "--config", cfg, "search", "Quokkaparade")
		if strings.Contains(r.stdout, "Heute im Park") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search finds nothing 20 s after the sync: the agent did not index:\n%s", r)
		}
	}
	for _, a := range st.Accounts {
		if a.Name == "bad" && !strings.Contains(a.Error, "authentication failed") {
			t.Errorf("status: account bad: error %q, want the failed login", a.Error)
		}
	}
	// The state is live: the agent may be in a short sync its own
	// deliveries set off (the file watcher), so status is asked until it
	// says idle, for a while.
	wants := []string{"agent: postfach run, process " + strconv.Itoa(p.cmd.Process.Pid), "idle", "stopped by an error"}
	var r result
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r = mustRun(t, nil, "--config", cfg, "status")
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(r.stdout, w) }) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status does not say %q:\n%s", want, r.stdout)
		}
	}

	// One agent per store: a second run, and a sync run without the
	// socket's help, are refused naming the process.
	r = run(t, nil, "--config", cfg, "run")
	checkOneLineError(t, r, "another postfach is syncing", "postfach run, process "+strconv.Itoa(p.cmd.Process.Pid))

	// sync goes through the agent: new mail is there when it returns.
	d.Seed(t, user, corpus.Generate(102, 3, corpus.Options{Folders: []string{"INBOX"}}))
	if res := syncResults(t, cfg, "work"); len(res) != 1 || res[0].New != 3 || res[0].Error != "" {
		t.Errorf("sync through the agent: %+v, want 3 new for work", res)
	}
	waitFiles(t, filepath.Join(store, "work"), 46, time.Second)
	r = run(t, nil, "--config", cfg, "sync", "bad")
	checkOneLineError(t, r, "bad: ", "authentication failed")
	// A dry run goes through the agent too (its own sync would wait).
	d.Seed(t, user, corpus.Generate(104, 1, corpus.Options{Folders: []string{"INBOX"}}))
	r = mustRun(t, nil, "--config", cfg, "sync", "--dry-run", "work")
	if !strings.Contains(r.stdout, "work: dry run, nothing changed") {
		t.Errorf("sync --dry-run through the agent:\n%s", r)
	}
	// What cannot go through the agent is refused, naming it.
	r = run(t, nil, "--config", cfg, "migrate", "--from", "work", "--to", "work:Copy")
	checkOneLineError(t, r, "another postfach is syncing", "postfach run, process "+strconv.Itoa(p.cmd.Process.Pid))
	mustRun(t, nil, "--config", cfg, "sync", "work")

	// The poll brings new mail without being asked.
	d.Seed(t, user, corpus.Generate(103, 2, corpus.Options{Folders: []string{"INBOX"}}))
	waitFiles(t, filepath.Join(store, "work"), 49, 20*time.Second)

	// SIGHUP with an account whose folder holds another program's
	// Maildir: refused as at start, the agent goes on as it was.
	writeMaildirFile(t, filepath.Join(store, "other", "INBOX"), "1.foreign:2,S")
	writeConfig(t, dir, "config.toml", store, work, bad, imapAccount(d, "other"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(p.log.String(), "config not reloaded"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no \"config not reloaded\" 20 s after SIGHUP with a foreign Maildir")
		}
	}
	if !strings.Contains(p.log.String(), "another program's Maildir") {
		t.Errorf("the refused reload does not say why:\n%s", p.log)
	}
	if strings.Contains(p.log.String(), "account=other") {
		t.Errorf("the refused reload started the account:\n%s", p.log)
	}

	// SIGHUP: a new account, bad's password fixed, work unchanged.
	bad.password = work.password
	home := imapAccount(d, "home")
	writeConfig(t, dir, "config.toml", store, work, bad, home)
	withPoll(t, cfg, "10s")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitStates(t, 60*time.Second, map[string]string{"work": "idle", "bad": "idle", "home": "idle"})
	waitFiles(t, filepath.Join(store, "home"), 49, 10*time.Second)
	waitFiles(t, filepath.Join(store, "bad"), 49, 10*time.Second)
	log := p.log.String()
	for _, want := range []string{"account added", "account=home", "config reloaded"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not say %q", want)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "account removed") || strings.Contains(line, "account changed") && !strings.Contains(line, "account=bad") {
			t.Errorf("the reload restarted or removed an account it did not change: %s", line)
		}
	}

	took, code := p.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	t.Logf("stopped %v after SIGTERM", took)
	if _, err := os.Stat(filepath.Join(store, ".postfach", "agent.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is still there after the agent stopped: %v", err)
	}
	for _, acct := range []string{"work", "bad", "home"} {
		compare(t, d, store, acct)
	}
	// Without an agent, sync takes the store itself again.
	if res := syncJSON(t, cfg, "work"); res.Error != "" || res.New != 0 {
		t.Errorf("sync after the agent stopped: %+v", res)
	}
}

// tcpProxy forwards a local port to a server, and can be taken down (the
// port closed, every connection cut) and up again on the same port.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// down closes the port and cuts every connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens on the same port again.
func (p *tcpProxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// TestRunOffline: while the server's port is closed the account is
// offline with a next retry, retried with growing waits, and logged once;
// when the port opens again the account comes back by itself (logged
// once) and syncs what arrived meanwhile. The agent's open files are the
// same before the outage and after the recovery.
func TestRunOffline(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	user := testenv.DefaultUser.Name
	d.Seed(t, user, corpus.Generate(111, 10, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	proxy := startProxy(t, d.IMAPAddr())
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	acct := imapAccount(d, "work")
	acct.port = proxy.port()
	cfg := writeConfig(t, dir, "config.toml", store, acct)
	withPoll(t, cfg, "10s")

	p := startAgent(t, cfg)
	p.waitStates(t, 60*time.Second, map[string]string{"work": "idle"})
	waitFiles(t, filepath.Join(store, "work"), 10, 10*time.Second)
	fdsBefore := openFiles(t, p.cmd.Process.Pid)

	proxy.down()
	// A sync asked for now fails and says why; the account goes offline.
	r := run(t, nil, "--config", cfg, "sync", "work")
	checkOneLineError(t, r, "work: ", "refused")
	st := p.waitStates(t, 5*time.Second, map[string]string{"work": "offline"})
	next, err := time.Parse(time.RFC3339, st.Agent.Accounts[0].NextRetry)
	if err != nil || next.Before(time.Now().Add(-2*time.Second)) || next.After(time.Now().Add(time.Minute)) {
		t.Errorf("offline: next_retry %q (%v), want a time within the next seconds", st.Agent.Accounts[0].NextRetry, err)
	}
	// Retried with backoff (1, 2, 4 s ...): at least three attempts,
	// each wait longer than the one before, one log line for all.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.log.String(), "still offline") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 retries in 20 s:\n%s", p.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var gaps []time.Duration
	var last time.Time
	for _, line := range strings.Split(p.log.String(), "\n") {
		if !strings.Contains(line, "offline") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("log line without a time: %q", line)
		}
		if !last.IsZero() {
			gaps = append(gaps, at.Sub(last))
		}
		last = at
	}
	t.Logf("time between attempts while offline: %v", gaps)
	for i := 1; i < len(gaps); i++ {
		if gaps[i] <= gaps[i-1] {
			t.Errorf("waits between attempts %v: not growing", gaps)
		}
	}
	d.Seed(t, user, corpus.Generate(112, 4, corpus.Options{Folders: []string{"INBOX"}}))
	proxy.up()
	p.waitStates(t, 30*time.Second, map[string]string{"work": "idle"})
	waitFiles(t, filepath.Join(store, "work"), 14, 10*time.Second)
	log := p.log.String()
	if n := strings.Count(log, "offline: retrying"); n != 1 {
		t.Errorf("the outage is logged %d times, want once:\n%s", n, log)
	}
	if n := strings.Count(log, "back online"); n != 1 {
		t.Errorf("the recovery is logged %d times, want once:\n%s", n, log)
	}
	// (Descriptors of connections being closed may take a moment.)
	fds := openFiles(t, p.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); fds > fdsBefore && time.Now().Before(deadline); fds = openFiles(t, p.cmd.Process.Pid) {
		time.Sleep(100 * time.Millisecond)
	}
	if fds > fdsBefore {
		t.Errorf("%d open files after the outage, %d before", fds, fdsBefore)
	}
	if _, code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0", code)
	}
	compare(t, d, store, "work")
}

// openFiles counts the open file descriptors of a process but the
// index's (its connection pool grows and shrinks with the load: bounded).
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join(dir, e.Name())); !strings.Contains(l, "/.postfach/index.db") {
			n++
		}
	}
	return n
}

// TestLaunchdPlistRunsWhatExists: the shipped launchd plist is well-formed
// XML whose ProgramArguments run a postfach command that exists (the
// systemd units are checked by TestSystemdUnitsRunWhatExists).
func TestLaunchdPlistRunsWhatExists(t *testing.T) {
	t.Parallel()
	plists, _ := filepath.Glob("../../../configs/launchd/*.plist")
	if len(plists) == 0 {
		t.Fatal("no launchd plist in configs/launchd")
	}
	for _, path := range plists {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(f)
		var args []string
		var lastKey, inArray string
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "array" {
				inArray = ""
			}
			se, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			var text string
			switch se.Name.Local {
			case "key":
				dec.DecodeElement(&text, &se)
				lastKey = text
			case "array":
				inArray = lastKey
			case "string":
				dec.DecodeElement(&text, &se)
				if inArray == "ProgramArguments" {
					args = append(args, text)
				}
			}
		}
		f.Close()
		if len(args) < 2 || filepath.Base(args[0]) != "postfach" {
			t.Fatalf("%s: ProgramArguments %q, want postfach and a command", path, args)
		}
		r := run(t, nil, append(args[1:], "--help")...)
		if r.code != 0 || strings.Contains(r.stdout, "Available Commands") {
			t.Errorf("%s: runs %q, which is not a postfach command: %s", path, args, r)
		}
	}
}

// TestRunStopBusy: SIGTERM in the middle of the first big sync stops the
// agent within 5 seconds with exit status 0; the next start goes on from
// there and leaves an exact mirror, nothing lost or doubled. The log is
// JSON with --log-format json, one object per line.
func TestRunStopBusy(t *testing.T) {
	t.Parallel()
	n := 1500
	if testing.Short() {
		n = 400
	}
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(121, n, corpus.Options{}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))

	p := startAgent(t, cfg, "--log-format", "json")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got, _ := fileCounts(t, filepath.Join(store, "work")); got > 0 {
			if got == n {
				t.Logf("the sync ended before the signal: the stop was not tested busy")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no message stored 60 s after the start")
		}
	}
	took, code := p.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	got, _ := fileCounts(t, filepath.Join(store, "work"))
	t.Logf("stopped %v after SIGTERM, %d of %d messages stored", took, got, n)
	for _, line := range strings.Split(strings.TrimSpace(p.log.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil || rec["time"] == nil {
			t.Errorf("log line is not a JSON record: %q", line)
		}
	}

	p = startAgent(t, cfg)
	p.waitStates(t, 60*time.Second, map[string]string{"work": "idle"})
	p.stop(t, syscall.SIGINT)
	compare(t, d, store, "work")
}
