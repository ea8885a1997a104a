package migrate

import (
	"io"
)

// crlfWriter turns bare LF into CRLF and counts what it writes: a stored
// message (LF line ends, see package maildir) as it goes over IMAP.
//
// Copied from sync/imapsync (push.go), which keeps it unexported.
type crlfWriter struct {
	w      io.Writer
	prevCR bool
	n      int64
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	start := 0
	for i, b := range p {
		if b == '\n' && !(i > 0 && p[i-1] == '\r') && !(i == 0 && c.prevCR) {
			if err := c.emit(p[start:i]); err != nil {
				return 0, err
			}
			if err := c.emit([]byte{'\r'}); err != nil {
				return 0, err
			}
			start = i
		}
	}
	if err := c.emit(p[start:]); err != nil {
		return 0, err
	}
	if len(p) > 0 {
		c.prevCR = p[len(p)-1] == '\r'
	}
	return len(p), nil
}

func (c *crlfWriter) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

// crlfSize is the size of r's content as sent with CRLF line ends.
func crlfSize(r io.Reader) (int64, error) {
	cw := &crlfWriter{w: io.Discard}
	if _, err := io.Copy(cw, r); err != nil {
		return 0, err
	}
	return cw.n, nil
}
