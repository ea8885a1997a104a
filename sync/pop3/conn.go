package pop3

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// abortState is shared by a Client and its connection wrappers (the plain
// one and, after STLS, the TLS one): once a context is cancelled it holds the
// cause, and every later read or write fails with it.
type abortState struct {
	raw   net.Conn // the underlying connection, for deadlines
	cause atomic.Pointer[error]
}

// abort makes the connection fail from now on, interrupting a blocked read
// or write. It may be called from any goroutine.
func (a *abortState) abort(cause error) {
	a.cause.CompareAndSwap(nil, &cause)
	_ = a.raw.SetDeadline(time.Unix(1, 0))
}

func (a *abortState) err() error {
	if p := a.cause.Load(); p != nil {
		return *p
	}
	return nil
}

// netConn wraps the connection the Client reads and writes. Before each read
// or write it moves the deadline Timeout into the future, so Timeout bounds
// every wait for the network without cutting off a long transfer that makes
// progress; it copies the traffic to the debug writer.
type netConn struct {
	net.Conn
	timeout time.Duration
	debug   io.Writer
	state   *abortState
}

func (c *netConn) Read(p []byte) (int, error) {
	if err := c.before(c.Conn.SetReadDeadline); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.debug != nil {
		_, _ = c.debug.Write(p[:n])
	}
	return n, err
}

func (c *netConn) Write(p []byte) (int, error) {
	if err := c.before(c.Conn.SetWriteDeadline); err != nil {
		return 0, err
	}
	if c.debug != nil {
		_, _ = c.debug.Write(p)
	}
	return c.Conn.Write(p)
}

// before sets the deadline for the next read or write. The abort state is
// checked after the deadline is set: an abort that comes later sets its own
// deadline in the past after ours, so it always wins.
func (c *netConn) before(setDeadline func(time.Time) error) error {
	if err := c.state.err(); err != nil {
		return err
	}
	if c.timeout > 0 {
		if err := setDeadline(time.Now().Add(c.timeout)); err != nil {
			return err
		}
	}
	return c.state.err()
}

// watch aborts the connection when ctx is done, until the returned stop
// function is called.
func (a *abortState) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	if ctx.Err() != nil {
		a.abort(context.Cause(ctx))
		return func() {}
	}
	cancel := context.AfterFunc(ctx, func() { a.abort(context.Cause(ctx)) })
	return func() { cancel() }
}
