package outbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestRunKeepsConnection: Run sends messages queued a moment apart over
// the connection the pass before left open; one the relay closed
// meanwhile is replaced without a failed attempt; an idle connection is
// closed (QUIT) when IdleConn has passed, and when Run ends.
func TestRunKeepsConnection(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	got := make(chan struct{}, 10)
	r.onData = func() { got <- struct{}{} }
	idle := 3 * time.Second
	s := sender(t, st, r, "starttls", func(o *Options) { o.IdleConn = idle })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	send := func(subject string) {
		t.Helper()
		submit(t, st, strings.Replace(msgBcc, "hello", subject, 1))
		s.Nudge()
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: not sent", subject)
		}
	}
	send("one")
	send("two")
	if opened, _ := r.Sessions(); opened != 1 {
		t.Errorf("two messages a moment apart took %d connections, want 1", opened)
	}
	// The relay's idle timeout closes it: the next pass finds out with
	// NOOP and connects again; the message is sent at its first attempt.
	// (Not before "two"'s reply is recorded: onData runs before the
	// relay's reply to the final ".", and a connection closed then is RFC
	// 1047's case, which sends the message again, as it must.)
	waitEmpty(t, st)
	r.Hangup()
	send("three")
	if opened, _ := r.Sessions(); opened != 2 {
		t.Errorf("after the relay hung up: %d connections, want 2", opened)
	}
	waitEmpty(t, st)
	if n := len(r.Delivered()); n != 3 {
		t.Errorf("delivered %d, want 3", n)
	}
	// Expiry: the idle connection is closed within about IdleConn.
	deadline := time.Now().Add(idle + 5*time.Second)
	for {
		if opened, ended := r.Sessions(); ended == opened {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle connection was not closed after %v", idle)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And the end of Run closes one left open.
	send("four")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// (The relay sees the end of a session a moment after Run closed it.)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		opened, ended := r.Sessions()
		if opened == 3 && ended == 3 {
			break
		}
		if opened != 3 || time.Now().After(end) {
			t.Fatalf("after Run: %d connections, %d ended; want 3 and 3", opened, ended)
		}
	}
}

// waitEmpty waits until the outbox is empty (every message sent and
// filed).
func waitEmpty(t *testing.T, st *index.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(listed(t, st)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox not empty: %+v", listed(t, st))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
