package pop3d

import (
	"bufio"
	"bytes"
	"io"
)

// dotWriter writes a stored message (LF or CRLF line ends) as the body of
// a multi-line POP3 reply: each LF not preceded by CR becomes CRLF, a line
// starting with '.' gets another '.', and Close ends the message with a
// line end (if the message did not end with one) and the terminating ".".
// A lone CR is passed on as it is (one that ends the message gets an LF).
// For TOP it stops after the header, its empty line and lines more lines.
type dotWriter struct {
	w       *bufio.Writer
	bol     bool // at the beginning of a line
	prevCR  bool // the last byte written was CR
	lines   int  // body lines to write after the header (TOP); -1: all
	inBody  bool // the header's empty line is behind
	lineLen int  // bytes of the current line (to see the empty line)
	done    bool // TOP's line count reached: the rest is dropped
	err     error
}

// newDotWriter returns a writer of the whole message (lines < 0) or of
// its header and first lines body lines (TOP).
func newDotWriter(w *bufio.Writer, lines int) *dotWriter {
	return &dotWriter{w: w, bol: true, lines: lines}
}

// Write writes p; it fails only with the underlying writer's error.
func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !d.done && d.err == nil {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if len(chunk) > 0 {
			if d.bol && chunk[0] == '.' {
				d.err = d.w.WriteByte('.')
			}
			if _, err := d.w.Write(chunk); err != nil {
				d.err = err
			}
			d.bol = false
			d.prevCR = chunk[len(chunk)-1] == '\r'
			d.lineLen += len(chunk)
		}
		if i < 0 {
			break
		}
		p = p[i+1:]
		empty := d.lineLen == 0 || (d.lineLen == 1 && d.prevCR)
		if !d.prevCR {
			d.err = d.w.WriteByte('\r')
		}
		if err := d.w.WriteByte('\n'); err != nil {
			d.err = err
		}
		d.bol, d.prevCR, d.lineLen = true, false, 0
		switch {
		case d.lines < 0:
		case d.inBody:
			d.lines--
			d.done = d.lines == 0
		case empty:
			d.inBody = true
			d.done = d.lines == 0
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return n, nil
}

// Close ends the reply: a line end if the message did not end with one,
// then ".".
func (d *dotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	if !d.bol {
		if !d.prevCR {
			d.w.WriteByte('\r')
		}
		d.w.WriteByte('\n')
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// copyMessage streams r as a multi-line reply through d, with buf as the
// read buffer.
func copyMessage(d *dotWriter, r io.Reader, buf []byte) error {
	for !d.done {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := d.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return d.Close()
}
