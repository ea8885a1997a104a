package pop3

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// Retr retrieves message num. The returned reader streams the message as
// the server sends it, without dot-stuffing and terminator (see the package
// documentation); it must be read to io.EOF or closed before the next
// command. Close reads and discards what is left. A connection lost in the
// middle of the message makes Read fail with an error wrapping
// io.ErrUnexpectedEOF, never a silent io.EOF.
func (c *Client) Retr(num int) (io.ReadCloser, error) {
	cmd := "RETR " + strconv.Itoa(num)
	if err := checkNum(cmd, num); err != nil {
		return nil, err
	}
	if _, err := c.cmd(cmd, cmd); err != nil {
		return nil, err
	}
	return c.openBody(cmd), nil
}

// Top retrieves the header of message num and the first lines lines of its
// body (RFC 1939 TOP), as a reader with the same rules as Retr's.
func (c *Client) Top(num, lines int) (io.ReadCloser, error) {
	cmd := "TOP " + strconv.Itoa(num) + " " + strconv.Itoa(lines)
	if err := checkNum(cmd, num); err != nil {
		return nil, err
	}
	if lines < 0 {
		return nil, fmt.Errorf("pop3: %s: negative line count", cmd)
	}
	if _, err := c.cmd(cmd, cmd); err != nil {
		return nil, err
	}
	return c.openBody(cmd), nil
}

func (c *Client) openBody(cmd string) *bodyReader {
	b := &bodyReader{c: c, cmd: cmd, bol: true}
	c.body = b
	return b
}

// bodyReader streams a multi-line reply off the connection, removing the
// dot-stuffing: a line that starts with "." loses that dot, and the line "."
// ends the reply. Line ends are kept as sent. It works on chunks that
// bufio.Reader.ReadSlice hands out, so it copies every byte once and holds
// no more than the read buffer, whatever the length of a line.
type bodyReader struct {
	c     *Client
	cmd   string
	chunk []byte // the part of the current chunk not yet returned
	bol   bool   // the next chunk starts a line
	err   error  // io.EOF at the end, or the fatal error

	limit  int64          // most bytes returned (LimitBody); 0: no limit
	num    int            // message number and
	listed int64          // LIST size, for LimitBody's error
	n      int64          // bytes returned
	over   *TooLargeError // the body passed limit
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.over != nil {
		return 0, b.over
	}
	for len(b.chunk) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.next()
	}
	if b.limit > 0 && b.n+int64(len(b.chunk)) > b.limit {
		b.over = &TooLargeError{Num: b.num, Listed: b.listed, Limit: b.limit}
		return 0, b.over
	}
	n := copy(p, b.chunk)
	b.chunk = b.chunk[n:]
	b.n += int64(n)
	return n, nil
}

// bodySlack is how much longer than its listed size a message may be: 10%,
// at least 64 KiB. Servers count sizes loosely (RFC 1939 lets the LIST
// size differ from the octets RETR sends: line ends, added headers); a
// body beyond the slack is not that, and is refused rather than written
// until the disk is full.
func bodySlack(listed int64) int64 { return max(64<<10, listed/10) }

// drainBudget is how much of a refused body Close reads to find its end
// and keep the session (listed size, slack and 16 MiB on top); a body that
// goes on beyond it ends the session.
func drainBudget(limit int64) int64 { return limit + 16<<20 }

// LimitBody bounds r, a reader from Retr, Top, RetrMany or TopMany, to the
// bytes message num may have when LIST says it has listed: listed plus
// bodySlack. Past that, Read fails with a *TooLargeError (the bytes past
// the limit are never returned). Closing it then (as RetrMany does) reads
// the rest up to drainBudget and keeps the session; a body longer still
// ends the session with the *TooLargeError. Other readers are returned as
// they are.
func LimitBody(r io.Reader, num int, listed int64) io.Reader {
	if b, ok := r.(*bodyReader); ok && listed >= 0 {
		b.limit, b.num, b.listed = listed+bodySlack(listed), num, listed
	}
	return r
}

// TooLargeError is a message longer than its LIST size allows (LimitBody).
type TooLargeError struct {
	Num    int
	Listed int64 // LIST size
	Limit  int64 // listed plus slack
	Ended  bool  // the session ended: the body went on past drainBudget
}

func (e *TooLargeError) Error() string {
	s := fmt.Sprintf("pop3: message %d is longer than its LIST size of %d bytes allows (%d with slack): not stored", e.Num, e.Listed, e.Limit)
	if e.Ended {
		s += "; it went on past " + strconv.FormatInt(drainBudget(e.Limit), 10) + " bytes, so the session was ended"
	}
	return s
}

// next takes the next chunk off the connection: a whole line or, for lines
// longer than the read buffer, the next part of one. The chunk stays valid
// until the next read from b.c.br, which only next makes.
func (b *bodyReader) next() {
	if b.c.body != b {
		// The Client has given up on this body (it failed meanwhile).
		b.err = b.c.err
		if b.err == nil {
			b.err = ErrClosed
		}
		return
	}
	line, err := b.c.br.ReadSlice('\n')
	if err != nil && err != bufio.ErrBufferFull {
		// A partial last line without its line end is not returned: the
		// message is cut anyway, and the error says so.
		b.finish(b.c.fail(b.cmd, err))
		return
	}
	whole := err == nil
	if b.bol && len(line) > 0 && line[0] == '.' {
		if whole && (bytes.Equal(line, []byte(".\r\n")) || bytes.Equal(line, []byte(".\n"))) {
			b.finish(io.EOF)
			return
		}
		line = line[1:]
	}
	b.bol = whole
	b.chunk = line
}

func (b *bodyReader) finish(err error) {
	b.err = err
	b.chunk = nil
	if b.c.body == b {
		b.c.body = nil
	}
}

// Close reads and discards the rest of the body, so that the next command
// can be sent. It returns an error if the connection failed on the way.
func (b *bodyReader) Close() error {
	drained := int64(0)
	for b.err == nil {
		if b.over != nil {
			if drained += int64(len(b.chunk)); drained > drainBudget(b.limit) {
				b.over.Ended = true
				b.finish(b.c.fail(b.cmd, b.over))
				break
			}
		}
		b.chunk = nil
		b.next()
	}
	b.chunk = nil
	if b.err == io.EOF {
		return nil
	}
	return b.err
}
