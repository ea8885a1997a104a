package outbox

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/auth"
)

// TestStopAwaitingFinalReply: a sender told to stop (agent shutdown, a
// reload, Ctrl-C of `postfach queue --flush`) while it waits for the
// relay's reply to the end of DATA waits for that reply and records it:
// the relay, which took the message, gets it once, not again on the
// next pass.
func TestStopAwaitingFinalReply(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.onData = func() {
		cancel()                           // the sender is told to stop...
		time.Sleep(200 * time.Millisecond) // ...while the relay writes its queue file
	}
	s := sender(t, st, r, "none")
	submit(t, st, msgBcc)
	submit(t, st, "From: ann@example.org\nTo: zed@example.org\nSubject: second\n\nx\n")
	rep, err := s.Flush(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped pass: %v", err)
	}
	if rep.Sent != 1 {
		t.Errorf("stopped pass: %+v, want the first message sent (and the second left)", rep)
	}
	r.mu.Lock()
	r.onData = nil
	r.mu.Unlock()
	ls := listed(t, st)
	if len(ls) != 1 || ls[0].Subject != "second" || ls[0].State != index.OutboxQueuedState || ls[0].Attempts != 0 {
		t.Errorf("after the stop the outbox lists %+v, want only the second message, queued, never tried", ls)
	}
	flush(t, s, FlushReport{Sent: 1})
	var first int
	for _, d := range r.Delivered() {
		if d.To[0] == "bob@example.org" {
			first++
			if string(d.Data) != wire {
				t.Errorf("relay got %q, want %q", d.Data, wire)
			}
		}
	}
	if n := len(r.Delivered()); first != 1 || n != 2 {
		t.Errorf("relay got the first message %d times (of %d deliveries), want once (of 2)", first, n)
	}
	outboxEmpty(t, st)
}

// dropAfterDot is a relay that takes the whole message and drops the
// connection instead of replying to its final ".".
func dropAfterDot(t *testing.T) *testRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				c.Write([]byte("220 relay.test ESMTP\r\n"))
				data := false
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case data && cmd == ".":
						return // the message is here; the reply never comes
					case data:
					case strings.HasPrefix(cmd, "EHLO"):
						c.Write([]byte("250-relay.test\r\n250 8BITMIME\r\n"))
					case cmd == "DATA":
						data = true
						c.Write([]byte("354 go ahead\r\n"))
					case cmd == "QUIT":
						c.Write([]byte("221 bye\r\n"))
						return
					default:
						c.Write([]byte("250 ok\r\n"))
					}
				}
			}()
		}
	}()
	return &testRelay{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
}

// TestFinalReplyLostInterrupted: a connection lost after the final "."
// and before its reply (RFC 1047: the relay may have the message) leaves
// the message queued for its resend, and counts it in Interrupted, so
// `postfach queue` and the status show the possible duplicate.
func TestFinalReplyLostInterrupted(t *testing.T) {
	st := newStore(t)
	r := dropAfterDot(t)
	s := sender(t, st, r, "none", func(o *Options) { o.Relay.Auth = auth.Credentials{} })
	submit(t, st, msgBcc)
	rep, err := s.Flush(context.Background())
	if err != nil || rep != (FlushReport{Deferred: 1}) {
		t.Fatalf("Flush: %+v %v, want the message deferred", rep, err)
	}
	ls := listed(t, st)
	if len(ls) != 1 || ls[0].State != index.OutboxQueuedState || ls[0].Interrupted != 1 {
		t.Fatalf("outbox lists %+v, want the message queued with Interrupted 1", ls)
	}
	for _, rc := range ls[0].Recipients {
		if rc.State != index.RcptPending {
			t.Errorf("recipient %s is %s, want pending", rc.Addr, rc.State)
		}
	}
}

// TestImplicitTLSHandshakeTimeout: a peer that takes the connection on
// the implicit-TLS port and never answers the handshake defers the
// message after handshakeTimeout instead of holding the pass for ever.
func TestImplicitTLSHandshakeTimeout(t *testing.T) {
	defer func(d time.Duration) { handshakeTimeout = d }(handshakeTimeout)
	handshakeTimeout = time.Second
	st := newStore(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-quit; c.Close() }() // silent until the end
		}
	}()
	r := &testRelay{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	s := sender(t, st, r, "implicit")
	submit(t, st, msgBcc)
	type result struct {
		rep FlushReport
		err error
	}
	done := make(chan result, 1)
	go func() { rep, err := s.Flush(context.Background()); done <- result{rep, err} }()
	select {
	case res := <-done:
		if res.err != nil || res.rep != (FlushReport{Deferred: 1}) {
			t.Errorf("Flush: %+v %v, want the message deferred", res.rep, res.err)
		}
		if ls := listed(t, st); len(ls) != 1 || !strings.Contains(ls[0].LastReply, "TLS") {
			t.Errorf("outbox lists %+v, want the message with the TLS error as its last reply", ls)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Flush still waits for the TLS handshake after 20 s (timeout 1 s)")
	}
}
