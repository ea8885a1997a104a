package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/nethint"
	"github.com/postfach/postfach/sync/pop3"
)

// The states of an account's service, as `postfach status --json` shows
// them.
const (
	StateIdle    = "idle"    // synced; waiting for a nudge or the next poll
	StateSyncing = "syncing" // a sync is running
	StateOffline = "offline" // the last attempt failed for a passing reason; retried at NextRetry
	StateError   = "error"   // parked: a permanent failure (wrong password, untrusted certificate) waits for a config change
)

// Backoff bounds for an account whose server cannot be reached.
var (
	backoffMin = time.Second
	backoffMax = time.Minute
)

// backoff is a capped exponential delay with jitter.
type backoff struct{ next time.Duration }

// delay returns the wait before the next attempt (±20 % around 1 s, 2 s,
// 4 s, ... up to backoffMax) and doubles the next one.
func (b *backoff) delay() time.Duration {
	if b.next < backoffMin {
		b.next = backoffMin
	}
	d := b.next
	b.next = min(2*b.next, backoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (b *backoff) reset() { b.next = 0 }

// Nudge asks an account's service for a sync of one folder (a local folder
// name), or of the whole account when folder is "". It never blocks:
// nudges that come while a sync is running or waiting are merged into
// the next one. The watchers (IDLE upstream, fsnotify locally) call it.
type Nudge func(folder string)

// service supervises one account: Run, restarted with backoff after a
// temporary failure, parked after a permanent one. All its fields but the
// mutex-guarded ones are fixed for its life; a changed account gets a new
// service.
type service struct {
	d    *daemon
	acct *configs.Account
	log  *slog.Logger

	wake    chan struct{} // 1 slot: a nudge is pending
	reqWake chan struct{} // 1 slot: a request (or a retry) is pending
	cancel  context.CancelFunc
	done    chan struct{} // closed when the service has stopped

	lastPartial string // the folder errors last logged (service goroutine only)

	mu      sync.Mutex
	pending map[string]bool // nudged folders; "" is the whole account
	// inSync: a sync runs; the change feed's news waits in dirty (its
	// folders), dirtyCreated (folders created) and dirtyFolders (folders
	// renamed or removed) until it ends (feed.go).
	inSync       bool
	dirty        map[index.FolderID]bool
	dirtyCreated map[index.FolderID]bool
	dirtyFolders bool
	reqs         []*syncRequest
	stopped      bool
	state        string
	nextRetry    time.Time
}

// syncRequest is a `postfach sync` through the control socket.
type syncRequest struct {
	force, dryRun bool
	reply         chan AccountReport // 1 slot
}

func newService(d *daemon, acct *configs.Account) *service {
	return &service{
		d: d, acct: acct, log: d.log.With("account", acct.Name),
		wake: make(chan struct{}, 1), reqWake: make(chan struct{}, 1),
		done: make(chan struct{}), state: StateSyncing,
	}
}

// start runs the service until ctx ends or stop is called.
func (s *service) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	go s.supervise(ctx)
}

// stop ends the service and waits until it has (its sync abandoned at the
// next safe point).
func (s *service) stop() {
	s.cancel()
	<-s.done
}

// Nudge is the account's Nudge.
func (s *service) Nudge(folder string) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]bool{}
	}
	s.pending[folder] = true
	s.mu.Unlock()
	kick(s.wake)
}

// retry wakes a parked or backing-off service for an attempt now.
func (s *service) retry() { kick(s.reqWake) }

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// request queues a sync asked for through the control socket and waits
// for its report.
func (s *service) request(ctx context.Context, force, dryRun bool) AccountReport {
	r := &syncRequest{force: force, dryRun: dryRun, reply: make(chan AccountReport, 1)}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return AccountReport{Name: s.acct.Name, Err: errServiceStopped}
	}
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	kick(s.reqWake)
	select {
	case rep := <-r.reply:
		return rep
	case <-ctx.Done():
		return AccountReport{Name: s.acct.Name, Err: ctx.Err()}
	}
}

var errServiceStopped = errors.New("the agent stopped this account's service (stopping, or the config changed) before it synced; try again")

// status returns the service's state for the control socket.
func (s *service) status() ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServiceStatus{Name: s.acct.Name, State: s.state}
	if s.state == StateOffline && !s.nextRetry.IsZero() {
		st.NextRetry = s.nextRetry.Format(time.RFC3339)
	}
	return st
}

func (s *service) setState(state string, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.nextRetry = state, next
}

