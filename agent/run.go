package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapconn"
)

// RunOptions configure Run.
type RunOptions struct {
	// Reload hands Run a new version of the config (the CLI loads the
	// file again on SIGHUP): added accounts start, removed ones stop,
	// changed ones restart, the others go on undisturbed, and an account
	// parked by a permanent error is tried again. A config that moves the
	// store, or whose accounts Open would refuse (checkAccounts), is
	// refused (logged); the agent goes on with the config it has.
	Reload <-chan *configs.Config

	// Upstream, when set, runs beside each account's service from each
	// full sync that reached the server until the service stops or fails
	// (IMAP IDLE: it nudges the folders the server says changed). Its
	// error ends the service's Run: classified and retried as a sync
	// failure is.
	Upstream Watcher
	// Local, when set, runs for each account's whole service, online or
	// not (the fsnotify watcher of the account's Maildir). An error is
	// logged and it is started again a minute later.
	Local Watcher

	// Endpoints are the local endpoints (IMAP, POP3) Run serves where
	// [serve] sets their address (serve.go); the CLI plugs in the servers.
	Endpoints Endpoints

	// StopTimeout bounds the wait for the services once ctx ends;
	// default 3 s (SIGTERM must stop the agent within 5).
	StopTimeout time.Duration
}

// Watcher watches one account for changes and calls t.Nudge for each,
// until ctx ends.
type Watcher func(ctx context.Context, t WatchTarget) error

// WatchTarget is what a Watcher gets to watch one account.
type WatchTarget struct {
	Account *configs.Account // not to be modified
	Root    string           // the store's Maildir root
	Index   *index.Store
	// Endpoint is how to reach an IMAP account's server (its password
	// resolved); for Upstream only.
	Endpoint imapconn.Endpoint
	Nudge    Nudge
	Log      *slog.Logger
}

// ErrStopTimeout is returned by Run when some work had not stopped within
// RunOptions.StopTimeout of the end of its context: it was abandoned (the
// engines keep the store consistent when a process stops at any instant),
// and the index must not be closed under it, nor is the store's lock
// released: the caller should exit at once.
var ErrStopTimeout = errors.New("postfach run: in-flight work abandoned at exit")

// Run is `postfach run`: it holds the store's lock, serves the control
// socket (<store>/.postfach/agent.sock) and supervises one service per
// account until ctx ends. It returns nil after a clean stop.
func (a *Agent) Run(ctx context.Context, opts RunOptions) error {
	root := a.cfg.Store.Path
	unlock, err := lockStore(root, "postfach run")
	if err != nil {
		return err
	}
	abandoned := false
	defer func() {
		if !abandoned { // else the lock goes with the process
			unlock()
		}
	}()
	ln, err := listenControl(root)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &daemon{
		a: a, opts: opts, log: a.log, ctx: runCtx,
		indexKick: make(chan struct{}, 1), conns: map[net.Conn]bool{}, reloaded: make(chan struct{}),
	}
	d.endpoints = &endpoints{d: d}
	d.outbox = &outboxes{d: d}
	var bg sync.WaitGroup
	bg.Add(5)
	go func() { defer bg.Done(); newBackupScheduler(a.store, root, d.backupConfig, a.log).Run(runCtx) }() // schedule.go
	go func() { defer bg.Done(); d.serve(ln) }()
	go func() { defer bg.Done(); d.indexer(runCtx) }()
	go func() { defer bg.Done(); d.watchFeed(runCtx) }()        // local changes nudge their account (feed.go)
	go func() { defer bg.Done(); d.outbox.watchFeed(runCtx) }() // new outbox rows nudge their sender (outbox.go)
	kick(d.indexKick)                                           // what earlier runs left unindexed
	d.reload(a.cfg)
	a.log.Info("postfach run started", "pid", os.Getpid(), "store", root, "accounts", len(a.cfg.Accounts))

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case cfg := <-opts.Reload:
			d.reload(cfg)
		}
	}

	a.log.Info("stopping")
	ln.Close()
	cancel()
	d.closeConns()
	stopped := make(chan struct{})
	go func() {
		for _, s := range d.snapshot() {
			<-s.done
		}
		d.endpoints.wait()
		d.outbox.wait()
		bg.Wait()
		close(stopped)
	}()
	timeout := opts.StopTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	select {
	case <-stopped:
		a.log.Info("stopped")
		return nil
	case <-time.After(timeout):
		a.log.Warn("stopped with work in flight abandoned; the next start goes on from there")
		abandoned = true
		return ErrStopTimeout
	}
}

