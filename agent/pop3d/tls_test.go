package pop3d

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"testing"
)

// TestSTLS: STLS upgrades the connection; a command sent in the clear
// behind STLS is never read as one under TLS; after STLS, CAPA no longer
// offers it.
func TestSTLS(t *testing.T) {
	ts := newTestStore(t)
	msgs := corpus(10)[:2]
	ts.deliver(t, "acct", "INBOX", msgs...)
	cfg, certPEM := testCert(t)
	srv := start(t, ts, func(o *Options) { o.TLS = cfg })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	c := dial(t, srv.addr)
	c.cmd("CAPA", "+OK")
	if caps := c.multi(); !slices.Contains(caps, "STLS") {
		t.Errorf("CAPA %q lacks STLS", caps)
	}
	c.cmd("STLS x", "-ERR")
	c.cmd("STLS", "+OK")
	tc := tls.Client(c.c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
	c.cmd("CAPA", "+OK")
	if caps := c.multi(); slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA under TLS %q", caps)
	}
	c.cmd("STLS", "-ERR")
	c.login(testUser)
	if got := c.retr(2, sizeOf(msgs[1:2])); got != string(wireForm(msgs[1])) {
		t.Errorf("RETR under TLS: %q", got)
	}
	c.cmd("QUIT", "+OK")

	// Injection: "STLS\r\nUSER evil\r\n" in one packet.
	c = dial(t, srv.addr)
	c.send("STLS\r\nCAPA\r\n")
	c.expect("+OK")
	c.closed()
}

// fakeAddrConn is a connection that claims to come from another machine.
type fakeAddrConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeAddrConn) RemoteAddr() net.Addr { return c.remote }

// TestRemotePlaintext: a client not on this machine cannot log in before
// STLS, and is not offered to; over TLS it can.
func TestRemotePlaintext(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:1]...)
	cfg, certPEM := testCert(t)
	srv := start(t, ts, func(o *Options) { o.TLS = cfg })
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}
	open := func() *conn {
		cl, sv := net.Pipe()
		srv.start(fakeAddrConn{sv, remote})
		t.Cleanup(func() { cl.Close() })
		c := &conn{t: t, c: cl, br: bufio.NewReader(cl)}
		c.expect("+OK")
		return c
	}
	c := open()
	c.cmd("CAPA", "+OK")
	if caps := c.multi(); slices.Contains(caps, "USER") || slices.Contains(caps, "SASL PLAIN") || !slices.Contains(caps, "STLS") {
		t.Errorf("CAPA in the clear from afar: %q", caps)
	}
	c.cmd("USER "+testUser, "-ERR")
	c.cmd("PASS "+testPass, "-ERR")
	c.cmd("AUTH PLAIN "+plain("", testUser, testPass), "-ERR")
	c.cmd("AUTH", "-ERR")
	c.cmd("STLS", "+OK")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tc := tls.Client(c.c, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	c.c, c.br = tc, bufio.NewReader(tc)
	c.cmd("CAPA", "+OK")
	if caps := c.multi(); !slices.Contains(caps, "USER") {
		t.Errorf("CAPA under TLS from afar: %q", caps)
	}
	c.login(testUser)
	c.cmd("QUIT", "+OK")
}
