package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/outbox"
)

// fakeSenders stands in for outbox.Sender in the agent's tests: it records
// which senders were made, ran and stopped, and their nudges.
type fakeSenders struct {
	mu     sync.Mutex
	events []string // "make work 2525", "stop work 2525"
	nudges map[string]int
	opts   map[string]outbox.Options
}

type fakeSender struct {
	f    *fakeSenders
	name string
}

func (f *fakeSenders) make(o outbox.Options) (mailSender, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("make %s %d", o.Account, o.Relay.Port))
	f.opts[o.Account] = o
	return &fakeSender{f: f, name: fmt.Sprintf("%s %d", o.Account, o.Relay.Port)}, nil
}

func (s *fakeSender) Run(ctx context.Context) error {
	<-ctx.Done()
	s.f.mu.Lock()
	s.f.events = append(s.f.events, "stop "+s.name)
	s.f.mu.Unlock()
	return ctx.Err()
}

func (s *fakeSender) Nudge() {
	s.f.mu.Lock()
	s.f.nudges[s.name]++
	s.f.mu.Unlock()
}

func (s *fakeSender) Flush(context.Context) (outbox.FlushReport, error) {
	return outbox.FlushReport{Sent: 2, Deferred: 1}, nil
}

// waitFor waits until cond holds (f.mu held while it looks).
func (f *fakeSenders) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Fatalf("%s: never; events %q, nudges %v", what, f.events, f.nudges)
}

// outboxConfig writes a config whose accounts (name, poll interval, SMTP
// port or 0 for none) point at a closed port, and loads it.
func outboxConfig(t *testing.T, dir string, accts ...[3]string) *configs.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("[store]\npath = \"store\"\n")
	for _, a := range accts {
		fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nusername = \"%s@example.org\"\npassword = \"secret\"\npoll_interval = %q\n",
			a[0], closedPort, a[0], a[1])
		if a[2] != "0" {
			fmt.Fprintf(&b, "\n  [accounts.smtp]\n  host = \"127.0.0.1\"\n  port = %s\n  tls = \"none\"\n", a[2])
		}
	}
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// closedPort is a port nothing listens on (the accounts stay offline).
const closedPort = 9

// TestOutboxSendersFollowReload: `postfach run` runs one sender per
// account with [accounts.smtp]; a reload starts the added ones, stops the
// removed ones, restarts (stop first) the one whose [accounts.smtp]
// changed and leaves the one whose other settings changed alone. Nudges
// reach the right sender from the control socket (postfach send) and the
// store's change feed (a message queued in the agent's process), and a
// flush through the control socket reports per account.
func TestOutboxSendersFollowReload(t *testing.T) {
	fake := &fakeSenders{nudges: map[string]int{}, opts: map[string]outbox.Options{}}
	old := newMailSender
	newMailSender = fake.make
	defer func() { newMailSender = old }()

	dir := t.TempDir()
	cfg := outboxConfig(t, dir, [3]string{"work", "5m", "2525"}, [3]string{"home", "5m", "2526"}, [3]string{"old", "5m", "0"})
	a, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reload := make(chan *configs.Config)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, RunOptions{Reload: reload, StopTimeout: 10 * time.Second}) }()

	fake.waitFor(t, "senders made", func() bool { return len(fake.events) == 2 })
	if want := []string{"make work 2525", "make home 2526"}; !slices.Equal(fake.events, want) {
		t.Fatalf("at start: %q, want %q", fake.events, want)
	}
	if o := fake.opts["work"]; o.Store != a.Index() || o.Relay.Host != "127.0.0.1" || o.Relay.TLS != "none" ||
		o.Relay.Auth.Username != "work@example.org" || o.Relay.Auth.Password == nil || !o.SaveSent {
		t.Errorf("work's sender options: %+v", o)
	}

	// The control socket: postfach send's nudge, a flush.
	waitAgent(t, ctx, a)
	if err := NudgeOutbox(ctx, cfg, []string{"work"}); err != nil {
		t.Fatal(err)
	}
	fake.waitFor(t, "work nudged by the control socket", func() bool { return fake.nudges["work 2525"] == 1 })
	if err := NudgeOutbox(ctx, cfg, []string{"old"}); err == nil || !strings.Contains(err.Error(), `account "old" sends no mail`) {
		t.Errorf("nudging an account without [accounts.smtp]: %v", err)
	}
	reports, err := a.FlushThroughAgent(ctx, nil)
	want := []OutboxReport{{Account: "work", Sent: 2, Deferred: 1}, {Account: "home", Sent: 2, Deferred: 1}}
	if err != nil || !slices.Equal(reports, want) {
		t.Errorf("flush: %+v, %v; want %+v", reports, err, want)
	}

	// The change feed: a message queued in this process nudges its
	// account's sender.
	if _, err := a.Index().Enqueue(ctx, "home", index.Envelope{From: "home@example.org", To: []string{"x@example.net"}},
		strings.NewReader("Subject: s\r\n\r\nb\r\n")); err != nil {
		t.Fatal(err)
	}
	fake.waitFor(t, "home nudged by the feed", func() bool { return fake.nudges["home 2526"] >= 1 })

	// work's relay moves, home's poll interval changes, old gets one.
	fake.mu.Lock()
	fake.events = nil
	fake.mu.Unlock()
	reload <- outboxConfig(t, dir, [3]string{"work", "5m", "2527"}, [3]string{"home", "1m", "2526"}, [3]string{"old", "5m", "2528"})
	fake.waitFor(t, "first reload", func() bool { return len(fake.events) == 3 })
	if want := []string{"stop work 2525", "make work 2527", "make old 2528"}; !slices.Equal(fake.events, want) {
		t.Errorf("first reload: %q, want %q", fake.events, want)
	}
	fake.mu.Lock()
	fake.events = nil
	fake.mu.Unlock()
	reload <- outboxConfig(t, dir, [3]string{"work", "5m", "2527"}, [3]string{"old", "5m", "0"})
	fake.waitFor(t, "second reload", func() bool { return len(fake.events) == 2 })
	if got, want := slices.Sorted(slices.Values(fake.events)), []string{"stop home 2526", "stop old 2528"}; !slices.Equal(got, want) {
		t.Errorf("second reload: %q, want %q", got, want)
	}
	fake.mu.Lock()
	fake.events = nil
	fake.mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if want := []string{"stop work 2527"}; !slices.Equal(fake.events, want) {
		t.Errorf("at the end: %q, want %q", fake.events, want)
	}
}

