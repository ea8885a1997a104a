package imapd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// TestEndpointStartTLS: with Options.TLS, STARTTLS is offered and LOGIN
// waits for it.
func TestEndpointStartTLS(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	deliver(t, st, fs["INBOX"], 1, msgPlain, 0)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Store: st, Accounts: []string{"acct"},
		TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		Auth: func(_ net.Addr, u, p string) error {
			if u == testUser && p == testPass {
				return nil
			}
			return errors.New("no")
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var out struct {
		CapsBefore           []string `json:"caps_before"`
		PlainLogin           string   `json:"plain_login"`
		Login, Select, Fetch string
	}
	python(t, "starttls.py", ln.Addr().String(), &out)
	if !strings.Contains(strings.Join(out.CapsBefore, " "), "STARTTLS") {
		t.Errorf("capabilities before STARTTLS: %v", out.CapsBefore)
	}
	if out.PlainLogin != "OK" {
		t.Errorf("LOGIN in the clear on loopback: %q", out.PlainLogin)
	}
	if out.Login != "OK" || out.Select != "OK" || out.Fetch != msgPlain {
		t.Errorf("after STARTTLS: %+v", out)
	}
}

// fakeConn is a connection from addr, for clearTextOK.
type fakeConn struct {
	net.Conn
	addr net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.addr }

// TestClearTextLogin: a login in the clear is taken from loopback only; a
// connection from another machine must be on TLS.
func TestClearTextLogin(t *testing.T) {
	far := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
	for _, c := range []struct {
		name string
		conn net.Conn
		want bool
	}{
		{"loopback", fakeConn{addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}, true},
		{"loopback6", fakeConn{addr: &net.TCPAddr{IP: net.IPv6loopback, Port: 40000}}, true},
		{"remote", fakeConn{addr: far}, false},
		{"remote over TLS", tls.Server(fakeConn{addr: far}, &tls.Config{}), true},
	} {
		if got := clearTextOK(c.conn); got != c.want {
			t.Errorf("%s: clearTextOK = %v, want %v", c.name, got, c.want)
		}
	}
}
