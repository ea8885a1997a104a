package outbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testRelay is an in-process SMTP server (go-smtp's) for the sender's
// unit tests; the real relay of the integration tests is
// internal/smtptest's.
type testRelay struct {
	Host string
	Port int
	Pool *x509.CertPool // trusts its certificate

	mu        sync.Mutex
	delivered []delivered
	mails     int                 // MAIL commands
	conns     map[*smtp.Conn]bool // connections that sent MAIL
	reject    map[string]int      // RCPT TO addr -> reply code
	authed    []string            // usernames signed in
	tlsMails  int                 // MAIL commands over TLS
	onData    func()              // runs at each DATA (tests)
	dataCode  int                 // non-zero: the reply to the end of DATA
	srv       *smtp.Server
	tcp       []*countedConn // every connection, in order
}

// Sessions returns how many connections the relay took, and how many
// ended.
func (r *testRelay) Sessions() (opened, ended int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.tcp {
		if c.closed {
			ended++
		}
	}
	return len(r.tcp), ended
}

// Hangup closes every connection, as a relay's idle timeout does.
func (r *testRelay) Hangup() {
	r.mu.Lock()
	cs := append([]*countedConn(nil), r.tcp...)
	r.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// countingListener records the relay's connections (testRelay.tcp).
type countingListener struct {
	net.Listener
	r *testRelay
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countedConn{Conn: c, r: l.r}
	l.r.mu.Lock()
	l.r.tcp = append(l.r.tcp, cc)
	l.r.mu.Unlock()
	return cc, nil
}

type countedConn struct {
	net.Conn
	r      *testRelay
	closed bool // under r.mu
}

func (c *countedConn) Close() error {
	c.r.mu.Lock()
	c.closed = true
	c.r.mu.Unlock()
	return c.Conn.Close()
}

type delivered struct {
	From string
	To   []string
	Data []byte
}

type relayOpts struct {
	startTLS, implicit, utf8 bool
	auth                     bool // require AUTH (user/secret)
	port                     int  // 0: a free port
}

func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test relay"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func startRelay(t *testing.T, o relayOpts) *testRelay {
	t.Helper()
	r := &testRelay{reject: map[string]int{}, conns: map[*smtp.Conn]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{r: r, c: c, needAuth: o.auth}, nil
	}))
	srv.Domain = "relay.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.AllowInsecureAuth = !o.startTLS && !o.implicit
	srv.EnableSMTPUTF8 = o.utf8
	cert, pool := testCert(t)
	r.Pool = pool
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
	if err != nil {
		t.Fatal(err)
	}
	if o.startTLS || o.implicit {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	ln = countingListener{Listener: ln, r: r}
	if o.implicit {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	r.srv = srv
	r.Host = "127.0.0.1"
	r.Port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// deadRelay is a relay's address where nothing listens.
func deadRelay(t *testing.T) *testRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return &testRelay{Host: "127.0.0.1", Port: port}
}

func (r *testRelay) Delivered() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.delivered...)
}

func (r *testRelay) SetDataCode(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dataCode = code
}

func (r *testRelay) Reject(addr string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if code == 0 {
		delete(r.reject, addr)
	} else {
		r.reject[addr] = code
	}
}

type session struct {
	r        *testRelay
	c        *smtp.Conn
	needAuth bool
	user     string
	from     string
	to       []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "user" || password != "secret" {
			return smtp.ErrAuthFailed
		}
		s.user = username
		s.r.mu.Lock()
		s.r.authed = append(s.r.authed, username)
		s.r.mu.Unlock()
		return nil
	}), nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.needAuth && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.r.mu.Lock()
	s.r.mails++
	s.r.conns[s.c] = true
	if _, ok := s.c.TLSConnectionState(); ok {
		s.r.tlsMails++
	}
	s.r.mu.Unlock()
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.r.mu.Lock()
	code := s.r.reject[to]
	s.r.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "rejected " + to}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	if len(s.to) == 0 {
		return errors.New("no recipients")
	}
	s.r.mu.Lock()
	if code := s.r.dataCode; code != 0 {
		s.r.mu.Unlock()
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 6, 0}, Message: "content refused"}
	}
	s.r.delivered = append(s.r.delivered, delivered{From: s.from, To: s.to, Data: b})
	hook := s.r.onData
	s.r.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
