package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"sync"
	"syscall"

	"github.com/postfach/postfach/agent/localauth"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

// The local endpoints (`postfach run` with [serve] imap or pop3 set): one
// endpointService per endpoint listens on its address and runs an
// Endpoint (the IMAP or POP3 server) on it. The servers themselves are
// plugged in by the CLI through RunOptions.Endpoints; this file does what
// they share: where to listen and whether that is allowed, TLS (implicit:
// the listener is wrapped; STARTTLS: the server gets the tls.Config), the
// local login (localauth), and starting and stopping them with the agent.

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
}

// EndpointFunc makes an endpoint.
type EndpointFunc func(EndpointOptions) (Endpoint, error)

// Endpoints are the local endpoints `postfach run` can serve; a nil one
// is not built in (an address set for it is logged and ignored).
type Endpoints struct {
	IMAP, POP3 EndpointFunc
}

// Endpoint states, as EndpointStatus.State says them.
const (
	EndpointStarting  = "starting"
	EndpointListening = "listening"
	EndpointFailed    = "failed" // see Error; a reload (SIGHUP) tries again
)

// EndpointStatus is a local endpoint's live state, in AgentStatus.
type EndpointStatus struct {
	Name  string `json:"name"` // "imap" or "pop3"
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
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("local endpoint stopped", "endpoint", s.name, "err", err)
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

// endpoints runs the local endpoints of a Run: all of them from one
// config, started and stopped together.
type endpoints struct {
	d *daemon

	mu       sync.Mutex
	serve    configs.Serve // what the running ones were made from
	accounts []string
	cancel   context.CancelFunc
	wg       *sync.WaitGroup
	checker  *localauth.Checker
	states   []*EndpointStatus
}

// reload starts the endpoints cfg asks for; they are restarted when
// [serve] or the account names changed, or one of them failed (a SIGHUP
// tries again), and stopped when none is asked for any more.
func (e *endpoints) reload(cfg *configs.Config) {
	names := make([]string, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		names[i] = a.Name
	}
	e.mu.Lock()
	running := e.cancel != nil
	same := running && e.serve == cfg.Serve && slices.Equal(e.accounts, names) && !e.anyFailed()
	e.mu.Unlock()
	if same {
		return
	}
	if running {
		e.d.log.Info("restarting the local endpoints")
		e.stop()
	}
	list := e.list(cfg)
	if len(list) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(e.d.ctx)
	wg := &sync.WaitGroup{}
	e.mu.Lock()
	e.serve, e.accounts, e.cancel, e.wg, e.checker = cfg.Serve, names, cancel, wg, nil
	e.states = nil
	for _, l := range list {
		e.states = append(e.states, &EndpointStatus{Name: l.name, Addr: l.addr, TLS: cfg.Serve.TLS, State: EndpointStarting})
	}
	e.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.run(ctx, cfg, names, list, wg)
	}()
}

// endpointSpec is an endpoint the config asks for.
type endpointSpec struct {
	name, addr string
	make       EndpointFunc
}

// list returns the endpoints cfg asks for that are built in; an address
// set for one that is not is logged.
func (e *endpoints) list(cfg *configs.Config) []endpointSpec {
	var out []endpointSpec
	for _, sp := range []endpointSpec{
		{"imap", cfg.Serve.IMAP, e.d.opts.Endpoints.IMAP},
		{"pop3", cfg.Serve.POP3, e.d.opts.Endpoints.POP3},
	} {
		switch {
		case sp.addr == "":
		case sp.make == nil:
			e.d.log.Error("local endpoint not started: this postfach has none built in", "endpoint", sp.name, "addr", sp.addr)
		default:
			out = append(out, sp)
		}
	}
	return out
}

// run sets up the local login and the certificate, then runs one
// endpointService per endpoint until ctx ends. A failure is logged in one
// line and marks the endpoint failed; the rest of the agent goes on.
func (e *endpoints) run(ctx context.Context, cfg *configs.Config, names []string, list []endpointSpec, wg *sync.WaitGroup) {
	log := e.d.log
	checker, tlsCfg, err := e.setup(ctx, cfg)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("local endpoints not started", "err", err)
			e.fail(-1, err)
		}
		return
	}
	e.mu.Lock()
	e.checker = checker
	e.mu.Unlock()
	context.AfterFunc(ctx, checker.Close) // failed logins waiting their delay answer at once
	for i, sp := range list {
		svc := &endpointService{
			name: sp.name, addr: sp.addr, mode: cfg.Serve.TLS, allowRemote: cfg.Serve.AllowRemote, tls: tlsCfg, log: log,
			auth: checker.Check,
			newEndpoint: func(starttls *tls.Config, auth func(net.Addr, string, string) error) (Endpoint, error) {
				ep, err := sp.make(EndpointOptions{
					Store: e.d.a.store, Accounts: names, Folder: pop3Folder(cfg),
					Auth: auth, TLS: starttls, Logger: log.With("endpoint", sp.name),
				})
				if err == nil && isNil(ep) {
					err = errors.New("no endpoint made")
				}
				return ep, err
			},
			listening: func() { e.setState(i, EndpointListening, nil) },
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("local endpoint not serving (postfach run goes on without it; SIGHUP tries again)", "endpoint", sp.name, "err", err)
				e.fail(i, err)
			}
		}()
	}
}

