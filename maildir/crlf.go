package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// CRLFWriter turns a stored message (LF line ends) back into its wire form:
// every LF not preceded by CR becomes CRLF. It counts what it writes.
type CRLFWriter struct {
	w      io.Writer
	prevCR bool
	n      int64
}

// NewCRLFWriter returns a CRLFWriter writing to w.
func NewCRLFWriter(w io.Writer) *CRLFWriter { return &CRLFWriter{w: w} }

// N returns the number of bytes written to the underlying writer.
func (c *CRLFWriter) N() int64 { return c.n }

func (c *CRLFWriter) Write(p []byte) (int, error) {
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

func (c *CRLFWriter) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

// CRLFSize returns the size of r's content in wire form (see CRLFWriter):
// what IMAP calls RFC822.SIZE.
func CRLFSize(r io.Reader) (int64, error) {
	cw := NewCRLFWriter(io.Discard)
	buf := sizeBufs.Get().(*[]byte)
	defer sizeBufs.Put(buf)
	// (r wrapped: an *os.File's WriteTo would make io.Copy's own buffer.)
	if _, err := io.CopyBuffer(cw, struct{ io.Reader }{r}, *buf); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// sizeBufs are CRLFSize's read buffers, reused rather than made for each
// message (sync/migrate sizes every message it copies).
var sizeBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// FileCRLFSize is CRLFSize of a file.
func FileCRLFSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return CRLFSize(f)
}

// ErrSizeChanged is CopyCRLF's error for a message whose size is not the
// one announced: the file changed after its size was taken.
var ErrSizeChanged = errors.New("message changed while being sent")

// CopyCRLF copies a stored message from r to w in wire form (see
// CRLFWriter) and checks that exactly size bytes, its CRLFSize announced
// beforehand (an IMAP literal's size), went out; otherwise it returns
// ErrSizeChanged. Other errors are io.Copy's, of r or of w.
func CopyCRLF(w io.Writer, r io.Reader, size int64) error {
	cw := NewCRLFWriter(w)
	if _, err := io.Copy(cw, r); err != nil {
		return err
	}
	if cw.n != size {
		return fmt.Errorf("%w (%d bytes, not %d)", ErrSizeChanged, cw.n, size)
	}
	return nil
}
