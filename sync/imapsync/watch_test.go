package imapsync_test

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/nethint"
)

// nudges records the folders an IdleWatcher names, without blocking it.
type nudges struct {
	ch chan string
}

func newNudges() *nudges { return &nudges{ch: make(chan string, 100)} }

func (n *nudges) notify(folder string) {
	select {
	case n.ch <- folder:
	default:
	}
}

// wait returns how long it took until folder was named, failing after
// limit.
func (n *nudges) wait(t *testing.T, folder string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	timeout := time.After(limit)
	for {
		select {
		case f := <-n.ch:
			if f == folder {
				return time.Since(start)
			}
		case <-timeout:
			t.Fatalf("folder %q not named within %v", folder, limit)
		}
	}
}

// waitAll waits until each of folders was named, in any order (the
// IDLEs of several folders start in no set order), failing after limit.
func (n *nudges) waitAll(t *testing.T, limit time.Duration, folders ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, f := range folders {
		left[f] = true
	}
	timeout := time.After(limit)
	for len(left) > 0 {
		select {
		case f := <-n.ch:
			delete(left, f)
		case <-timeout:
			t.Fatalf("folders %v not named within %v", slices.Sorted(maps.Keys(left)), limit)
		}
	}
}

// drain forgets what was named so far.
func (n *nudges) drain() {
	for {
		select {
		case <-n.ch:
		default:
			return
		}
	}
}

// syncBuffer is a log sink safe for the watcher's goroutines.
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

