package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

// The local endpoints (`postfach run` with [serve] imap or pop3 set): one
// endpointService per endpoint listens on its address and runs an
// Endpoint (the IMAP or POP3 server) on it. The servers themselves are
// plugged in by the CLI through RunOptions.Endpoints; this file does what
// they share: where to listen and whether that is allowed, TLS (implicit:
// the listener is wrapped; STARTTLS: the server gets the tls.Config), and
// the guard around the login check. serve_run.go runs them within Run.

// Endpoint is a local endpoint's server (agent/imapd and agent/pop3d
// Server).
type Endpoint interface {
	// Serve accepts connections on ln until Close; it returns nil after
	// Close.
	Serve(ln net.Listener) error
	// Close stops listening and ends the sessions.
	Close() error
}

// EndpointOptions is what an EndpointFunc gets; its fields are those of
// imapd.Options and pop3d.Options.
type EndpointOptions struct {
	Store    *index.Store
	Accounts []string // account names, in the order of the config
	// Folder is the local folder the POP3 endpoint serves of an account:
	// [serve] pop3_folder, else a POP3 account's own folder, else INBOX.
	Folder func(account string) string
	// Auth checks a login (localauth.Checker.Check): nil means logged in.
	Auth func(remote net.Addr, username, password string) error
	// TLS is non-nil when the endpoint offers STARTTLS (STLS); with
	// implicit TLS the listener is already wrapped and TLS is nil.
	TLS    *tls.Config
	Logger *slog.Logger

	// The submission endpoint's (serve_submit.go): the accounts that
	// send mail, and the nudge of an account's sender once a message is
	// queued.
	Senders []SenderAccount
	Nudge   func(account string)
}

// EndpointFunc makes an endpoint.
type EndpointFunc func(EndpointOptions) (Endpoint, error)

// Endpoints are the local endpoints `postfach run` can serve; a nil one
// is not built in (an address set for it is logged and ignored).
type Endpoints struct {
	IMAP, POP3, Submission EndpointFunc
}

// Endpoint states, as EndpointStatus.State says them.
const (
	EndpointStarting  = "starting"
	EndpointListening = "listening"
	EndpointFailed    = "failed" // see Error; a reload (SIGHUP) tries again
)

// EndpointStatus is a local endpoint's live state, in AgentStatus.
type EndpointStatus struct {
	Name  string `json:"name"` // "imap", "pop3" or "submission"
	Addr  string `json:"addr"` // as configured
	TLS   string `json:"tls"`  // none, starttls or implicit
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// FailedLogins counts the logins refused since the endpoints started
	// (all endpoints share the count).
	FailedLogins int64 `json:"failed_logins"`
}

// endpointService is one local endpoint.
type endpointService struct {
	name        string // "imap", "pop3"
	addr        string
	mode        string // none, starttls, implicit
	allowRemote bool
	tls         *tls.Config // the certificate, for starttls and implicit
	// auth checks a login (localauth.Checker.Check); Run hands the
	// endpoint a guard around it (see guardAuth).
	auth func(remote net.Addr, username, password string) error
	// newEndpoint builds the endpoint; starttls is what it offers as
	// STARTTLS (nil: none), auth its login check.
	newEndpoint func(starttls *tls.Config, auth func(net.Addr, string, string) error) (Endpoint, error)
	log         *slog.Logger
	// listening is called once the endpoint accepts connections.
	listening func()
	// loopback tells a client on this machine (nil: isLoopbackAddr); the
	// tests replace it to play a remote client.
	loopback func(net.Addr) bool
}

// endpointStopWait bounds the wait for an endpoint's Serve to return
// after Close.
const endpointStopWait = 2 * time.Second