// isNil reports whether ep is nil or a nil pointer in an interface (an
// EndpointFunc that returned a nil *imapd.Server as its Endpoint).
func isNil(ep Endpoint) bool {
	if ep == nil {
		return true
	}
	v := reflect.ValueOf(ep)
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice:
		return v.IsNil()
	}
	return false
}

// setup makes the endpoints' login checker and TLS configuration.
func (e *endpoints) setup(ctx context.Context, cfg *configs.Config) (*localauth.Checker, *tls.Config, error) {
	root := cfg.Store.Path
	pw, err := cfg.Serve.Secret(ctx)
	if err != nil {
		return nil, nil, err
	}
	creds, err := localauth.LoadCredentials(root, cfg.Serve.Username, pw)
	if err != nil {
		return nil, nil, err
	}
	checker, err := localauth.NewChecker(localauth.CheckerOptions{
		Username: creds.Username, Password: creds.Password,
		Upstream: upstreamPasswords(ctx, cfg, e.d.log), Logger: e.d.log,
	})
	if err != nil {
		return nil, nil, err
	}
	if cfg.Serve.TLS == "none" {
		return checker, nil, nil
	}
	cert, err := localauth.LoadCertificate(root, cfg.Serve.CertFile, cfg.Serve.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	return checker, cert.TLSConfig(), nil
}

// upstreamPasswords resolves the accounts' passwords (and their SMTP
// servers'), for the checker to refuse; one that cannot be resolved now
// is left out (its account's sync reports why).
func upstreamPasswords(ctx context.Context, cfg *configs.Config, log *slog.Logger) []string {
	var out []string
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if pw, err := a.Secret(ctx); err == nil {
			out = append(out, pw)
		} else {
			log.Debug("local endpoints: upstream password not resolved, so not refused by name", "account", a.Name, "err", err)
		}
		if a.SMTP != nil {
			if pw, err := a.SMTP.Secret(ctx); err == nil {
				out = append(out, pw)
			}
		}
	}
	return out
}

// pop3Folder is EndpointOptions.Folder for cfg.
func pop3Folder(cfg *configs.Config) func(string) string {
	folder := map[string]string{}
	for _, a := range cfg.Accounts {
		switch {
		case cfg.Serve.POP3Folder != "":
			folder[a.Name] = cfg.Serve.POP3Folder
		case a.Kind == "pop3":
			folder[a.Name] = a.Folder
		}
	}
	return func(account string) string {
		if f, ok := folder[account]; ok {
			return f
		}
		return "INBOX"
	}
}

// stop ends the running endpoints and waits for them.
func (e *endpoints) stop() {
	e.mu.Lock()
	cancel, wg := e.cancel, e.wg
	e.cancel, e.wg, e.states, e.checker = nil, nil, nil, nil
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		wg.Wait()
	}
}

// wait waits for the endpoints once the run's context has ended.
func (e *endpoints) wait() {
	e.mu.Lock()
	wg := e.wg
	e.mu.Unlock()
	if wg != nil {
		wg.Wait()
	}
}

func (e *endpoints) setState(i int, state string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if i >= len(e.states) {
		return
	}
	e.states[i].State, e.states[i].Error = state, ""
	if err != nil {
		e.states[i].Error = err.Error()
	}
}

// fail marks endpoint i failed (-1: all of them).
func (e *endpoints) fail(i int, err error) {
	e.mu.Lock()
	n := len(e.states)
	e.mu.Unlock()
	for j := range n {
		if i < 0 || i == j {
			e.setState(j, EndpointFailed, err)
		}
	}
}

// anyFailed reports whether an endpoint failed (e.mu held).
func (e *endpoints) anyFailed() bool {
	for _, s := range e.states {
		if s.State == EndpointFailed {
			return true
		}
	}
	return false
}

// status returns the endpoints' states.
func (e *endpoints) status() []EndpointStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	if e.checker != nil {
		n = e.checker.Failures()
	}
	out := make([]EndpointStatus, len(e.states))
	for i, s := range e.states {
		out[i] = *s
		out[i].FailedLogins = n
	}
	return out
}
