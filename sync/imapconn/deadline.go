package imapconn

import (
	"net"
	"sync/atomic"
	"time"
)

// go-imap (v2.0.0-beta.9) bounds each wait on the connection with one
// deadline set before it: 30 s for a response or a command written, 5
// minutes for a whole FETCH literal read or APPEND literal written
// (imapclient's respReadTimeout, literalReadTimeout, cmdWriteTimeout and
// literalWriteTimeout, through Conn.SetReadDeadline/SetWriteDeadline). A
// large message on a slow link takes longer than 5 minutes and failed on
// every run, however steadily its bytes came. So the connection handed to
// go-imap is a progressConn: it turns each such deadline into an idle
// timeout of the same length, moved forward whenever bytes arrive or
// leave, as the POP3 client's deadlines are. A dead link still fails after
// that long without a byte. The uploader's connection is one too: its
// deadline (uploadTimeout, set once per command) is an idle timeout the
// same way.

// literalDeadline tells go-imap's literal deadlines (5 minutes) from its
// response and command deadlines (30 seconds).
const literalDeadline = time.Minute

// progressConn is a net.Conn whose read and write deadlines are idle
// timeouts (see above). The idle time of a literal deadline is
// literalIdle when that is set (Endpoint.LiteralTimeout).
type progressConn struct {
	net.Conn
	literalIdle time.Duration
	readIdle    atomic.Int64 // time.Duration; 0: no deadline
	writeIdle   atomic.Int64
}

func (c *progressConn) idle(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	d := max(time.Until(t), time.Millisecond)
	if d > literalDeadline && c.literalIdle > 0 {
		d = c.literalIdle
	}
	return d
}

func (c *progressConn) SetReadDeadline(t time.Time) error {
	d := c.idle(t)
	c.readIdle.Store(int64(d))
	return c.Conn.SetReadDeadline(after(d))
}

func (c *progressConn) SetWriteDeadline(t time.Time) error {
	d := c.idle(t)
	c.writeIdle.Store(int64(d))
	return c.Conn.SetWriteDeadline(after(d))
}

func (c *progressConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Read moves the read deadline forward after bytes came.
func (c *progressConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if d := time.Duration(c.readIdle.Load()); n > 0 && d > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(d))
	}
	return n, err
}

// writePiece is the most Write hands the connection under one deadline.
const writePiece = 64 << 10

// Write moves the write deadline forward before each piece of at most
// writePiece bytes: TLS writes records of 16 KiB, but the uploader's
// bufio.Writer passes a large message body on in one call.
func (c *progressConn) Write(p []byte) (int, error) {
	d := time.Duration(c.writeIdle.Load())
	if d == 0 {
		return c.Conn.Write(p)
	}
	var n int
	for len(p) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
		k, err := c.Conn.Write(p[:min(len(p), writePiece)])
		n += k
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// after is the deadline d from now, or none for 0.
func after(d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}
