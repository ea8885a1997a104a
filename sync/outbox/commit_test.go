package outbox

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/postfach/postfach/index"
)

// failCommits makes every commit that records an outcome fail while
// the returned flag is set (as SQLITE_BUSY past busy_timeout, or a full
// disk, would).
func failCommits(t *testing.T) *atomic.Bool {
	var fail atomic.Bool
	testHookCommit = func(outcomes []index.OutboxOutcome, _ index.OutboxID) error {
		if fail.Load() && len(outcomes) > 0 {
			return errors.New("index: database is locked (5) (SQLITE_BUSY)")
		}
		return nil
	}
	t.Cleanup(func() { testHookCommit = nil })
	return &fail
}

// TestCommitFailureNoResend: when the commit that records a message's
// final reply fails, the pass stops sending, does not count the message
// as sent, and the next pass records that reply before anything else:
// the message is not sent again, and each is counted once, when
// committed.
func TestCommitFailureNoResend(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	fail := failCommits(t)
	fail.Store(true)
	s := sender(t, st, r, "none", func(o *Options) { o.SaveSent = false })
	submit(t, st, "From: ann@example.org\nTo: one@example.org\nSubject: one\n\n1\n")
	submit(t, st, "From: ann@example.org\nTo: two@example.org\nSubject: two\n\n2\n")
	rep, err := s.Flush(context.Background())
	if err == nil || rep != (FlushReport{}) {
		t.Errorf("pass whose commits fail: %+v %v, want an error and nothing counted", rep, err)
	}
	if n := len(r.Delivered()); n != 1 {
		t.Fatalf("relay got %d messages while the replies could not be recorded, want 1 (no claim after a failed commit)", n)
	}
	fail.Store(false)
	flush(t, s, FlushReport{Sent: 2}) // one's recorded reply, and two
	got := map[string]int{}
	for _, d := range r.Delivered() {
		got[d.To[0]]++
	}
	if got["one@example.org"] != 1 || got["two@example.org"] != 1 || len(got) != 2 {
		t.Errorf("relay got %v, want each message once", got)
	}
	outboxEmpty(t, st)
}

// TestPassErrorOneLine: a pass that meets two errors (a commit before a
// claim, then the commit at its end) reports them on one line, as logs
// and `postfach queue --flush`'s report show errors.
func TestPassErrorOneLine(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	failCommits(t).Store(true)
	s := sender(t, st, r, "none", func(o *Options) { o.SaveSent = false })
	submit(t, st, "From: ann@example.org\nTo: one@example.org\nSubject: one\n\n1\n")
	submit(t, st, "From: ann@example.org\nTo: two@example.org\nSubject: two\n\n2\n")
	_, err := s.Flush(context.Background())
	if err == nil {
		t.Fatal("Flush: no error, want the failed commits'")
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || strings.Count(msg, "SQLITE_BUSY") != 2 {
		t.Errorf("Flush: error %q, want both failed commits on one line", msg)
	}
}
