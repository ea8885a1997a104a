package pop3

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// retrWire is a message whose wire form exercises the dot-stuffing: lines
// that start with dots, a line that is just "." (stuffed to ".."), a lone CR,
// a bare LF, a line ". " that is not the terminator; retrWant is its body.
const (
	retrWire = `R: +OK 120 octets\r\n` +
		`Subject: dots\r\n\r\n` +
		`..\r\n` +
		`...leading dots\r\n` +
		`.. \r\n` +
		`a lone \r in a line\r\n` +
		`bare\nLF\r\n` +
		`\r\n` +
		`end\r\n` +
		`.\r\n`
	retrWant = "Subject: dots\r\n\r\n" +
		".\r\n" +
		"..leading dots\r\n" +
		". \r\n" +
		"a lone \r in a line\r\n" +
		"bare\nLF\r\n" +
		"\r\n" +
		"end\r\n"
)

func TestRetrDotStuffing(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		`+retrWire+`
		C: RETR 2
		S: +OK empty message
		S: .
		C: NOOP
		S: +OK
	`, nil)
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	// Read in small pieces to cross the chunk boundaries.
	var got bytes.Buffer
	buf := make([]byte, 3)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != retrWant {
		t.Errorf("RETR 1 body\n got %q\nwant %q", got.String(), retrWant)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after EOF: %v", err)
	}
	r, err = c.Retr(2)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); len(b) != 0 || err != nil {
		t.Errorf("empty message: %q, %v", b, err)
	}
	if err := c.Noop(); err != nil { // read to EOF: no Close needed
		t.Error(err)
	}
}

func TestRetrLongLines(t *testing.T) {
	// Lines longer than the read buffer, one starting with a stuffed dot,
	// one with a dot right where a buffer boundary may fall.
	l1 := strings.Repeat("a", 3*bufSize+7)
	l2 := "." + strings.Repeat("b", bufSize)
	l3 := strings.Repeat("c", bufSize) + "."
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		S: +OK
		S: `+l1+`
		S: .`+l2+`
		S: `+l3+`
		S: .
	`, nil)
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := l1 + "\r\n" + l2 + "\r\n" + l3 + "\r\n"; string(got) != want {
		t.Errorf("long lines: got %d octets, want %d", len(got), len(want))
	}
}

func TestRetrBigStreamed(t *testing.T) {
	const size = 50 << 20 / 100 * 100 // 50 MB in whole lines
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		S: +OK 52428800 octets
		BIG `+strconv.Itoa(size)+`
	`, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(&checkLines{t: t}, r)
	if err != nil || n != size {
		t.Fatalf("copied %d, %v; want %d", n, err, size)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("retrieving 50 MB allocated %d bytes; the body is being buffered", alloc)
	}
}

// checkLines verifies that what is written is a run of bigLine.
type checkLines struct {
	t   *testing.T
	off int
}

func (w *checkLines) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != bigLine[(w.off+i)%len(bigLine)] {
			w.t.Fatalf("big body wrong near octet %d", w.off+i)
		}
	}
	w.off += len(p)
	return len(p), nil
}

func TestTop(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: TOP 1 0
		S: +OK
		S: Subject: hi
		S: 
		S: .
		C: TOP 7 3
		S: -ERR no such message
	`, nil)
	r, err := c.Top(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if string(b) != "Subject: hi\r\n\r\n" || err != nil {
		t.Errorf("TOP body %q, %v", b, err)
	}
	if _, err := c.Top(7, 3); !errors.As(err, new(*Error)) {
		t.Errorf("TOP 7 3: %v", err)
	}
}

func TestBodyMustBeConsumed(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		`+retrWire+`
		C: NOOP
		S: +OK
	`, nil)
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); !errors.Is(err, ErrBodyOpen) {
		t.Errorf("Noop with an open body = %v, want ErrBodyOpen", err)
	}
	if err := c.Quit(); !errors.Is(err, ErrBodyOpen) {
		t.Errorf("Quit with an open body = %v, want ErrBodyOpen", err)
	}
	if err := r.Close(); err != nil { // drains the rest
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after Close = %v, want io.EOF", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("Noop after Close: %v", err)
	}
}
