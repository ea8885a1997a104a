// PLACEHOLDER: replaced by part R at merge

// Package smtptest starts an SMTP relay for tests (a stand-in with the
// contract's signatures: go-smtp's server in the test process, STARTTLS or
// implicit TLS with a test CA, AUTH PLAIN required; the real one runs
// Debian's Postfix or OpenSMTPD).
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// RelayOptions configure StartRelay.
type RelayOptions struct{ ImplicitTLS bool }

// Relay is a running relay.
type Relay struct {
	Host               string
	Port               int
	CAFile             string
	Username, Password string

	implicit bool
	tls      *tls.Config

	mu        sync.Mutex
	srv       *smtp.Server
	delivered []Delivered
	reject    map[string]int
}

// Delivered is one message the relay accepted.
type Delivered struct {
	From string
	To   []string
	Data []byte
}

// StartRelay starts a relay on a free 127.0.0.1 port, stopped by
// t.Cleanup.
func StartRelay(t testing.TB, o RelayOptions) *Relay {
	t.Helper()
	dir := t.TempDir()
	caPEM, cert, err := certificates()
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{Host: "127.0.0.1", CAFile: filepath.Join(dir, "ca.pem"), Username: "relayuser", Password: "relay-secret",
		implicit: o.ImplicitTLS, tls: &tls.Config{Certificates: []tls.Certificate{cert}}, reject: map[string]int{}}
	if err := os.WriteFile(r.CAFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Port = ln.Addr().(*net.TCPAddr).Port
	r.serve(ln)
	t.Cleanup(func() { r.Stop() })
	return r
}

func (r *Relay) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{r: r}, nil }))
	srv.Domain = "relay.test"
	srv.TLSConfig = r.tls
	srv.EnableSMTPUTF8 = true
	if r.implicit {
		ln = tls.NewListener(ln, r.tls)
	}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// Stop stops listening.
func (r *Relay) Stop() error {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Start listens again on the same port.
func (r *Relay) Start() error {
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", r.Host, r.Port))
	if err != nil {
		return err
	}
	r.serve(ln)
	return nil
}

// Reject makes RCPT TO addr answer code until Reject(addr, 0).
func (r *Relay) Reject(addr string, code int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if code == 0 {
		delete(r.reject, strings.ToLower(addr))
	} else {
		r.reject[strings.ToLower(addr)] = code
	}
	return nil
}

// Delivered returns every message accepted so far.
func (r *Relay) Delivered() ([]Delivered, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivered(nil), r.delivered...), nil
}

type session struct {
	r      *Relay
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.r.Username || pass != s.r.Password {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.r.mu.Lock()
	code := s.r.reject[strings.ToLower(to)]
	s.r.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "rejected by the test"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.delivered = append(s.r.delivered, Delivered{From: s.from, To: append([]string(nil), s.to...), Data: bytes.Clone(b)})
	s.r.mu.Unlock()
	return nil
}

// certificates makes a test CA and a certificate for 127.0.0.1 signed by
// it.
func certificates() ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtptest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
