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
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.chunk) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.next()
	}
	n := copy(p, b.chunk)
	b.chunk = b.chunk[n:]
	return n, nil
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
	for b.err == nil {
		b.chunk = nil
		b.next()
	}
	b.chunk = nil
	if b.err == io.EOF {
		return nil
	}
	return b.err
}
