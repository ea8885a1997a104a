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
	if !strings.Contains(strings.Join(out.CapsBefore, " "), "STARTTLS") || !strings.Contains(strings.Join(out.CapsBefore, " "), "LOGINDISABLED") {
		t.Errorf("capabilities before STARTTLS: %v", out.CapsBefore)
	}
	if !strings.Contains(out.PlainLogin, "PRIVACYREQUIRED") {
		t.Errorf("LOGIN before STARTTLS: %q", out.PlainLogin)
	}
	if out.Login != "OK" || out.Select != "OK" || out.Fetch != msgPlain {
		t.Errorf("after STARTTLS: %+v", out)
	}
}
