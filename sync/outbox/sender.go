package outbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/auth"
)

// Relay is where and how an account's mail leaves.
type Relay struct {
	Host      string
	Port      int
	TLS       string           // "implicit" | "starttls" | "none"
	TLSConfig *tls.Config      // verified; ServerName = Host
	Auth      auth.Credentials // from sync/auth; Username "" = no AUTH
}

// Options configure a Sender.
type Options struct {
	Store      *index.Store
	Account    string
	Relay      Relay
	SaveSent   bool             // copy to Sent after sending (default true in the config)
	SentFolder string           // local folder name; "" = the account's folder with special use \Sent, else "Sent"
	Expiry     time.Duration    // give up after; 0 = 5 days
	Warn       time.Duration    // warning notice after; 0 = 4 hours
	Logger     *slog.Logger     // nil = none; the sender adds the account to its records
	Now        func() time.Time // nil = time.Now (tests)

	// RetryMin and RetryMax bound the backoff between attempts: the
	// first retry after RetryMin, each next one after twice the last,
	// never more than RetryMax (0 = 1 minute and 1 hour).
	RetryMin, RetryMax time.Duration

	// IdleConn is how long Run keeps the relay connection open after a
	// pass, for the next one (0 = DefaultIdleConn; negative: closed at
	// once). A pass reusing it first checks it with NOOP.
	IdleConn time.Duration

	// ConnRetry is how often Run tries again while the relay cannot be
	// reached at all (no TCP connection: refused, timed out, no route),
	// whatever the backoff of the messages waiting: a relay that comes
	// back while the network stayed up sends no signal, and its mail
	// should not wait out an hour's backoff. 0 = DefaultConnRetryLocal
	// for a relay on a loopback or private address (a refused connection
	// there costs nothing: a local MTA, a bridge or tunnel restarting),
	// DefaultConnRetry otherwise (Postfix's queue_run_delay).
	ConnRetry time.Duration
}

// Defaults of Options.
const (
	DefaultExpiry   = 5 * 24 * time.Hour
	DefaultWarn     = 4 * time.Hour
	DefaultRetryMin = time.Minute
	DefaultRetryMax = time.Hour

	DefaultIdleConn = 5 * time.Second

	DefaultConnRetry      = 5 * time.Minute
	DefaultConnRetryLocal = 10 * time.Second
)

// Sender sends one account's queue.
type Sender struct {
	o     Options
	log   *slog.Logger
	nudge chan struct{}

	mu       sync.Mutex
	relayErr string // why the last dial found no relay; "" = it answered (or not tried)

	turn    chan struct{}         // held by the pass under way (one at a time)
	unsaved []index.OutboxOutcome // outcomes whose commit failed (see batch); under turn

	filingLeft atomic.Bool // the last pass left follow-ups to file (a sync run held the turn)

	// running: Run is running. Only then does a pass leave its
	// connection open (idle) for the next pass, for at most IdleConn:
	// a burst of messages queued a few milliseconds apart (a mail
	// client's `postfach send` per message, each nudging the agent)
	// then goes over one connection, not one TLS handshake and AUTH
	// each. Run closes it when it expires and when Run ends.
	running atomic.Bool
	idle    *relayConn // under turn
	idleAt  time.Time  // when idle was left; under turn
}

// FlushReport counts what Flush did with the messages it tried.
type FlushReport struct{ Sent, Deferred, Failed int }

