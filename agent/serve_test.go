package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/agent/localauth"
	"github.com/postfach/postfach/configs"
)

// echoEndpoint is a trivial Endpoint for the tests: a line protocol with
// STARTTLS, LOGIN user pass (through Auth) and ECHO text.
type echoEndpoint struct {
	opts  EndpointOptions
	addrs chan net.Addr // the listener's address, once

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	closed bool
}

func newEcho(o EndpointOptions) *echoEndpoint {
	return &echoEndpoint{opts: o, addrs: make(chan net.Addr, 1), conns: map[net.Conn]bool{}}
}

func (e *echoEndpoint) Serve(ln net.Listener) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.ln = ln
	e.mu.Unlock()
	e.addrs <- ln.Addr()
	for {
		c, err := ln.Accept()
		if err != nil {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.closed {
				return nil
			}
			return err
		}
		e.mu.Lock()
		e.conns[c] = true
		e.mu.Unlock()
		go e.session(c)
	}
}

func (e *echoEndpoint) session(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), c
	fmt.Fprintf(w, "* hello\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch cmd {
		case "STARTTLS":
			if e.opts.TLS == nil {
				fmt.Fprintf(w, "NO no TLS\r\n")
				continue
			}
			fmt.Fprintf(w, "OK begin TLS\r\n")
			tc := tls.Server(c, e.opts.TLS)
			if tc.Handshake() != nil {
				return
			}
			r, w = bufio.NewReader(tc), tc
		case "LOGIN":
			user, pass, _ := strings.Cut(arg, " ")
			if err := e.opts.Auth(c.RemoteAddr(), user, pass); err != nil {
				fmt.Fprintf(w, "NO %v\r\n", err)
			} else {
				fmt.Fprintf(w, "OK logged in\r\n")
			}
		case "ECHO":
			fmt.Fprintf(w, "%s\r\n", arg)
		default:
			fmt.Fprintf(w, "BAD\r\n")
		}
	}
}

func (e *echoEndpoint) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.ln != nil {
		e.ln.Close()
	}
	for c := range e.conns {
		c.Close()
	}
	return nil
}

// client is a test client of the echo endpoint.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialEcho(t *testing.T, conn net.Conn) *client {
	t.Helper()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	if got := c.line(); got != "* hello" {
		t.Fatalf("greeting %q", got)
	}
	return c
}

func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimRight(s, "\r\n")
}

func (c *client) do(cmd string) string {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", cmd)
	return c.line()
}

// starttls upgrades the connection, trusting only the given certificate.
func (c *client) starttls(cert *localauth.Certificate) error {
	c.t.Helper()
	if got := c.do("STARTTLS"); got != "OK begin TLS" {
		return fmt.Errorf("STARTTLS: %s", got)
	}
	tc := tls.Client(c.conn, pinned(cert))
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	return nil
}

func pinned(cert *localauth.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(cert.TLS.Leaf)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startService runs an endpointService with an echo endpoint on
// 127.0.0.1 and returns the endpoint's address and the service's end.
func startService(t *testing.T, mode string, cert *localauth.Certificate, auth func(net.Addr, string, string) error) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	return startServiceWith(t, &endpointService{mode: mode, auth: auth}, cert)
}

func startServiceWith(t *testing.T, svc *endpointService, cert *localauth.Certificate) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	made := make(chan *echoEndpoint, 1)
	svc.name, svc.addr, svc.log = "imap", "127.0.0.1:0", testLogger(t)
	svc.newEndpoint = func(starttls *tls.Config, auth func(net.Addr, string, string) error) (Endpoint, error) {
		e := newEcho(EndpointOptions{Auth: auth, TLS: starttls})
		made <- e
		return e, nil
	}
	if cert != nil {
		svc.tls = cert.TLSConfig()
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case e := <-made:
		return (<-e.addrs).String(), cancel, done
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return "", nil, nil
}

func allow(net.Addr, string, string) error { return nil }

