package outbox

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// finalReplyGrace bounds the wait for the relay's reply to the end of
// DATA once the sender is told to stop: the connection is not closed
// then (the relay has the whole message and may be taking it), and a
// reply that does not come in time is lost as after a dropped connection
// (RFC 1047: counted in the message's Interrupted).
const finalReplyGrace = 30 * time.Second

// handshakeTimeout bounds the TLS handshake of implicit TLS: a peer
// that takes the connection on port 465 and never answers would hold the
// pass (and the account's outbox lock) for ever. A variable for tests.
var handshakeTimeout = 30 * time.Second

// capConn is the relay's TCP connection; once capped, no deadline set on
// it (go-smtp sets one per command) is later than the cap.
type capConn struct {
	net.Conn
	mu  sync.Mutex
	cap time.Time
}

func (c *capConn) limit(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cap.IsZero() && (t.IsZero() || t.After(c.cap)) {
		return c.cap
	}
	return t
}

func (c *capConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.limit(t)) }
func (c *capConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.limit(t)) }
func (c *capConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.limit(t)) }

// capAt caps every deadline at t, the current one included.
func (c *capConn) capAt(t time.Time) {
	c.mu.Lock()
	c.cap = t
	c.mu.Unlock()
	_ = c.Conn.SetDeadline(t)
}

// relayConn is a connection to the relay and how a stop reaches it: a
// stop (ctx done) closes it at once, except while the final "." is on
// its way or its reply awaited (awaitingFinal): then the reply gets
// finalReplyGrace more, and the sender stops after it.
type relayConn struct {
	*smtp.Client
	raw *capConn

	mu    sync.Mutex
	final bool // between the end of DATA and its reply
	stop  bool // ctx is done

	// slow: a reply to the end of a message came later than
	// heldReplyLimit; the rest of this connection's messages are sent
	// without holding the store's write lock (see endData).
	slow bool
}

// watch closes c when ctx ends (see relayConn); the returned func stops
// watching.
func (c *relayConn) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stop = true
		if c.final {
			c.raw.capAt(time.Now().Add(finalReplyGrace))
			return
		}
		c.Client.Close()
	})
}

// awaitingFinal marks the time from the final "." to its reply (on: true
// before, false after); a stop that came meanwhile closes c after it.
func (c *relayConn) awaitingFinal(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.final = on
	if !on && c.stop {
		c.Client.Close()
	}
}