// waitAgent waits until the agent answers on its control socket.
func waitAgent(t *testing.T, ctx context.Context, a *Agent) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := a.AgentStatus(ctx); err == nil {
			return
		}
	}
	t.Fatal("the agent never answered")
}

// TestAccountForSender: the account is chosen by its addresses, case
// aside; the only account with [accounts.smtp] takes every sender; with
// several, an unknown sender is refused.
func TestAccountForSender(t *testing.T) {
	dir := t.TempDir()
	load := func(accts ...[2]string) *configs.Config {
		var b strings.Builder
		b.WriteString("[store]\npath = \"store\"\n")
		for _, a := range accts {
			fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\nkind = \"imap\"\nhost = \"imap.example.org\"\nusername = %q\npassword = \"secret\"\n", a[0], a[1])
			if a[0] != "plain" {
				b.WriteString("\n  [accounts.smtp]\n  host = \"smtp.example.org\"\n")
			}
		}
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := configs.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load([2]string{"plain", "plain@example.org"}, [2]string{"work", "me@work.example"}, [2]string{"home", "me@home.example"})
	for _, tc := range []struct{ from, want string }{
		{"me@work.example", "work"}, {"ME@Home.Example", "home"},
		{"plain@example.org", ""}, {"other@example.org", ""}, {"", ""},
	} {
		acct, err := AccountForSender(cfg, tc.from)
		got := ""
		if acct != nil {
			got = acct.Name
		}
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%q: %q, %v; want %q", tc.from, got, err, tc.want)
		}
	}
	cfg = load([2]string{"plain", "plain@example.org"}, [2]string{"work", "me@work.example"})
	if acct, err := AccountForSender(cfg, "anyone@example.net"); err != nil || acct.Name != "work" {
		t.Errorf("the only sending account: %v, %v", acct, err)
	}
}