// The service serves an endpoint over real sockets in each TLS mode:
// plain; STARTTLS handed to the endpoint; implicit TLS wrapped around the
// listener (a plain client gets nothing it can read); and it stops with
// its context, sessions and all, at once.
func TestEndpointServiceTLSModes(t *testing.T) {
	cert, err := localauth.LoadCertificate(t.TempDir(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("none", func(t *testing.T) {
		addr, cancel, done := startService(t, "none", nil, allow)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := dialEcho(t, conn)
		if got := c.do("STARTTLS"); got != "NO no TLS" {
			t.Errorf("STARTTLS with tls = none: %q", got)
		}
		if got := c.do("ECHO plain"); got != "plain" {
			t.Errorf("echo %q", got)
		}
		// Stopping ends the open session too, at once.
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after stop = %v", err)
		}
		if got := c.line(); !strings.HasPrefix(got, "error: ") {
			t.Errorf("session after stop read %q", got)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("stopping took %v", d)
		}
		if _, err := net.Dial("tcp", addr); err == nil {
			t.Error("still listening after stop")
		}
	})
	t.Run("starttls", func(t *testing.T) {
		addr, cancel, done := startService(t, "starttls", cert, allow)
		defer func() { cancel(); <-done }()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := dialEcho(t, conn)
		if err := c.starttls(cert); err != nil {
			t.Fatal(err)
		}
		if got := c.do("ECHO secret"); got != "secret" {
			t.Errorf("echo over STARTTLS %q", got)
		}
	})
	t.Run("implicit", func(t *testing.T) {
		addr, cancel, done := startService(t, "implicit", cert, allow)
		defer func() { cancel(); <-done }()
		conn, err := tls.Dial("tcp", addr, pinned(cert))
		if err != nil {
			t.Fatal(err)
		}
		c := dialEcho(t, conn)
		if got := c.do("STARTTLS"); got != "NO no TLS" {
			t.Errorf("STARTTLS inside implicit TLS: %q", got)
		}
		if got := c.do("ECHO tls"); got != "tls" {
			t.Errorf("echo %q", got)
		}
		plain, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		plain.SetReadDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(plain, "ECHO x\r\n")
		b, _ := io.ReadAll(plain)
		if strings.Contains(string(b), "hello") || strings.Contains(string(b), "x\r\n") {
			t.Errorf("a plain client read %q", b)
		}
	})
}

// A client on another machine cannot log in in clear text: only after
// STARTTLS (or over implicit TLS); one on this machine can. (The test
// plays the remote client over loopback sockets.)
func TestEndpointServicePlaintextLogin(t *testing.T) {
	cert, err := localauth.LoadCertificate(t.TempDir(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	var mu sync.Mutex
	auth := func(net.Addr, string, string) error { mu.Lock(); calls++; mu.Unlock(); return nil }
	remote := func(net.Addr) bool { return false }
	for _, mode := range []string{"starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			addr, cancel, done := startServiceWith(t, &endpointService{mode: mode, auth: auth, loopback: remote}, cert)
			defer func() { cancel(); <-done }()
			var c *client
			if mode == "implicit" {
				conn, err := tls.Dial("tcp", addr, pinned(cert))
				if err != nil {
					t.Fatal(err)
				}
				c = dialEcho(t, conn)
			} else {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c = dialEcho(t, conn)
				mu.Lock()
				calls = 0
				mu.Unlock()
				if got := c.do("LOGIN me pw"); got != "NO "+errPlaintextLogin.Error() {
					t.Errorf("clear-text login from another machine: %q", got)
				}
				mu.Lock()
				if calls != 0 {
					t.Errorf("the password was checked (%d calls)", calls)
				}
				mu.Unlock()
				if err := c.starttls(cert); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.do("LOGIN me pw"); got != "OK logged in" {
				t.Errorf("login over TLS from another machine: %q", got)
			}
		})
	}
	// On this machine, clear text is fine (STARTTLS offered, not forced).
	addr, cancel, done := startService(t, "starttls", cert, auth)
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := dialEcho(t, conn).do("LOGIN me pw"); got != "OK logged in" {
		t.Errorf("clear-text login on this machine: %q", got)
	}
}

// An address that is not loopback is refused without allow_remote, and
// without TLS; nothing listens and no endpoint is made.
func TestEndpointServiceRefusesRemote(t *testing.T) {
	tests := []struct {
		addr, mode string
		allow      bool
		want       string // "" = allowed
	}{
		{"0.0.0.0:1143", "none", false, "imap endpoint: 0.0.0.0:1143 is not a loopback address: refused without [serve] allow_remote = true"},
		{"[::]:1143", "implicit", false, "imap endpoint: [::]:1143 is not a loopback address: refused without [serve] allow_remote = true"},
		{":1143", "starttls", false, "imap endpoint: :1143 is not a loopback address: refused without [serve] allow_remote = true"},
		{"192.0.2.1:1143", "none", true, `imap endpoint: 192.0.2.1:1143 is not a loopback address: refused without TLS ([serve] tls = "starttls" or "implicit")`},
		{"192.0.2.1:1143", "starttls", true, ""},
		{"[::]:993", "implicit", true, ""},
		{"127.0.0.1:1143", "none", false, ""},
		{"localhost:1143", "none", false, ""},
		{"[::1]:1143", "none", false, ""},
	}
	for _, tt := range tests {
		err := checkListen("imap", tt.addr, tt.mode, tt.allow)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("checkListen(%s, %s, %v) = %v, want %q", tt.addr, tt.mode, tt.allow, err, tt.want)
		}
	}
	// The service itself: refused before it listens.
	made := false
	svc := &endpointService{name: "pop3", addr: "0.0.0.0:0", mode: "none", log: testLogger(t),
		newEndpoint: func(*tls.Config, func(net.Addr, string, string) error) (Endpoint, error) {
			made = true
			return newEcho(EndpointOptions{}), nil
		}}
	err := svc.Run(t.Context())
	if want := "pop3 endpoint: 0.0.0.0:0 is not a loopback address: refused without [serve] allow_remote = true"; err == nil || err.Error() != want || made {
		t.Errorf("Run = %v (endpoint made: %v), want %q", err, made, want)
	}
}

// A port in use is one clear line.
func TestEndpointServicePortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	svc := &endpointService{name: "imap", addr: busy.Addr().String(), mode: "none", log: testLogger(t),
		newEndpoint: func(*tls.Config, func(net.Addr, string, string) error) (Endpoint, error) {
			return newEcho(EndpointOptions{}), nil
		}}
	err = svc.Run(t.Context())
	want := "imap endpoint: cannot listen on " + busy.Addr().String() + ": address already in use (another program, or another postfach, uses the port: stop it or pick another port in [serve])"
	if err == nil || err.Error() != want {
		t.Errorf("Run = %v\nwant %s", err, want)
	}
}

