package localauth

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Checker's clock: sleeping advances it.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// sleep records the waits that are not zero.
func (f *fakeClock) sleep(d time.Duration, _ <-chan struct{}) {
	if d == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) taken() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sleeps
	f.sleeps = nil
	return s
}

func newTestChecker(t *testing.T, o CheckerOptions) (*Checker, *fakeClock) {
	t.Helper()
	c, err := NewChecker(o)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.now, c.sleep = clk.now, clk.sleep
	return c, clk
}

var (
	alice = &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 50000}
	bob   = &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 50001}
)

// The local login passes; a wrong user or password, and an upstream
// password, fail and are counted.
func TestCheck(t *testing.T) {
	c, _ := newTestChecker(t, CheckerOptions{Username: "me", Password: "local", Upstream: []string{"up1", "", "up2"}})
	if err := c.Check(alice, "me", "local"); err != nil {
		t.Fatalf("local login: %v", err)
	}
	for _, tc := range []struct{ user, pass string }{
		{"me", "up2"}, {"me", "up1"}, {"me", "locall"}, {"me", ""}, {"you", "local"}, {"", ""}, {"me", "LOCAL"},
	} {
		if err := c.Check(alice, tc.user, tc.pass); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Check(%q, %q) = %v, want ErrAuthFailed", tc.user, tc.pass, err)
		}
	}
	if n := c.Failures(); n != 7 {
		t.Errorf("Failures = %d, want 7", n)
	}
}

// A local password that is an upstream one is refused outright.
func TestCheckerRefusesUpstreamPassword(t *testing.T) {
	_, err := NewChecker(CheckerOptions{Username: "me", Password: "secret", Upstream: []string{"other", "secret"}})
	if err == nil || err.Error() != "the local password is an upstream account's password: local clients must never learn it; set another [serve] password, or remove it and postfach generates one" {
		t.Errorf("NewChecker = %v", err)
	}
	if _, err := NewChecker(CheckerOptions{Username: "me"}); err == nil {
		t.Error("empty password accepted")
	}
}

// Failed logins are delayed, doubling per address up to the cap; another
// address is not slowed; a success starts the address afresh, and so does
// time.
func TestFailureDelays(t *testing.T) {
	c, clk := newTestChecker(t, CheckerOptions{Username: "me", Password: "local", BaseDelay: time.Second, MaxDelay: 8 * time.Second})
	// A client that waits for each answer before it tries again.
	for range 6 {
		c.Check(alice, "me", "wrong")
		clk.advance(time.Minute)
	}
	s := time.Second
	if got, want := clk.taken(), []time.Duration{s, 2 * s, 4 * s, 8 * s, 8 * s, 8 * s}; !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	// Another address: its first failure waits the base delay.
	c.Check(bob, "me", "wrong")
	if got := clk.taken(); !reflect.DeepEqual(got, []time.Duration{s}) {
		t.Errorf("other address waits %v, want [1s]", got)
	}
	// A success answers at once and forgets the failures.
	if err := c.Check(alice, "me", "local"); err != nil {
		t.Fatal(err)
	}
	c.Check(alice, "me", "wrong")
	if got := clk.taken(); !reflect.DeepEqual(got, []time.Duration{s}) {
		t.Errorf("after a success waits %v, want [1s]", got)
	}
	// So does a quiet quarter of an hour.
	clk.advance(16 * time.Minute)
	c.Check(alice, "me", "wrong")
	if got := clk.taken(); !reflect.DeepEqual(got, []time.Duration{s}) {
		t.Errorf("after 16 minutes waits %v, want [1s]", got)
	}
	if n := c.Failures(); n != 9 {
		t.Errorf("Failures = %d, want 9", n)
	}
}

// Parallel attempts from a penalised address take turns: the next waits
// out the delay before it is checked, and one beyond the cap is refused
// unchecked, even with the right password, until its turn comes.
func TestParallelAttemptsTakeTurns(t *testing.T) {
	var logged bytes.Buffer
	c, clk := newTestChecker(t, CheckerOptions{Username: "me", Password: "local", BaseDelay: time.Second, MaxDelay: 4 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	for range 3 {
		c.Check(alice, "me", "wrong") // the clock stands still: all at once
	}
	// Failures 1, 2, 3: the answers waited 1, 2 and 4 s; the turns were
	// reserved behind each other: 0, then 1 s, then 1+2 s.
	if got, want := clk.taken(), []time.Duration{time.Second, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	// The next turn is 1+2+4 = 7 s away: beyond the 4 s cap.
	if err := c.Check(alice, "me", "local"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("right password while the address waits its turn: %v, want refused", err)
	}
	if got := clk.taken(); len(got) != 0 {
		t.Errorf("the refused attempt waited %v", got)
	}
	// A flood of them is refused, counted and logged once.
	for range 50 {
		c.Check(alice, "me", "wrong")
	}
	if n := strings.Count(logged.String(), "refused unchecked"); n != 1 {
		t.Errorf("%d log lines about refused attempts, want 1:\n%s", n, logged.String())
	}
	if n := c.Failures(); n != 54 {
		t.Errorf("Failures = %d, want 54", n)
	}
	clk.advance(4 * time.Second)
	if err := c.Check(alice, "me", "local"); err != nil {
		t.Errorf("in its turn: %v", err)
	}
	if got := clk.taken(); !reflect.DeepEqual(got, []time.Duration{3 * time.Second}) {
		t.Errorf("waited %v for its turn, want 3s", got)
	}
	if err := c.Check(bob, "me", "local"); err != nil {
		t.Errorf("another address: %v", err)
	}
}

// Close ends the wait of a failed login at once (the endpoints stop).
func TestCloseEndsWaits(t *testing.T) {
	c, err := NewChecker(CheckerOptions{Username: "me", Password: "local", BaseDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- c.Check(alice, "me", "wrong") }()
	for c.Failures() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Check = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Check still waits after Close")
	}
}