// daemon is the state of a Run.
type daemon struct {
	a    *Agent
	opts RunOptions
	log  *slog.Logger
	ctx  context.Context // the run's; services are started under it

	mu       sync.Mutex
	cfg      *configs.Config
	services map[string]*service
	reloaded chan struct{} // closed when a reload is done (then replaced)

	endpoints *endpoints // the local endpoints (serve.go)
	outbox    *outboxes  // the senders of outgoing mail (outbox.go)

	// The full-text indexer runs when no sync does (indexer).
	busyMu      sync.Mutex
	syncing     int
	indexCancel context.CancelFunc
	indexKick   chan struct{}

	connMu sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// reload starts, stops and restarts the services for cfg (see
// RunOptions.Reload). It runs on Run's goroutine only.
func (d *daemon) reload(cfg *configs.Config) {
	first := d.cfg == nil
	if !first && filepath.Clean(cfg.Store.Path) != filepath.Clean(d.cfg.Store.Path) {
		d.log.Error("config not reloaded: store.path changed; the running agent keeps its store (restart postfach run for the new one)",
			"store", d.cfg.Store.Path, "new", cfg.Store.Path)
		return
	}
	if !first {
		// As Open checks the accounts of the first: an added account
		// whose folder holds another program's Maildir is refused.
		if err := checkAccounts(cfg, d.a.store); err != nil {
			d.log.Error("config not reloaded: the agent goes on with the one it has", "err", err)
			return
		}
	}
	old := d.snapshotMap()
	next := map[string]*service{}
	for i := range cfg.Accounts {
		acct := &cfg.Accounts[i]
		if s, ok := old[acct.Name]; ok {
			if sameAccount(s.acct, acct) {
				next[acct.Name] = s
				s.retry() // a parked account is tried again; a live one syncs now
				continue
			}
			d.log.Info("account changed: restarting it", "account", acct.Name)
			s.stop() // before the new one touches the same folders
		} else if !first {
			d.log.Info("account added", "account", acct.Name)
		}
		s := newService(d, acct)
		next[acct.Name] = s
		s.start(d.ctx)
	}
	for name, s := range old {
		if _, ok := next[name]; !ok {
			d.log.Info("account removed", "account", name)
			s.stop()
		}
	}
	d.mu.Lock()
	d.cfg, d.services = cfg, next
	close(d.reloaded)
	d.reloaded = make(chan struct{})
	d.mu.Unlock()
	d.outbox.reload(cfg)
	d.endpoints.reload(cfg)
}

// successor waits until the service for name is no longer s (a reload
// replaced it) and returns the new one; nil when the account is gone or
// ctx ended.
func (d *daemon) successor(ctx context.Context, name string, s *service) *service {
	for {
		d.mu.Lock()
		cur, reloaded := d.services[name], d.reloaded
		d.mu.Unlock()
		if cur != s {
			return cur
		}
		select {
		case <-reloaded:
		case <-ctx.Done():
			return nil
		}
	}
}

// sameAccount reports whether two versions of an account are the same
// (where they stand in the file aside).
func sameAccount(a, b *configs.Account) bool {
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	for _, s := range []**configs.SMTP{&x.SMTP, &y.SMTP} {
		if *s != nil {
			c := **s
			c.Line = 0
			*s = &c
		}
	}
	return reflect.DeepEqual(x, y)
}

// snapshot returns the services in the config's order.
func (d *daemon) snapshot() []*service {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*service
	if d.cfg == nil {
		return nil
	}
	for _, acct := range d.cfg.Accounts {
		if s := d.services[acct.Name]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (d *daemon) snapshotMap() map[string]*service {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*service, len(d.services))
	for k, v := range d.services {
		out[k] = v
	}
	return out
}

// watchTarget builds the Upstream watcher's target for s.
func (d *daemon) watchTarget(ctx context.Context, s *service) (WatchTarget, error) {
	t := WatchTarget{Account: s.acct, Root: d.a.cfg.Store.Path, Index: d.a.store, Nudge: s.Nudge, Log: s.log}
	if s.acct.Kind == "imap" {
		opts, err := d.a.imapOptions(ctx, s.acct)
		if err != nil {
			return t, err
		}
		t.Endpoint = opts.Endpoint
	}
	return t, nil
}

// busy marks a sync starting (true) or ending: the full-text indexer
// gives way to syncs and runs when none does.
func (d *daemon) busy(start bool) {
	d.busyMu.Lock()
	defer d.busyMu.Unlock()
	if start {
		d.syncing++
		if d.indexCancel != nil {
			d.indexCancel()
		}
		return
	}
	d.syncing--
	if d.syncing == 0 {
		kick(d.indexKick)
	}
}

// indexer indexes the text of new messages for search whenever no sync
// runs, until ctx ends; a sync that starts cancels it (what it committed
// stays; the next idle moment goes on).
func (d *daemon) indexer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.indexKick:
		}
		d.busyMu.Lock()
		if d.syncing > 0 {
			d.busyMu.Unlock()
			continue // the last sync to end kicks again
		}
		ictx, cancel := context.WithCancel(ctx)
		d.indexCancel = cancel
		d.busyMu.Unlock()
		start := time.Now()
		n, err := d.a.store.IndexPending(ictx, d.a.cfg.Store.Path, nil)
		d.busyMu.Lock()
		d.indexCancel = nil
		d.busyMu.Unlock()
		cancel()
		switch {
		case err != nil && ictx.Err() == nil:
			d.log.Warn("indexing the text of new messages for search", "err", err)
		case n > 0:
			d.log.Debug("indexed new messages for search", "messages", n, "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// status is the agent's live state.
func (d *daemon) status() *AgentStatus {
	st := &AgentStatus{PID: os.Getpid(), Accounts: []ServiceStatus{}, Endpoints: d.endpoints.status()}
	for _, s := range d.snapshot() {
		st.Accounts = append(st.Accounts, s.status())
	}
	return st
}

// syncNow syncs the named accounts (all when none) through their
// services, as `postfach sync` asks through the control socket.
func (d *daemon) syncNow(ctx context.Context, names []string, force, dryRun bool) ([]AccountReport, error) {
	d.mu.Lock()
	cfg, services := d.cfg, d.services
	d.mu.Unlock()
	var picked []*service
	if len(names) == 0 {
		picked = d.snapshot()
	}
	for _, n := range names {
		s := services[n]
		if s == nil {
			return nil, fmt.Errorf("no account %q in %s (the config postfach run uses)", n, cfg.File)
		}
		if !containsService(picked, s) {
			picked = append(picked, s)
		}
	}
	reports := make([]AccountReport, len(picked))
	var wg sync.WaitGroup
	for i, s := range picked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				reports[i] = s.request(ctx, force, dryRun)
				if !errors.Is(reports[i].Err, errServiceStopped) {
					return
				}
				// A reload restarted the account: its new service syncs.
				if s = d.successor(ctx, s.acct.Name, s); s == nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return reports, reportErrors(reports)
}

func containsService(list []*service, s *service) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// backupConfig is the current config's [backup] (the backup scheduler's).
func (d *daemon) backupConfig() configs.Backup {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg == nil {
		return d.a.cfg.Backup
	}
	return d.cfg.Backup
}