// freePort returns a loopback address nothing listens on (just now).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func freeTCPPort(t *testing.T) int {
	_, port, _ := net.SplitHostPort(freePort(t))
	n, _ := strconv.Atoi(port)
	return n
}

// postfach run serves the endpoints [serve] asks for: the generated login
// works (over STARTTLS, with the generated certificate), a wrong one and
// the upstream password are refused and counted; an endpoint whose port
// is taken fails in one log line, shown in the status, while the rest of
// the agent goes on; the run stops promptly.
func TestRunServesEndpoints(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	imapAddr := freePort(t)
	doc := fmt.Sprintf(`[store]
path = "store"

[[accounts]]
name = "work"
kind = "imap"
host = "127.0.0.1"
port = %d
tls = "none"
username = "me"
password = "upstream-secret"

[serve]
imap = %q
pop3 = %q
`, freeTCPPort(t), imapAddr, busy.Addr().String())
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte(doc), 0o600)
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	made := make(chan *echoEndpoint, 2)
	mk := func(o EndpointOptions) (Endpoint, error) {
		e := newEcho(o)
		made <- e
		return e, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	reload := make(chan *configs.Config)
	go func() { done <- a.Run(ctx, RunOptions{Reload: reload, Endpoints: Endpoints{IMAP: mk, POP3: mk}}) }()

	var e *echoEndpoint
	select {
	case e = <-made:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no endpoint made")
	}
	<-e.addrs
	if want := []string{"work"}; strings.Join(e.opts.Accounts, ",") != strings.Join(want, ",") || e.opts.Store != a.store || e.opts.Folder("work") != "INBOX" {
		t.Errorf("endpoint options: accounts %q, store %p (want %p), folder %q", e.opts.Accounts, e.opts.Store, a.store, e.opts.Folder("work"))
	}
	creds, err := localauth.LoadCredentials(cfg.Store.Path, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := localauth.LoadCertificate(cfg.Store.Path, "", "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := dialEcho(t, conn)
	if err := c.starttls(cert); err != nil {
		t.Fatalf("STARTTLS with the generated certificate: %v", err)
	}
	if got := c.do("LOGIN " + creds.Username + " upstream-secret"); got != "NO authentication failed" {
		t.Errorf("upstream password: %q", got)
	}
	if got := c.do("LOGIN " + creds.Username + " " + creds.Password); got != "OK logged in" {
		t.Errorf("local login: %q", got)
	}

	// The status: IMAP listening with one failed login; POP3 failed.
	var st *AgentStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, err = a.AgentStatus(ctx); err == nil && len(st.Endpoints) == 2 && st.Endpoints[1].State == EndpointFailed {
			break
		}
	}
	if st == nil || len(st.Endpoints) != 2 {
		t.Fatalf("status %+v, %v", st, err)
	}
	wantIMAP := EndpointStatus{Name: "imap", Addr: imapAddr, TLS: "starttls", State: EndpointListening, FailedLogins: 1}
	if st.Endpoints[0] != wantIMAP {
		t.Errorf("imap status %+v\nwant %+v", st.Endpoints[0], wantIMAP)
	}
	wantPOP3 := EndpointStatus{Name: "pop3", Addr: busy.Addr().String(), TLS: "starttls", State: EndpointFailed, FailedLogins: 1,
		Error: "pop3 endpoint: cannot listen on " + busy.Addr().String() + ": address already in use (another program, or another postfach, uses the port: stop it or pick another port in [serve])"}
	if st.Endpoints[1] != wantPOP3 {
		t.Errorf("pop3 status %+v\nwant %+v", st.Endpoints[1], wantPOP3)
	}
	if len(st.Accounts) != 1 || st.Accounts[0].Name != "work" {
		t.Errorf("the account's service: %+v", st.Accounts)
	}

	// Once the port is free, a reload (SIGHUP) starts the failed endpoint;
	// the login stays the same.
	busy.Close()
	reload <- cfg
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, err = a.AgentStatus(ctx); err == nil && len(st.Endpoints) == 2 && st.Endpoints[1].State == EndpointListening {
			break
		}
	}
	if len(st.Endpoints) != 2 || st.Endpoints[1].State != EndpointListening {
		t.Fatalf("after a reload: %+v", st.Endpoints)
	}
	conn, err = net.Dial("tcp", busy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c = dialEcho(t, conn)
	if err := c.starttls(cert); err != nil {
		t.Fatal(err)
	}
	if got := c.do("LOGIN " + creds.Username + " " + creds.Password); got != "OK logged in" {
		t.Errorf("local login on the restarted endpoint: %q", got)
	}

	start := time.Now()
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stopping took %v", d)
	}
}

// stuckEndpoint's Serve does not return when closed.
type stuckEndpoint struct{ release chan struct{} }

func (s stuckEndpoint) Serve(net.Listener) error { <-s.release; return nil }
func (s stuckEndpoint) Close() error             { return nil }

// An endpoint that does not stop when closed is abandoned after
// endpointStopWait: the agent's stop (and a reload) is not held up.
func TestEndpointServiceStuckEndpoint(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	listening := make(chan struct{})
	svc := &endpointService{name: "imap", addr: "127.0.0.1:0", mode: "none", log: testLogger(t),
		newEndpoint: func(*tls.Config, func(net.Addr, string, string) error) (Endpoint, error) {
			return stuckEndpoint{release}, nil
		},
		listening: func() { close(listening) }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-listening
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
		if d := time.Since(start); d < endpointStopWait {
			t.Errorf("returned after %v, before the endpoint's time was up", d)
		}
	case <-time.After(endpointStopWait + 10*time.Second):
		t.Fatal("Run waits for a stuck endpoint")
	}
}
