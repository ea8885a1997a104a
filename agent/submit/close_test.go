package submit

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
)

// TestCloseLetsDataFinish: closing the endpoint (agent shutdown, a
// reload) while a client is sending a message lets that transaction
// finish: the message is queued once and acknowledged (250), so the
// client does not send it again; a new connection is refused meanwhile,
// and a further MAIL on the same connection gets 421.
func TestCloseLetsDataFinish(t *testing.T) {
	e := start(t, oneAccount, 0, nil)
	c := e.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("me@work.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("you@example.net", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	const msg = "From: me@work.example\r\nTo: you@example.net\r\nSubject: during close\r\n\r\nfirst half\r\n"
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- e.srv.Close() }()
	// Close has begun once the endpoint takes no new connection.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		nc, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(end) {
			t.Fatal("the endpoint still takes connections 10 s after Close")
		}
	}
	if _, err := io.WriteString(w, "second half\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.CloseWithResponse(); err != nil {
		t.Fatalf("end of DATA during Close: %v, want 250", err)
	}
	if err := c.Mail("me@work.example", nil); code(err) != 421 {
		t.Errorf("MAIL during Close: %v, want 421", err)
	}
	c.Quit()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close has not returned 20 s after the client quit")
	}
	ms := e.queued(t)
	if len(ms) != 1 {
		t.Fatalf("queued %d messages, want 1", len(ms))
	}
	want := strings.ReplaceAll(msg+"second half\r\n", "\r\n", "\n")
	if b, _ := os.ReadFile(ms[0].Path); string(b) != want {
		t.Errorf("stored %q, want %q", b, want)
	}
}

// TestCloseIdleAtOnce: a connection between transactions does not hold
// Close for its grace period.
func TestCloseIdleAtOnce(t *testing.T) {
	e := start(t, oneAccount, 0, nil)
	c := e.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > closeGrace/2 {
		t.Errorf("Close took %s with an idle connection open (grace %s)", d, closeGrace)
	}
}
