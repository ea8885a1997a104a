package outbox

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
)

// sevenBitRelay is a scripted SMTP server that offers no 8BITMIME (as
// old relays do) and takes every message; it counts the messages.
type sevenBitRelay struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
}

func startSevenBitRelay(t *testing.T) *sevenBitRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &sevenBitRelay{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *sevenBitRelay) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	say("220 old.example ESMTP")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-old.example")
			say("250 SIZE 10000000")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), strings.HasPrefix(cmd, "RSET"):
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, b.String())
			r.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// TestEightBitWithout8BITMIME: a message with 8-bit content is never
// sent to a relay that does not offer 8BITMIME (RFC 6152): it fails at
// once, with that reason; a 7-bit message goes.
func TestEightBitWithout8BITMIME(t *testing.T) {
	st := newStore(t)
	r := startSevenBitRelay(t)
	port := r.ln.Addr().(*net.TCPAddr).Port
	eight := submit(t, st, "From: ann@example.org\nTo: bob@example.org\nSubject: hi\n\nGr\xc3\xbc\xc3\x9fe\n")
	submit(t, st, "From: ann@example.org\nTo: bob@example.org\nSubject: hi\n\nplain\n")
	s := sender(t, st, &testRelay{Host: "127.0.0.1", Port: port}, "none", func(o *Options) { o.Relay.Auth.Username = "" })
	got, err := s.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Sent != 1 || got.Failed != 1 {
		t.Errorf("Flush: %+v, want 1 sent and 1 failed", got)
	}
	r.mu.Lock()
	msgs := r.msgs
	r.mu.Unlock()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "plain") {
		t.Errorf("the relay got %q, want the 7-bit message only", msgs)
	}
	for _, m := range listed(t, st) {
		if m.ID == eight.ID && !strings.Contains(m.LastReply, "8BITMIME") {
			t.Errorf("the 8-bit message's reply is %q, want the reason (8BITMIME)", m.LastReply)
		}
	}
}
