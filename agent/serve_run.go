package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/postfach/postfach/agent/localauth"
	"github.com/postfach/postfach/configs"
)

// The local endpoints within `postfach run`: which to run for a config,
// with what login and certificate, restarted by reloads, and their state
// for the status. One endpointService (serve.go) each.

// endpoints runs the local endpoints of a Run: all of them from one
// config, started and stopped together.
type endpoints struct {
	d *daemon

	mu       sync.Mutex
	serve    configs.Serve // what the running ones were made from
	accounts []string      // and accountKeys
	cancel   context.CancelFunc
	wg       *sync.WaitGroup
	checker  *localauth.Checker
	states   []*EndpointStatus
}

// reload starts the endpoints cfg asks for; they are restarted when
// [serve], the account names or their passwords' sources changed, or one
// of them failed (a SIGHUP tries again), and stopped when none is asked
// for any more.
func (e *endpoints) reload(cfg *configs.Config) {
	names := make([]string, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		names[i] = a.Name
	}
	keys := accountKeys(cfg)
	e.mu.Lock()
	running := e.cancel != nil
	same := running && e.serve == cfg.Serve && slices.Equal(e.accounts, keys) && !e.anyFailed()
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
	e.serve, e.accounts, e.cancel, e.wg, e.checker = cfg.Serve, keys, cancel, wg, nil
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

// accountKeys is what the endpoints use of the accounts: their names, in
// order (the folders served), their passwords' sources (the upstream
// passwords the checker refuses), and which send mail from which
// addresses (the submission endpoint).
func accountKeys(cfg *configs.Config) []string {
	var keys []string
	for _, a := range cfg.Accounts {
		k := []string{a.Name, a.Password, a.PasswordEnv, a.PasswordCmd, a.TokenCmd}
		if a.SMTP != nil {
			k = append(k, a.SMTP.Password, a.SMTP.PasswordEnv, a.SMTP.PasswordCmd, a.SMTP.TokenCmd)
		}
		k = append(k, senderKey(&a)...) // what the submission endpoint uses
		keys = append(keys, strings.Join(k, "\x00"))
	}
	return keys
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
		{"submission", cfg.Serve.Submission, e.d.opts.Endpoints.Submission},
	} {
		switch {
		case sp.addr == "":
		case sp.name == "submission" && len(senderAccounts(cfg)) == 0:
			e.d.log.Error("local endpoint not started: no account has [accounts.smtp] to send its mail", "endpoint", sp.name, "addr", sp.addr)
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
					Senders: senderAccounts(cfg), Nudge: e.d.outbox.nudgeOne,
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
		if a.TokenCmd == "" { // with token_cmd, no password to refuse
			if pw, err := a.Secret(ctx); err == nil {
				out = append(out, pw)
			} else {
				log.Debug("local endpoints: upstream password not resolved, so not refused by name", "account", a.Name, "err", err)
			}
		}
		if a.SMTP != nil && a.SMTP.TokenCmd == "" {
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
