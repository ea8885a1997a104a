package imapconn

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestLazyUploaderBroken: once the run's MULTIAPPEND connection broke (in
// one folder's upload), the other folders upload on their own connection
// instead of failing with that folder's error under their name.
func TestLazyUploaderBroken(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	u := &Uploader{}
	u.setConn(a)
	ready := make(chan struct{})
	close(ready)
	l := &LazyUploader{ready: ready, up: u}
	if l.Get(t.Context(), nil) != u {
		t.Fatal("a working uploader is not handed out")
	}
	b.Close() // the server goes away in the middle of an upload
	_, err := u.AppendMany(t.Context(), "Archive", []UploadMsg{{Size: 3, Write: func(w io.Writer) error { _, err := w.Write([]byte("x\r\n")); return err }}})
	if err == nil {
		t.Fatal("no error from a dead connection")
	}
	if got := l.Get(t.Context(), nil); got != nil {
		t.Errorf("a broken uploader is handed out to the next folder")
	}
}

// TestLazyUploaderCloseEndsDial: a dial Start began is ended by Close,
// which returns at once instead of waiting for a server that accepted
// the connection and never greets (nethint.GreetingWait is 20 s).
func TestLazyUploaderCloseEndsDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // held open, silent
		}
	}()
	l := &LazyUploader{Endpoint: &Endpoint{Addr: ln.Addr().String(), TLS: "none", Username: "u", Password: "p"}}
	l.Start(t.Context(), imap.CapSet{imap.CapMultiAppend: {}, imap.CapLiteralPlus: {}})
	var c net.Conn
	select {
	case c = <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not dial")
	}
	begin := time.Now()
	l.Close()
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("Close took %s: it waited for the dial instead of ending it", d)
	}
	// The dial is over by then: its connection is closed.
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the dial's connection after Close: %v, want it closed (EOF)", err)
	}
	if up := l.Get(t.Context(), nil); up != nil {
		t.Error("an uploader after Close")
	}
}