// Run listens on the service's address and serves the endpoint until ctx
// ends (then it returns nil once the endpoint has closed) or the endpoint
// fails. It refuses an address that is not loopback unless remote access
// is allowed and TLS is on.
func (s *endpointService) Run(ctx context.Context) error {
	if err := checkListen(s.name, s.addr, s.mode, s.allowRemote); err != nil {
		return err
	}
	if s.mode != "none" && s.tls == nil {
		return fmt.Errorf("%s endpoint: tls = %q but no certificate", s.name, s.mode)
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("%s endpoint: cannot listen on %s: %s", s.name, s.addr, listenReason(err))
	}
	defer ln.Close()
	// "localhost" may resolve to anything: judge what was bound.
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() && !s.allowRemote {
		return fmt.Errorf("%s endpoint: %s listens on %s, which is not loopback: refused (see [serve] allow_remote)", s.name, s.addr, ta.IP)
	}
	tracker := &tlsTracker{conns: map[string]bool{}}
	ln = trackedListener{Listener: ln, t: tracker}
	var starttls *tls.Config
	switch s.mode {
	case "implicit":
		ln = tls.NewListener(ln, tracker.config(s.tls))
	case "starttls":
		starttls = tracker.config(s.tls)
	}
	ep, err := s.newEndpoint(starttls, s.guardAuth(tracker))
	if err != nil {
		return fmt.Errorf("%s endpoint: %w", s.name, err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ln) }()
	s.log.Info("local endpoint listening", "endpoint", s.name, "addr", ln.Addr().String(), "tls", s.mode)
	if s.listening != nil {
		s.listening()
	}
	select {
	case <-ctx.Done():
		ep.Close()
		ln.Close()
		t := time.NewTimer(endpointStopWait)
		defer t.Stop()
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("local endpoint stopped", "endpoint", s.name, "err", err)
			}
		case <-t.C:
			// Within the agent's budget (3 s), and a reload is not held
			// up by it.
			s.log.Warn("local endpoint did not stop in time: abandoned", "endpoint", s.name, "waited", endpointStopWait)
		}
		return nil
	case err := <-served:
		ep.Close()
		if err == nil {
			err = errors.New("stopped serving")
		}
		return fmt.Errorf("%s endpoint on %s: %w", s.name, s.addr, err)
	}
}

// errPlaintextLogin refuses a login sent in clear text from another
// machine.
var errPlaintextLogin = errors.New("login refused: from another machine, log in over TLS (STARTTLS first)")

// guardAuth returns the endpoint's login check: a client that is not on
// this machine must have started TLS first (with implicit TLS every
// connection has); then s.auth decides.
func (s *endpointService) guardAuth(t *tlsTracker) func(net.Addr, string, string) error {
	loopback := s.loopback
	if loopback == nil {
		loopback = isLoopbackAddr
	}
	return func(remote net.Addr, username, password string) error {
		if s.mode != "implicit" && !loopback(remote) && !t.secure(remote) {
			s.log.Warn("local login refused: sent in clear text from another machine", "endpoint", s.name, "remote", fmt.Sprint(remote))
			return errPlaintextLogin
		}
		return s.auth(remote, username, password)
	}
}

// isLoopbackAddr reports whether a client's address is on this machine.
func isLoopbackAddr(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	if a == nil {
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// tlsTracker knows which connections of a listener started TLS: the
// tls.Config it hands out marks a connection at its ClientHello (from
// then on the connection speaks TLS or fails), keyed by the client's
// address, which the endpoint passes to Auth.
type tlsTracker struct {
	mu    sync.Mutex
	conns map[string]bool // client address -> TLS started
}

// config returns base marking each connection that starts TLS.
func (t *tlsTracker) config(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hello.Conn != nil {
			t.mu.Lock()
			if _, ok := t.conns[hello.Conn.RemoteAddr().String()]; ok {
				t.conns[hello.Conn.RemoteAddr().String()] = true
			}
			t.mu.Unlock()
		}
		return nil, nil // base itself
	}
	return c
}

// secure reports whether the client at remote started TLS.
func (t *tlsTracker) secure(remote net.Addr) bool {
	if remote == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conns[remote.String()]
}

// trackedListener registers each connection it accepts with its tracker
// until the connection is closed.
type trackedListener struct {
	net.Listener
	t *tlsTracker
}

func (l trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	key := c.RemoteAddr().String()
	l.t.mu.Lock()
	l.t.conns[key] = false
	l.t.mu.Unlock()
	return &trackedConn{Conn: c, t: l.t, key: key}, nil
}

type trackedConn struct {
	net.Conn
	t    *tlsTracker
	key  string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c.key)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// checkListen refuses what [serve] refuses (configs checks the file; this
// is the last word, whatever built the service): an address that is not
// loopback without allow_remote, or without TLS.
func checkListen(name, addr, mode string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s endpoint: %q is not host:port", name, addr)
	}
	if configs.IsLoopback(host) {
		return nil
	}
	switch {
	case !allowRemote:
		return fmt.Errorf("%s endpoint: %s is not a loopback address: refused without [serve] allow_remote = true", name, addr)
	case mode != "starttls" && mode != "implicit":
		return fmt.Errorf("%s endpoint: %s is not a loopback address: refused without TLS ([serve] tls = \"starttls\" or \"implicit\")", name, addr)
	}
	return nil
}

// listenReason is why a listen failed, without Go's "listen tcp ...:"
// prefix, with a hint for the usual case.
func listenReason(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	msg := err.Error()
	if errors.Is(err, syscall.EADDRINUSE) {
		msg += " (another program, or another postfach, uses the port: stop it or pick another port in [serve])"
	}
	return msg
}
