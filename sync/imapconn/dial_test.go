package imapconn

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/nethint"
)

// TestDialModes: the connection postfach dials itself (to give go-imap a
// progressConn) logs in over implicit TLS, STARTTLS and plain, and keeps
// the one-line hints for an untrusted certificate, a plain port dialled
// with TLS and a TLS port dialled in plain text. Real failures against
// Dovecot are classified as the agent's backoff needs (nethint.Permanent):
// a wrong password, an untrusted certificate, a TLS port spoken to in
// plain text and an unknown mode park the account; a refused connection
// and a connection cut during login are retried.
func TestDialModes(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.WithTLS(testenv.TLSOn))
	pass, _ := d.Password(testenv.DefaultUser.Name)
	user := testenv.DefaultUser.Name

	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	// A connection cut after the greeting, while LOGIN is on its way.
	cut, err := faultproxy.Start(d.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	cut.Add(faultproxy.Fault{Dir: faultproxy.Up, Pattern: "LOGIN", Action: faultproxy.Drop})
	// A server that accepts the connection and says nothing (a web
	// server's port): the dial gives up after GreetingWait and says so.
	silent := testenv.SilentServer(t)
	// The TLS-port probe comes well before the greeting's wait ends.
	defer func(w, p time.Duration) { nethint.GreetingWait, nethint.ProbeAfter = w, p }(nethint.GreetingWait, nethint.ProbeAfter)
	nethint.GreetingWait, nethint.ProbeAfter = 3*time.Second, 200*time.Millisecond
	_, silentPort, _ := net.SplitHostPort(silent)

	for _, tc := range []struct {
		mode      TLSMode
		addr      string
		trust     bool
		password  string // default: the right one
		wantErr   string
		permanent bool
	}{
		{mode: "implicit", addr: d.IMAPSAddr(), trust: true},
		{mode: "starttls", addr: d.IMAPAddr(), trust: true},
		{mode: "none", addr: d.IMAPAddr(), trust: true},
		{mode: "", addr: d.IMAPSAddr(), trust: true},
		{mode: "implicit", addr: d.IMAPSAddr(), wantErr: "TLS certificate not trusted", permanent: true},
		{mode: "starttls", addr: d.IMAPAddr(), wantErr: "TLS certificate not trusted", permanent: true},
		{mode: "implicit", addr: d.IMAPAddr(), trust: true, wantErr: "did not answer with TLS"},
		// A plain-text dial to the TLS port: the greeting never comes;
		// the error says so within seconds, not after the timeout.
		{mode: "starttls", addr: d.IMAPSAddr(), trust: true, wantErr: "speaks TLS directly", permanent: true},
		{mode: "none", addr: d.IMAPSAddr(), trust: true, wantErr: "speaks TLS directly", permanent: true},
		{mode: "plain", addr: d.IMAPAddr(), wantErr: `connect failed: unknown tls mode "plain"`, permanent: true},
		{mode: "none", addr: refused, wantErr: "connection refused"},
		{mode: "none", addr: silent, wantErr: "connect failed: no greeting: the server accepted the connection but sent nothing for 3s (is port " + silentPort + " its IMAP or POP3 port?)"},
		{mode: "starttls", addr: silent, trust: true, wantErr: "no greeting: the server accepted the connection but sent nothing"},
		{mode: "none", addr: cut.Addr(), wantErr: "login as " + user + " failed: server closed the connection"},
		// Last: Dovecot delays the logins that follow a failed one.
		{mode: "none", addr: d.IMAPAddr(), password: "wrong", wantErr: "login as " + user + " failed: authentication failed", permanent: true},
	} {
		name := string(tc.mode) + " " + tc.addr
		e := Endpoint{Addr: tc.addr, TLS: tc.mode, Username: user, Password: pass}
		if tc.password != "" {
			e.Password = tc.password
		}
		if tc.trust {
			e.TLSConfig = d.TLSConfig()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		start := time.Now()
		c, err := e.Dial(ctx)
		took := time.Since(start)
		cancel()
		if took > 10*time.Second {
			t.Errorf("%s: Dial took %v", name, took.Round(time.Second))
		}
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			Logout(context.Background(), c)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s (trusted %v): %v; want %q", name, tc.trust, err, tc.wantErr)
			continue
		}
		if got := nethint.Permanent(err); got != tc.permanent {
			t.Errorf("%s: %v: Permanent = %v, want %v", name, err, got, tc.permanent)
		}
	}
}