// NewSender checks o and returns the account's sender.
func NewSender(o Options) (*Sender, error) {
	if o.Store == nil || o.Account == "" {
		return nil, errors.New("outbox: a sender needs a store and an account")
	}
	if o.Relay.Host == "" || o.Relay.Port <= 0 || o.Relay.Port > 65535 {
		return nil, fmt.Errorf("outbox: account %q: relay %q port %d is not usable", o.Account, o.Relay.Host, o.Relay.Port)
	}
	switch o.Relay.TLS {
	case "implicit", "starttls", "none":
	default:
		return nil, fmt.Errorf("outbox: account %q: tls = %q (want implicit, starttls or none)", o.Account, o.Relay.TLS)
	}
	if o.Expiry <= 0 {
		o.Expiry = DefaultExpiry
	}
	if o.Warn <= 0 {
		o.Warn = DefaultWarn
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.ConnRetry <= 0 {
		o.ConnRetry = DefaultConnRetry
		if localHost(o.Relay.Host) {
			o.ConnRetry = DefaultConnRetryLocal
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleConn == 0 {
		o.IdleConn = DefaultIdleConn
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{o: o, log: log.With("account", o.Account), nudge: make(chan struct{}, 1),
		turn: make(chan struct{}, 1)}, nil
}

// Nudge asks Run to look at the queue now (non-blocking): the messages
// due, and those whose last attempt found no relay (a new message, the
// network back: the relay may answer now).
func (s *Sender) Nudge() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Run sends what is due, then waits for the next due time or a Nudge,
// until ctx ends. Errors of one message never stop the others; an error
// of the store is logged and the pass tried again after RetryMin. It
// first removes what crashes left in the outbox directory
// (index.Store.CleanOutbox).
func (s *Sender) Run(ctx context.Context) error {
	if n, err := s.o.Store.CleanOutbox(ctx); err != nil {
		s.log.Warn("outbox: cleaning up: " + err.Error())
	} else if n > 0 {
		s.log.Info("outbox: removed files a crash left", "files", n)
	}
	s.running.Store(true)
	defer func() {
		s.running.Store(false)
		s.closeIdle(true)
	}()
	nudged := true // at the start, as after a nudge: the network may be back
	// filer: a fileAfterRun under way (closed when it ends); not waited
	// for at the end (it may wait for a sync run; it stops at ctx).
	var filer chan struct{}
	for {
		wait := s.o.RetryMin
		if _, err := s.pass(ctx, false, nudged); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("outbox: " + err.Error())
		} else if next, err := s.nextDue(ctx); err != nil {
			s.log.Error("outbox: " + err.Error())
		} else if next.IsZero() {
			wait = -1
		} else {
			wait = max(next.Sub(s.o.Now()), time.Second)
		}
		// No relay answered: look again soon (a pass that finds none
		// changes no message's schedule, see finish).
		down := s.relayDown()
		if down && (wait < 0 || wait > s.o.ConnRetry) {
			wait = s.o.ConnRetry
		}
		if s.filingLeft.Load() {
			if filer == nil {
				f := make(chan struct{})
				filer = f
				go func() { defer close(f); s.fileAfterRun(ctx) }()
			}
			if wait < 0 || wait > followupRetry {
				wait = followupRetry
			}
		}
		nudged, filer = s.wait(ctx, wait, down, filer)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// wait waits for the next pass of Run: for ctx to end, a nudge, wait (if
// not negative) to pass, or filer (if not nil) to close. It closes the
// idle connection when it expires meanwhile. It returns whether the next
// pass is nudged (down: the timer counts as a nudge), and filer (nil once
// closed).
func (s *Sender) wait(ctx context.Context, wait time.Duration, down bool, filer chan struct{}) (bool, chan struct{}) {
	var timer <-chan time.Time // (timers need no Stop to be collected)
	if wait >= 0 {
		timer = time.After(wait)
	}
	for {
		var expire <-chan time.Time
		if d, ok := s.idleLeft(); ok {
			expire = time.After(d)
		}
		select {
		case <-ctx.Done():
			return false, filer
		case <-s.nudge:
			return true, filer
		case <-timer:
			return down, filer // the messages that found no relay go if it answers now
		case <-filer:
			return false, nil
		case <-expire:
			s.closeIdle(false)
		}
	}
}

// tryTurn takes the turn if no pass holds it.
func (s *Sender) tryTurn() bool {
	select {
	case s.turn <- struct{}{}:
		return true
	default:
		return false
	}
}

// idleLeft says how long the idle connection has left, if there is one
// (and no pass has it).
func (s *Sender) idleLeft() (time.Duration, bool) {
	if !s.tryTurn() {
		return 0, false
	}
	defer func() { <-s.turn }()
	if s.idle == nil {
		return 0, false
	}
	return max(s.o.IdleConn-time.Since(s.idleAt), 0), true
}

// closeIdle closes the idle connection (QUIT) once it has expired, or
// now when all is set. A pass under way keeps it: it is that pass's.
func (s *Sender) closeIdle(all bool) {
	if all {
		s.turn <- struct{}{}
	} else if !s.tryTurn() {
		return
	}
	c := s.idle
	if c != nil && (all || time.Since(s.idleAt) >= s.o.IdleConn) {
		s.idle = nil
	} else {
		c = nil
	}
	<-s.turn
	if c != nil {
		c.raw.capAt(time.Now().Add(time.Second))
		_ = c.Quit()
		c.Close()
	}
}

// relayDown says whether the last dial found no relay.
func (s *Sender) relayDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relayErr != ""
}

// dialed records how the last dial went (err nil: connected), and logs
// the relay going down (once while it stays so) and coming back.
func (s *Sender) dialed(err error, messages int) {
	var oe *net.OpError
	down := ""
	if errors.As(err, &oe) && oe.Op == "dial" {
		down = err.Error()
	}
	s.mu.Lock()
	was := s.relayErr
	s.relayErr = down
	s.mu.Unlock()
	switch {
	case err != nil && (down == "" || was == ""):
		s.log.Warn("outbox: relay unreachable, messages deferred", "error", err.Error(), "messages", messages)
	case err != nil:
		s.log.Debug("outbox: relay still unreachable", "error", err.Error(), "messages", messages)
	case was != "":
		s.log.Info("outbox: relay reachable again", "relay", s.addr())
	}
}

// localHost says whether host is a loopback or private address (or
// "localhost"): a relay next to this machine or on its LAN.
func localHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast())
}

func (s *Sender) nextDue(ctx context.Context) (time.Time, error) {
	var next time.Time
	err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		next, err = tx.OutboxNext(s.o.Account)
		return err
	})
	return next, err
}

