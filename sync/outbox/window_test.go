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
// heldReplyLimit does not hold the store's write lock past that limit;
// its reply is recorded once it comes, the message goes once, and the
// connection's later messages are sent without the lock held at all.
func TestLateReply(t *testing.T) {
	defer func(d time.Duration) { heldReplyLimit = d }(heldReplyLimit)
	heldReplyLimit = 300 * time.Millisecond
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	for range 3 {
		submit(t, st, msgBcc)
	}
	var waits []time.Duration
	var mu sync.Mutex
	r.onData = func() {
		// While the relay dawdles, another writer of the store.
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- st.Write(context.Background(), func(*index.Tx) error { return nil }) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("a writer while the relay held the reply: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("a writer waited 10 s while the relay held the reply")
		}
		mu.Lock()
		waits = append(waits, time.Since(start))
		mu.Unlock()
		time.Sleep(400 * time.Millisecond) // the relay's slow answer
	}
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 3})
	if got := len(r.Delivered()); got != 3 {
		t.Errorf("%d deliveries, want 3", got)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("writers waited %v", waits)
	if len(waits) == 3 && (waits[1] > 150*time.Millisecond || waits[2] > 150*time.Millisecond) {
		t.Errorf("after a late reply, writers still waited for the sender's lock: %v", waits)
	}
	outboxEmpty(t, st)
}