func newWatcher(e *env, addr string, n *nudges, folders ...string) (*imapsync.IdleWatcher, *syncBuffer) {
	pass, _ := e.d.Password(testenv.DefaultUser.Name)
	log := &syncBuffer{}
	return &imapsync.IdleWatcher{
		Account: "acct", Root: e.root,
		Endpoint: imapconn.Endpoint{Addr: addr, TLS: "none", Username: testenv.DefaultUser.Name, Password: pass},
		Folders:  folders,
		Notify:   n.notify,
		Logger:   slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, log
}

// runWatcher runs w in the background. done is closed when Run returned,
// err is then Run's error; stop cancels Run and returns its error,
// failing if Run does not return within 5 s.
func runWatcher(t *testing.T, w *imapsync.IdleWatcher) (stop func() error, done <-chan struct{}, err *error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var runErr error
	go func() {
		defer close(ch)
		runErr = w.Run(ctx)
	}()
	stop = func() error {
		cancel()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of its context's end")
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return stop, ch, &runErr
}

// appendTo stores one message in folder as another client would.
func appendTo(t *testing.T, c *imapclient.Client, folder string, seed int64) {
	t.Helper()
	m := corpus.Generate(seed, 1, corpus.Options{})[0]
	cmd := c.Append(folder, int64(len(m.Raw)), nil)
	if _, err := cmd.Write(m.Raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIdleWatcher: a message APPENDed by another client to INBOX or to a
// second IDLE folder, a flag change and an expunge there are named within
// a second; cancelling leaves no goroutine behind.
func TestIdleWatcher(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(21, 4, corpus.Options{Folders: []string{"INBOX", "Lists/Go"}}))
	other := e.d.Client(t, testenv.DefaultUser.Name)
	before := runtime.NumGoroutine()
	n := newNudges()
	w, log := newWatcher(e, e.d.IMAPAddr(), n, "INBOX", "Lists/Go", "Not there")
	stop, _, _ := runWatcher(t, w)
	// Each folder is named once when its IDLE starts.
	n.waitAll(t, 10*time.Second, "INBOX", "Lists/Go")
	n.drain() // (a change made before IDLE starts is reported when it does)

	var took []time.Duration
	for i := range 6 {
		folder := []string{"INBOX", "Lists/Go"}[i%2]
		appendTo(t, other, folder, int64(100+i))
		took = append(took, n.wait(t, folder, time.Second))
	}
	slices.Sort(took)
	t.Logf("APPEND by another client done to folder named: median %v, worst %v", took[len(took)/2], took[len(took)-1])

	if _, err := other.Select("Lists/Go", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	n.drain()
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "Lists/Go", time.Second)
	if err := other.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	n.drain()
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "Lists/Go", time.Second)
	if !strings.Contains(log.String(), "Not there") {
		t.Errorf("the missing idle folder was not reported; log:\n%s", log)
	}

	if err := stop(); err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits until no more goroutines run than before, and
// fails with their stacks after 5 s.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleWatcherDropped: a connection the server closes in the middle of
// IDLE ends Run with a temporary error, at once, and leaves nothing
// running; Run again watches again.
func TestIdleWatcherDropped(t *testing.T) {
	e := newEnv(t)
	p, err := faultproxy.Start(e.d.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	other := e.d.Client(t, testenv.DefaultUser.Name)
	before := runtime.NumGoroutine()
	n := newNudges()
	w, _ := newWatcher(e, p.Addr(), n)
	_, done, runErr := runWatcher(t, w)
	n.wait(t, "INBOX", 10*time.Second)
	p.Add(faultproxy.Fault{Dir: faultproxy.Down, Pattern: "EXISTS", Action: faultproxy.Drop})
	appendTo(t, other, "INBOX", 7)
	select {
	case <-done:
		err := *runErr
		if err == nil || nethint.Permanent(err) {
			t.Fatalf("Run after the server closed the connection: %v; want a temporary error", err)
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "INBOX") {
			t.Errorf("error %q: want one line naming the folder", err)
		}
		t.Logf("error: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of the connection's end")
	}
	waitGoroutines(t, before)

	// Run again: watching again, and the folder named at once.
	p.Clear()
	stop, _, _ := runWatcher(t, w)
	n.drain()
	n.wait(t, "INBOX", 10*time.Second)
	if err := stop(); err != nil {
		t.Errorf("second Run: %v", err)
	}
	waitGoroutines(t, before)
}

// TestIdleWatcherNoIdle: a server without IDLE is said once; Run waits
// for its context and returns nil.
func TestIdleWatcherNoIdle(t *testing.T) {
	e := newEnv(t, testenv.WithConfig("imap_capability = IMAP4rev1 SASL-IR LITERAL+ UIDPLUS NAMESPACE"))
	n := newNudges()
	w, log := newWatcher(e, e.d.IMAPAddr(), n)
	for range 2 {
		stop, done, runErr := runWatcher(t, w)
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "no IDLE"); {
			if time.Now().After(deadline) {
				t.Fatalf("no word of the missing IDLE; log:\n%s", log)
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case <-done:
			t.Fatalf("Run returned %v before its context ended", *runErr)
		case <-time.After(300 * time.Millisecond):
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(log.String(), "no IDLE"); got != 1 {
		t.Errorf("said %d times that the server has no IDLE, want once; log:\n%s", got, log)
	}
}

// TestIdleWatcherRestart: IDLE is restarted every Restart (DONE, then
// IDLE again), and changes are named across the restarts.
func TestIdleWatcherRestart(t *testing.T) {
	e := newEnv(t)
	n := newNudges()
	w, _ := newWatcher(e, e.d.IMAPAddr(), n)
	traffic := &syncBuffer{}
	w.Endpoint.Debug = traffic
	w.Restart = 100 * time.Millisecond
	other := e.d.Client(t, testenv.DefaultUser.Name)
	stop, _, _ := runWatcher(t, w)
	n.wait(t, "INBOX", 10*time.Second)
	for i := range 5 {
		n.drain()
		appendTo(t, other, "INBOX", int64(200+i))
		t.Logf("named after %v", n.wait(t, "INBOX", time.Second))
		time.Sleep(150 * time.Millisecond) // across a restart
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(traffic.String(), "DONE\r\n"); got < 5 {
		t.Errorf("IDLE was restarted %d times, want at least 5", got)
	}
}
