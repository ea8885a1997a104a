package clienttest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TLSMode is how clients reach a Target.
type TLSMode int

const (
	// TLSNone: plaintext (loopback only).
	TLSNone TLSMode = iota
	// TLSStartTLS: plaintext, then STARTTLS (IMAP) or STLS (POP3).
	TLSStartTLS
	// TLSImplicit: TLS from the first byte.
	TLSImplicit
)

// Target is an IMAP and POP3 endpoint with one account's credentials.
type Target struct {
	IMAP string // host:port, "" when there is none
	POP3 string // host:port, "" when there is none
	User string
	Pass string

	TLS TLSMode
	// CAFile is a PEM file with the certificate (or its CA) the clients
	// trust; required with TLS. ServerName is the name the Go sessions,
	// mbsync and fetchmail check (default: the host of the address, and
	// "localhost" for a loopback address with mbsync and fetchmail, which
	// match DNS names only); Python's clients always check the address's
	// host (an IP address against the certificate's IP addresses).
	CAFile     string
	ServerName string
	// TLSConfig is the same trust for Go clients (the raw sessions).
	TLSConfig *tls.Config
}

// Endpoint gives a fresh account on an endpoint for one test: INBOX
// exists and is empty, there is no other folder. Each call gives an
// account no other call shares (a new user or a new instance); the
// endpoint stops at the test's cleanup.
//
// This is the fixture the lead points at postfach at merge: an Endpoint
// that starts the local endpoint (imapd/pop3d over a fresh store) and
// returns its addresses and local credentials.
type Endpoint func(t testing.TB) Target

// DovecotEndpoint returns an Endpoint backed by one private Dovecot (started
// on first use, in t's cleanup scope) with n users: each call hands out
// the next unused user. With CI=true a missing Dovecot fails the test.
func DovecotEndpoint(t testing.TB, n int) Endpoint {
	t.Helper()
	var (
		mu   sync.Mutex
		d    *testenv.Dovecot
		next int
	)
	users := make([]testenv.Option, n)
	for i := range users {
		users[i] = testenv.User{Name: fmt.Sprintf("u%d", i+1), Password: fmt.Sprintf("pass-%d", i+1)}
	}
	return func(tt testing.TB) Target {
		tt.Helper()
		mu.Lock()
		defer mu.Unlock()
		if d == nil {
			d = testenv.StartDovecot(t, users...)
		}
		if next >= n {
			tt.Fatalf("clienttest: all %d Dovecot users handed out", n)
		}
		next++
		return DovecotTarget(d, fmt.Sprintf("u%d", next))
	}
}

// DovecotTarget is the Target of user on d (plaintext, or STARTTLS when d
// has TLS).
func DovecotTarget(d *testenv.Dovecot, user string) Target {
	pass, _ := d.Password(user)
	t := Target{IMAP: d.IMAPAddr(), POP3: d.POP3Addr(), User: user, Pass: pass}
	if d.CertFile != "" {
		t.TLS, t.CAFile, t.TLSConfig = TLSStartTLS, d.CertFile, d.TLSConfig()
	}
	return t
}

// dialIMAP opens an IMAP connection to t (TLS as configured) and returns it
// with the greeting read.
func (t Target) dialIMAP() (net.Conn, *bufio.Reader, error) {
	if t.IMAP == "" {
		return nil, nil, errors.New("clienttest: target has no IMAP address")
	}
	var c net.Conn
	var err error
	if t.TLS == TLSImplicit {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", t.IMAP, t.tlsConfig())
	} else {
		c, err = net.DialTimeout("tcp", t.IMAP, 10*time.Second)
	}
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(WaitTimeout))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "* OK") {
		c.Close()
		return nil, nil, fmt.Errorf("clienttest: IMAP greeting from %s: %q %v", t.IMAP, line, err)
	}
	if t.TLS == TLSStartTLS {
		fmt.Fprintf(c, "S0 STARTTLS\r\n")
		for {
			line, err = r.ReadString('\n')
			if err != nil {
				c.Close()
				return nil, nil, fmt.Errorf("clienttest: STARTTLS at %s: %v", t.IMAP, err)
			}
			if strings.HasPrefix(line, "S0 ") {
				break
			}
		}
		if !strings.HasPrefix(line, "S0 OK") {
			c.Close()
			return nil, nil, fmt.Errorf("clienttest: STARTTLS at %s: %q", t.IMAP, line)
		}
		tc := tls.Client(c, t.tlsConfig())
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("clienttest: STARTTLS at %s: %v", t.IMAP, err)
		}
		c, r = tc, bufio.NewReader(tc)
	}
	c.SetDeadline(time.Time{})
	return c, r, nil
}

func (t Target) tlsConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSConfig != nil {
		cfg = t.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = t.ServerName
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.IMAP)
		}
	}
	return cfg
}

// Seed APPENDs msgs to t's account over IMAP (their folders created when
// missing, their flags and internal dates kept, in order within a
// folder), using testenv's Appender (MULTIAPPEND and LITERAL+ when
// offered).
func Seed(t Target, msgs []corpus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	conn, err := t.rawConn()
	if err != nil {
		return err
	}
	a, err := testenv.NewAppender(conn, t.User, t.Pass)
	if err != nil {
		conn.Close()
		return err
	}
	for _, m := range msgs {
		if err := a.Append(m); err != nil {
			a.Close()
			return err
		}
	}
	return a.Close()
}

// rawConn is a fresh connection with nothing read (greeting pending), TLS
// set up; for STARTTLS it replays the greeting after the upgrade.
func (t Target) rawConn() (net.Conn, error) {
	switch t.TLS {
	case TLSImplicit:
		return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", t.IMAP, t.tlsConfig())
	case TLSStartTLS:
		c, r, err := t.dialIMAP()
		if err != nil {
			return nil, err
		}
		return &prefixConn{Conn: c, r: r, prefix: []byte("* OK greeting after STARTTLS\r\n")}, nil
	}
	return net.DialTimeout("tcp", t.IMAP, 10*time.Second)
}

// prefixConn reads prefix, then the buffered reader's bytes, then the conn.
type prefixConn struct {
	net.Conn
	r      *bufio.Reader
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.r.Read(b)
}