// supervise runs Run until ctx ends: after a temporary failure again with
// backoff (or at once when a sync is asked for), after a permanent one
// only when asked (a config reload or `postfach sync` retries it). It
// logs one line per change of state, not one per attempt.
func (s *service) supervise(ctx context.Context) {
	defer close(s.done)
	defer s.failRequests()
	if w := s.d.opts.Local; w != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watchLocal(ctx, w)
		}()
	}
	var bo backoff
	offline := false
	online := func() {
		bo.reset()
		if offline {
			s.log.Info("back online")
			offline = false
			s.d.outbox.nudgeOne(s.acct.Name) // mail queued meanwhile may leave now
		}
	}
	for {
		err := s.Run(ctx, online)
		if ctx.Err() != nil {
			return
		}
		if nethint.Permanent(err) {
			s.setState(StateError, time.Time{})
			s.log.Error(parkedMessage(s.acct, err), "err", err)
			offline = true // its recovery is worth a line too
			select {
			case <-ctx.Done():
				return
			case <-s.reqWake: // Run's first round answers the request
				continue
			}
		}
		wait := bo.delay()
		next := time.Now().Add(wait)
		s.setState(StateOffline, next)
		if !offline {
			s.log.Warn("offline: retrying with backoff until the server answers", "err", err)
			offline = true
		} else {
			s.log.Debug("still offline", "err", err, "next_retry", next.Format(time.RFC3339))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.reqWake: // Run's first round answers the request
			t.Stop()
		}
	}
}

// watchLocal runs the Local watcher until ctx ends, again a minute after
// it fails.
func (s *service) watchLocal(ctx context.Context, w Watcher) {
	keepRunning(ctx, s.log, "watching the local folders failed; trying again in a minute", func(ctx context.Context) error {
		return w(ctx, WatchTarget{Account: s.acct, Root: s.d.a.cfg.Store.Path, Index: s.d.a.store, Nudge: s.Nudge, Log: s.log})
	})
}

// keepRunning runs fn until ctx ends: each time fn returns before that,
// it logs failed (with fn's error) and runs fn again a minute later.
func keepRunning(ctx context.Context, log *slog.Logger, failed string, fn func(context.Context) error) {
	for {
		err := fn(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Warn(failed, "err", err)
		t := time.NewTimer(time.Minute)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// failRequests answers the requests still queued when the service stops.
func (s *service) failRequests() {
	s.mu.Lock()
	reqs := s.reqs
	s.reqs, s.stopped = nil, true
	s.mu.Unlock()
	for _, r := range reqs {
		r.reply <- AccountReport{Name: s.acct.Name, Err: errServiceStopped}
	}
}

// Run is the account's service while it is reachable: a full sync, then
// a sync on every nudge, request and poll (PollInterval), with the
// daemon's upstream watcher (IMAP IDLE) running beside it. It returns
// the error that stopped it: the context's, or a failure to reach the
// server (or a watcher's error); online is called after each sync that
// reached the server.
func (s *service) Run(ctx context.Context, online func()) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if err := s.round(ctx, true); err != nil {
		return err
	}
	online()
	watchErr := make(chan error, 1)
	if w := s.d.opts.Upstream; w != nil {
		target, err := s.d.watchTarget(ctx, s)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchErr <- w(ctx, target)
		}()
	}
	poll := time.NewTimer(s.pollInterval())
	defer poll.Stop()
	for {
		full := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-watchErr:
			if ctx.Err() == nil && err != nil {
				return fmt.Errorf("watching the server: %w", err)
			}
			watchErr = nil // it ended without an error: polling goes on
			continue
		case <-poll.C:
			full = true
		case <-s.wake:
		case <-s.reqWake:
		}
		if err := s.round(ctx, full); err != nil {
			return err
		}
		online()
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(s.pollInterval())
	}
}

// pollInterval is the account's poll_interval (5 minutes when unset, as
// in a configs.Account not made by configs.Load).
func (s *service) pollInterval() time.Duration {
	if s.acct.PollInterval <= 0 {
		return 5 * time.Minute
	}
	return s.acct.PollInterval
}

