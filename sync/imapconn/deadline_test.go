package imapconn

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestProgressConnRead: a read deadline set on a progressConn is an idle
// timeout. A peer that sends a byte every 100 ms for a second gets through
// a 400 ms deadline; one that goes quiet for longer fails it.
func TestProgressConnRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			if _, err := s.Write([]byte("x")); err != nil {
				return
			}
		}
		time.Sleep(2 * time.Second) // then quiet
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &progressConn{Conn: raw}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("a steady trickle: %v", err)
	}
	begin := time.Now()
	_, err = c.Read(buf)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a quiet peer: %v, want a timeout", err)
	}
	if d := time.Since(begin); d > 1500*time.Millisecond {
		t.Errorf("the timeout came after %v", d)
	}
}

// TestProgressConnLiteral: go-imap's 5-minute literal deadline becomes
// LiteralTimeout; its 30-second ones stay as they are.
func TestProgressConnLiteral(t *testing.T) {
	c := &progressConn{literalIdle: 2 * time.Second}
	if d := c.idle(time.Now().Add(5 * time.Minute)); d != 2*time.Second {
		t.Errorf("literal deadline: idle %v", d)
	}
	if d := c.idle(time.Now().Add(30 * time.Second)); d < 29*time.Second || d > 30*time.Second {
		t.Errorf("response deadline: idle %v", d)
	}
	if d := c.idle(time.Time{}); d != 0 {
		t.Errorf("no deadline: idle %v", d)
	}
}
