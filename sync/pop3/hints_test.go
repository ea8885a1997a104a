package pop3_test

import (
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/nethint"
	"github.com/postfach/postfach/sync/pop3"
)

// TestFetchConnectHints: Fetch's connection and login failures are one
// line naming the address and what to check, worded as IMAP's are; a
// plain-text dial (starttls or none) to a port that speaks TLS fails
// within seconds with a hint to use implicit TLS, instead of waiting the
// whole timeout for a greeting that never comes.
func TestFetchConnectHints(t *testing.T) {
	u := testenv.User{Name: "hint", Password: "hint-pass"}
	d := testenv.StartDovecot(t, u, testenv.WithTLS(testenv.TLSOn))
	_, pop3sPort, _ := strings.Cut(d.POP3SAddr(), ":")
	// A server that accepts the connection and says nothing (a web
	// server's port): the dial gives up after GreetingWait and says so.
	silent := testenv.SilentServer(t)
	_, silentPort, _ := strings.Cut(silent, ":")
	// The TLS-port probe comes well before the greeting's wait ends.
	defer func(w, p time.Duration) { nethint.GreetingWait, nethint.ProbeAfter = w, p }(nethint.GreetingWait, nethint.ProbeAfter)
	nethint.GreetingWait, nethint.ProbeAfter = time.Second, 200*time.Millisecond
	for _, tc := range []struct {
		name string
		set  func(o *pop3.FetchOptions)
		want []string
	}{
		{"starttls to the TLS port", func(o *pop3.FetchOptions) { o.Addr, o.TLS = d.POP3SAddr(), pop3.TLSStartTLS },
			[]string{d.POP3SAddr() + ": connect failed: ", "port " + pop3sPort + " speaks TLS directly", `tls = "implicit"`}},
		{"plain to the TLS port", func(o *pop3.FetchOptions) { o.Addr, o.TLS = d.POP3SAddr(), pop3.TLSNone },
			[]string{"port " + pop3sPort + " speaks TLS directly"}},
		{"TLS to the plain port", func(o *pop3.FetchOptions) { o.TLS = pop3.TLSImplicit },
			[]string{d.POP3Addr() + ": connect failed: server did not answer with TLS (wrong port or tls setting?)"}},
		{"untrusted certificate", func(o *pop3.FetchOptions) { o.Addr, o.TLS = d.POP3SAddr(), pop3.TLSImplicit },
			[]string{"TLS certificate not trusted", "set ca_file"}},
		{"starttls untrusted certificate", func(o *pop3.FetchOptions) { o.TLS = pop3.TLSStartTLS },
			[]string{"TLS certificate not trusted", "set ca_file"}},
		{"wrong password", func(o *pop3.FetchOptions) { o.Password = "wrong" },
			[]string{d.POP3Addr() + ": login as hint failed: authentication failed (wrong user name or password?): "}},
		{"a server that says nothing", func(o *pop3.FetchOptions) { o.Addr, o.TLS = silent, pop3.TLSNone },
			[]string{silent + ": connect failed: no greeting: the server accepted the connection but sent nothing for 1s (is port " + silentPort + " its IMAP or POP3 port?)"}},
		{"a server that says nothing, starttls", func(o *pop3.FetchOptions) { o.Addr, o.TLS = silent, pop3.TLSStartTLS },
			[]string{"no greeting: the server accepted the connection but sent nothing"}},
		{"unknown host", func(o *pop3.FetchOptions) { o.Addr = "no-such-host.invalid:110" },
			[]string{`no-such-host.invalid:110: connect failed: host name "no-such-host.invalid" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFetchEnv(t, d, u)
			o := e.opts()
			tc.set(&o)
			start := time.Now()
			res, err := pop3.Fetch(t.Context(), o)
			took := time.Since(start)
			if err == nil || res != nil {
				t.Fatalf("Fetch: %v, %v; want a failure", res, err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error %q is not one line", msg)
			}
			if took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			t.Logf("%s: %s", took.Round(time.Millisecond), msg)
		})
	}
}