// round is one sync: a real one when full, nudged or asked for, then the
// dry runs asked for. Every request queued when it starts gets its report.
// It returns the error that means the server could not be reached (the
// run failed as a whole, or a connection was lost in a folder); errors of
// single folders (a folder the server refuses) are logged and left for
// the next round.
func (s *service) round(ctx context.Context, full bool) error {
	s.mu.Lock()
	folders, reqs := s.pending, s.reqs
	s.pending, s.reqs = nil, nil
	s.mu.Unlock()
	if folders[""] {
		full = true
	}
	var real, dry []*syncRequest
	force := false
	for _, r := range reqs {
		if r.dryRun {
			dry = append(dry, r)
			continue
		}
		real = append(real, r)
		force = force || r.force
	}
	if full || len(folders) > 0 || len(real) > 0 || len(dry) == 0 {
		set := syncSettings{force: force, dialAttempts: 1, connections: syncConnections(s.acct)}
		if !full && len(real) == 0 && len(folders) > 0 {
			// Only what a watcher named (imapsync makes the run full
			// when it must); a request or a poll syncs everything.
			for f := range folders {
				set.only = append(set.only, f)
			}
			sort.Strings(set.only)
		}
		rep := s.sync(ctx, set)
		if ctx.Err() != nil {
			// Stopped (a reload, or the agent's end): the requests go
			// to the next service, if any.
			rep = AccountReport{Name: s.acct.Name, Err: errServiceStopped}
		}
		for _, r := range real {
			r.reply <- rep
		}
		if failure := s.outcome(rep); failure != nil {
			// The dry runs would fail alike.
			for _, r := range dry {
				r.reply <- rep
			}
			return failure
		}
	}
	for _, r := range dry {
		rep := s.sync(ctx, syncSettings{dryRun: true, force: r.force, dialAttempts: 1})
		if ctx.Err() != nil {
			rep = AccountReport{Name: s.acct.Name, Err: errServiceStopped}
		}
		r.reply <- rep
	}
	s.setState(StateIdle, time.Time{})
	return nil
}

// sync runs one sync of the account, marked busy for the indexer.
func (s *service) sync(ctx context.Context, set syncSettings) AccountReport {
	s.setState(StateSyncing, time.Time{})
	s.d.busy(true)
	defer s.d.busy(false)
	start := time.Now()
	s.beginSync()
	rep := s.d.a.syncAccount(ctx, s.acct, set)
	s.endSync(ctx, rep)
	if !set.dryRun && rep.Err == nil {
		if n := changes(rep); n > 0 {
			s.log.Info("synced", "changes", n, "took", time.Since(start).Round(time.Millisecond))
		} else {
			s.log.Debug("synced, nothing changed", "took", time.Since(start).Round(time.Millisecond))
		}
	}
	return rep
}

// outcome sorts a finished sync's error: it returns the error that means
// the server is out of reach or refuses the account (for supervise to
// classify); errors of single folders (a folder the server refuses) are
// logged here (once while they stay the same; the index records them for
// status) and tried again by the next round.
func (s *service) outcome(rep AccountReport) error {
	switch {
	case rep.Err == nil:
		s.lastPartial = ""
		return nil
	case failedWhole(rep) || connectionLost(rep.Err):
		return rep.Err
	}
	// Once per different error, not once per round.
	if msg := rep.Err.Error(); msg != s.lastPartial {
		s.log.Warn("sync finished with errors; each sync tries again", "err", rep.Err)
		s.lastPartial = msg
	}
	return nil
}

// connectionLost reports whether err says a connection to the server was
// lost or could not be made (as opposed to a server's refusal).
func connectionLost(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// changes counts what a sync changed, on either side.
func changes(rep AccountReport) int {
	n := 0
	if r := rep.Result; r != nil {
		t := r.Totals()
		n += t.New + t.FlagsChanged + t.Expunged + t.Uploaded + t.FlagsPushed + t.ExpungedRemote + r.Moved + len(r.FolderActions)
	}
	if p := rep.POP3; p != nil {
		n += p.New + p.Deleted
	}
	return n
}

// parkedMessage is the line that says an account stopped for a failure
// only a change can mend. A refused password from password_env gets its
// own: the agent reads the variable from its own environment, which a
// reload (SIGHUP) does not change.
func parkedMessage(acct *configs.Account, err error) string {
	if acct.PasswordEnv != "" && loginRefused(err) {
		return "account stopped: the server refused the password from $" + acct.PasswordEnv +
			", which postfach run reads from its own environment: restart it with the right one (or set password_cmd and reload with SIGHUP)"
	}
	return "account stopped until its config changes (postfach run reloads it on SIGHUP)"
}

// loginRefused reports whether err is a server's refusal of a login.
func loginRefused(err error) bool {
	var ic *imapconn.ConnError
	var pc *pop3.ConnError
	switch {
	case errors.As(err, &ic):
		return strings.HasPrefix(ic.Op, "login as ")
	case errors.As(err, &pc):
		return strings.HasPrefix(pc.Op, "login as ")
	}
	return false
}