// Flush sends every queued message of the account now, due or not, and
// returns when each is sent, deferred or failed. Safe beside Run (the
// passes take turns).
func (s *Sender) Flush(ctx context.Context) (FlushReport, error) {
	rep, err := s.pass(ctx, true, true)
	s.closeIdle(true) // Run's wait would not see it expire
	if s.relayDown() {
		s.Nudge() // Run, maybe waiting for no message, looks again every ConnRetry
	}
	return rep, err
}

// backoff is the wait after the attempts-th attempt (1 = the first).
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.o.RetryMin
	for i := 1; i < attempts && d < s.o.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.o.RetryMax)
}

// pass is one turn at the queue (see the package doc): the messages due
// (all: every queued one; nudged: also those whose last attempt found no
// relay, as once it connects).
func (s *Sender) pass(ctx context.Context, all, nudged bool) (rep FlushReport, err error) {
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	defer func() { <-s.turn }()
	st := s.o.Store
	release, err := st.LockOutbox(ctx, s.o.Account)
	if err != nil {
		return rep, err
	}
	defer release()
	b := &batch{pending: s.unsaved}
	defer func() { s.unsaved = b.pending }()
	// The replies an earlier pass could not record go first: before
	// OutboxRecover would take their messages for cut off, before any
	// claim.
	if err := s.commitRetry(ctx, b); err != nil {
		return b.rep, fmt.Errorf("outbox: recording the relay's replies: %w", err)
	}
	var n int
	if err := st.Write(ctx, func(tx *index.Tx) error {
		n, err = tx.OutboxRecover(s.o.Account)
		return err
	}); err != nil {
		return b.rep, err
	}
	if n > 0 {
		s.log.Warn("outbox: sends cut off by a crash are resent: their recipients may get them twice", "messages", n)
	}
	// A copy or notice that cannot be filed does not hold the mail back:
	// it stays recorded, tried again after the sending and next pass.
	if err := s.followups(ctx); err != nil {
		s.log.Warn("outbox: filing copies and notices (tried again later): " + err.Error())
	}
	// A nudge (the network may be back) tries the messages whose last
	// attempt found no relay too, but reads them only once a relay
	// answers (sendAll): while it stays down, a nudge costs a dial, not
	// a rewrite of every waiting message.
	var due []*index.OutboxMessage
	waiting := false
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		now := s.o.Now()
		if due, err = tx.OutboxDue(s.o.Account, now, all, false); err != nil || !nudged || all {
			return err
		}
		waiting, err = tx.OutboxWaitingForRelay(s.o.Account, now)
		return err
	}); err != nil {
		return b.rep, err
	}
	if len(due) == 0 && !waiting {
		if nudged {
			s.mu.Lock()
			s.relayErr = "" // no message waits for the relay
			s.mu.Unlock()
		}
		return b.rep, s.followups(ctx)
	}
	if err := s.sendAll(ctx, due, b); err != nil {
		if errors.Is(err, errCrash) {
			b.pending = nil // as a crash would: nothing more is committed
			return b.rep, err
		}
		if cerr := s.commitRetry(ctx, b); cerr != nil {
			// One line (logs, OutboxReport.Error), both kept for errors.Is.
			return b.rep, fmt.Errorf("%w; %w", err, cerr)
		}
		return b.rep, err
	}
	if err := s.commitRetry(ctx, b); err != nil {
		return b.rep, err
	}
	return b.rep, s.followups(ctx)
}
