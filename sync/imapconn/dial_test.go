package imapconn

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
)

// TestDialModes: the connection postfach dials itself (to give go-imap a
// progressConn) logs in over implicit TLS, STARTTLS and plain, and keeps
// the one-line hints for an untrusted certificate, a plain port dialled
// with TLS and a TLS port dialled in plain text.
func TestDialModes(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.WithTLS(testenv.TLSOn))
	pass, _ := d.Password(testenv.DefaultUser.Name)
	user := testenv.DefaultUser.Name
	for _, tc := range []struct {
		mode    TLSMode
		addr    string
		trust   bool
		wantErr string
	}{
		{"implicit", d.IMAPSAddr(), true, ""},
		{"starttls", d.IMAPAddr(), true, ""},
		{"none", d.IMAPAddr(), true, ""},
		{"implicit", d.IMAPSAddr(), false, "TLS certificate not trusted"},
		{"implicit", d.IMAPAddr(), true, "did not answer with TLS"},
		// A plain-text dial to the TLS port: the greeting never comes;
		// the error says so within seconds, not after the timeout.
		{"starttls", d.IMAPSAddr(), true, "speaks TLS directly"},
		{"none", d.IMAPSAddr(), true, "speaks TLS directly"},
	} {
		e := Endpoint{Addr: tc.addr, TLS: tc.mode, Username: user, Password: pass}
		if tc.trust {
			e.TLSConfig = d.TLSConfig()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		start := time.Now()
		c, err := e.Dial(ctx)
		took := time.Since(start)
		cancel()
		if took > 10*time.Second {
			t.Errorf("%s %s: Dial took %v", tc.mode, tc.addr, took.Round(time.Second))
		}
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s %s: %v", tc.mode, tc.addr, err)
				continue
			}
			Logout(context.Background(), c)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s %s (trusted %v): %v; want %q", tc.mode, tc.addr, tc.trust, err, tc.wantErr)
		}
	}
}
