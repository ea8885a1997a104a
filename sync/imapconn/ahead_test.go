package imapconn

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
)

// TestDialAhead: a connection dialed ahead is logged in and usable once
// taken; one never taken is logged out of by Close; Wait when the caller
// gives up ends the dial; a refused login is Wait's error.
func TestDialAhead(t *testing.T) {
	d := testenv.StartDovecot(t)
	user := testenv.DefaultUser.Name
	pass, _ := d.Password(user)
	e := Endpoint{Addr: d.IMAPAddr(), TLS: TLSNone, Username: user, Password: pass}
	ctx := context.Background()

	p := e.DialAhead(ctx, 1, t.Logf)
	c, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("the connection taken: %v", err)
	}
	p.Close() // after Wait: nothing
	if _, err := p.Wait(ctx); err == nil {
		t.Error("a second Wait took the connection again")
	}
	Logout(ctx, c)

	// Never taken: logged out.
	p = e.DialAhead(ctx, 1, t.Logf)
	time.Sleep(200 * time.Millisecond)
	p.Close()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(d.Log(), "Logged out") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(d.Log(), "Logged out"); n != 2 {
		t.Errorf("%d sessions logged out, want 2", n)
	}

	// A server that never greets: the caller gives up, and so does the dial.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silent := Endpoint{Addr: ln.Addr().String(), TLS: TLSNone, Username: user, Password: pass}
	p = silent.DialAhead(ctx, 1, t.Logf)
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Wait(wctx); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Wait on a silent server: %v after %v", err, time.Since(start))
	}

	// A wrong password: Wait's error.
	bad := e
	bad.Password = "wrong"
	if _, err := bad.DialAhead(ctx, 1, t.Logf).Wait(ctx); err == nil {
		t.Error("a wrong password dialed ahead: no error")
	}
}