// TestOutboxNudgedBackOnline: when an account's server comes back after
// an outage, its sender is nudged (mail queued meanwhile may leave now).
func TestOutboxNudgedBackOnline(t *testing.T) {
	fake := &fakeSenders{nudges: map[string]int{}, opts: map[string]outbox.Options{}}
	old := newMailSender
	newMailSender = fake.make
	defer func() { newMailSender = old }()

	d := testenv.StartDovecot(t)
	proxy := newCutProxy(t, d.IMAPAddr())
	pass, _ := d.Password(testenv.DefaultUser.Name)
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(proxy.addr)
	doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = %q\nport = %s\ntls = \"none\"\nusername = %q\npassword = %q\n"+
		"\n  [accounts.smtp]\n  host = \"127.0.0.1\"\n  port = 2525\n  tls = \"none\"\n",
		filepath.Join(dir, "store"), host, port, testenv.DefaultUser.Name, pass)
	file := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	proxy.down() // offline from the start
	a, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, RunOptions{}) }()
	waitAgent(t, ctx, a)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := a.AgentStatus(ctx); err == nil && len(st.Accounts) == 1 && st.Accounts[0].State == StateOffline {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the account never went offline")
		}
	}
	fake.mu.Lock()
	before := fake.nudges["work 2525"]
	fake.mu.Unlock()
	proxy.up(t)
	if _, err := a.SyncThroughAgent(ctx, nil); err != nil { // retries now rather than after the backoff
		t.Fatal(err)
	}
	fake.waitFor(t, "the sender nudged when the account came back", func() bool { return fake.nudges["work 2525"] > before })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestFlushOutboxHoldsTheLock: without an agent, a flush sends under the
// store's sync lock: while another postfach holds it, nothing is sent.
func TestFlushOutboxHoldsTheLock(t *testing.T) {
	fake := &fakeSenders{nudges: map[string]int{}, opts: map[string]outbox.Options{}}
	old := newMailSender
	newMailSender = fake.make
	defer func() { newMailSender = old }()
	cfg := outboxConfig(t, t.TempDir(), [3]string{"work", "5m", "2525"}, [3]string{"news", "5m", "0"})
	a, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	unlock, err := lockStore(cfg.Store.Path, "postfach sync")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.FlushOutbox(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "postfach sync, process") {
		t.Errorf("flush while postfach sync holds the store: %v", err)
	}
	if len(fake.events) != 0 {
		t.Errorf("senders made while the lock was held: %q", fake.events)
	}
	unlock()
	reports, err := a.FlushOutbox(t.Context(), nil)
	if want := []OutboxReport{{Account: "work", Sent: 2, Deferred: 1}}; err != nil || !slices.Equal(reports, want) {
		t.Errorf("flush: %+v, %v; want %+v", reports, err, want)
	}
	if _, err := a.FlushOutbox(t.Context(), []string{"news"}); err == nil || !strings.Contains(err.Error(), `account "news" has no [accounts.smtp]`) {
		t.Errorf("flushing an account that sends no mail: %v", err)
	}
}

// TestSubmissionEndpointWiring: [serve] submission starts the submission
// endpoint as the other endpoints start, with the accounts that send mail
// (and their addresses) and a nudge that reaches the account's sender; a
// reload that takes the last [accounts.smtp] away stops it.
func TestSubmissionEndpointWiring(t *testing.T) {
	fake := &fakeSenders{nudges: map[string]int{}, opts: map[string]outbox.Options{}}
	old := newMailSender
	newMailSender = fake.make
	defer func() { newMailSender = old }()

	dir := t.TempDir()
	addr := freePort(t)
	write := func(accts ...[3]string) *configs.Config {
		cfg := outboxConfig(t, dir, accts...)
		f, err := os.OpenFile(cfg.File, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "\n[serve]\nsubmission = %q\n", addr)
		f.Close()
		if cfg, err = configs.Load(cfg.File); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := write([3]string{"news", "5m", "0"}, [3]string{"work", "5m", "2525"})
	a, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	made := make(chan *echoEndpoint, 4)
	mk := func(o EndpointOptions) (Endpoint, error) {
		e := newEcho(o)
		made <- e
		return e, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reload := make(chan *configs.Config)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, RunOptions{Reload: reload, Endpoints: Endpoints{Submission: mk}}) }()
	var e *echoEndpoint
	select {
	case e = <-made:
	case <-time.After(20 * time.Second):
		t.Fatal("no submission endpoint made")
	}
	<-e.addrs
	if want := []SenderAccount{{Name: "work", Addresses: []string{"work@example.org"}}}; !reflect.DeepEqual(e.opts.Senders, want) {
		t.Errorf("senders %+v, want %+v", e.opts.Senders, want)
	}
	e.opts.Nudge("work")
	fake.waitFor(t, "work's sender nudged by the endpoint", func() bool { return fake.nudges["work 2525"] >= 1 })
	st, err := a.AgentStatus(ctx)
	if err != nil || len(st.Endpoints) != 1 || st.Endpoints[0].Name != "submission" || st.Endpoints[0].Addr != addr {
		t.Errorf("status: %+v, %v", st, err)
	}

	reload <- write([3]string{"news", "5m", "0"}, [3]string{"work", "5m", "0"})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := a.AgentStatus(ctx); err == nil && len(st.Endpoints) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the submission endpoint still runs without an account that sends mail")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
