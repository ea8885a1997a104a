package outbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestReplyCommittedFirst: the relay's reply to the end of a message is
// committed before any other writer of the store gets in (endData takes
// the write lock before the final "."): a writer that starts while the
// relay takes the message finds it recorded sent, never still "sending"
// (which a crash at that moment would send again).
func TestReplyCommittedFirst(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	m := submit(t, st, msgBcc)
	seen := make(chan string, 1)
	var once sync.Once
	r.onData = func() {
		once.Do(func() {
			go func() {
				state := "?"
				err := st.Write(context.Background(), func(tx *index.Tx) error {
					mm, err := tx.OutboxMessage(m.ID)
					if err == nil {
						state = mm.State
					}
					// Held long enough that a sender waiting for the lock
					// after the reply would be seen waiting.
					time.Sleep(50 * time.Millisecond)
					return err
				})
				if err != nil {
					state = err.Error()
				}
				seen <- state
			}()
		})
	}
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 1})
	if got := <-seen; got != index.OutboxSentState {
		t.Errorf("a writer starting while the relay took the message found it %q, want %q", got, index.OutboxSentState)
	}
}

// TestLateReply: a relay slower to answer the end of a message than
// heldReplyLimit does not hold the store's write lock meanwhile; its
// reply is recorded once it comes, and the message goes once.
func TestLateReply(t *testing.T) {
	defer func(d time.Duration) { heldReplyLimit = d }(heldReplyLimit)
	heldReplyLimit = time.Millisecond
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	submit(t, st, msgBcc)
	submit(t, st, msgBcc)
	wrote := make(chan error, 2)
	r.onData = func() {
		// While the relay dawdles, another writer gets through.
		done := make(chan error, 1)
		go func() { done <- st.Write(context.Background(), func(*index.Tx) error { return nil }) }()
		select {
		case err := <-done:
			wrote <- err
		case <-time.After(10 * time.Second):
			wrote <- context.DeadlineExceeded
		}
	}
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 2})
	for range 2 {
		if err := <-wrote; err != nil {
			t.Errorf("a writer while the relay held the reply: %v", err)
		}
	}
	if got := len(r.Delivered()); got != 2 {
		t.Errorf("%d deliveries, want 2", got)
	}
	outboxEmpty(t, st)
}
