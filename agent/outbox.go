package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"strings"
	"sync"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/outbox"
)

// The outbox within `postfach run`: one outbox.Sender per account with
// [accounts.smtp], running for the agent's whole life beside the account's
// sync service (a sender does not wait for the sync, nor the sync for
// it). A sender sends what is due and then waits for the next due time or
// a nudge. Nudges come from the store's change feed (a new outbox row,
// Store.Enqueue: the submission endpoint's and anything else queued in
// this process), from the control socket (op "outbox": `postfach send`
// in another process), and from the account's sync service coming back
// online. A reload stops the sender of an account whose [accounts.smtp]
// changed or that was removed (abandoning a send in flight at its next
// safe point: the queue's write-ahead keeps it exactly once) before its
// successor starts: never two senders for one account.
//
// Without an agent, FlushOutbox sends under the store's sync lock, the
// lock `postfach sync` and `postfach run` hold: two processes never send
// the same queue.

// mailSender is what the agent uses of an outbox.Sender (the tests plug
// in their own through newMailSender).
type mailSender interface {
	Run(ctx context.Context) error
	Nudge()
	Flush(ctx context.Context) (outbox.FlushReport, error)
}

// newMailSender makes an account's sender.
var newMailSender = func(o outbox.Options) (mailSender, error) {
	s, err := outbox.NewSender(o)
	if err != nil {
		return nil, err // not a nil *outbox.Sender in the interface
	}
	return s, nil
}

// OutboxReport is what flushing one account's queue did.
type OutboxReport struct {
	Account  string `json:"account"`
	Sent     int    `json:"sent"`
	Deferred int    `json:"deferred"`
	Failed   int    `json:"failed"`
	Error    string `json:"error,omitempty"`
}

// outboxes runs the senders of a Run.
type outboxes struct {
	d *daemon

	mu      sync.Mutex
	senders map[string]*senderService
	names   map[index.AccountID]string // the feed's account ids
}

// senderService is one account's running sender.
type senderService struct {
	acct   *configs.Account
	s      mailSender
	cancel context.CancelFunc
	done   chan struct{}
}

// reload starts the senders cfg asks for, stops those of removed accounts
// and restarts those whose [accounts.smtp] changed. It runs on Run's
// goroutine only.
func (o *outboxes) reload(cfg *configs.Config) {
	o.mu.Lock()
	old := maps.Clone(o.senders) // o.senders is read under o.mu meanwhile
	o.mu.Unlock()
	next := map[string]*senderService{}
	for i := range cfg.Accounts {
		acct := &cfg.Accounts[i]
		if acct.SMTP == nil {
			continue
		}
		if s, ok := old[acct.Name]; ok {
			if sameSender(s.acct, acct) {
				next[acct.Name] = s
				continue
			}
			o.d.log.Info("outgoing mail settings changed: restarting the sender", "account", acct.Name)
			s.stop()
			delete(old, acct.Name)
		}
		if s := o.start(acct); s != nil {
			next[acct.Name] = s
		}
	}
	for name, s := range old {
		if _, ok := next[name]; !ok {
			s.stop()
		}
	}
	o.mu.Lock()
	o.senders = next
	o.mu.Unlock()
}

// start starts acct's sender; nil (logged) when it cannot be made.
func (o *outboxes) start(acct *configs.Account) *senderService {
	log := o.d.log.With("account", acct.Name)
	opts, err := senderOptions(o.d.a.store, acct, o.d.log) // the sender adds the account
	var s mailSender
	if err == nil {
		s, err = newMailSender(opts)
	}
	if err != nil {
		log.Error("outgoing mail not sent until the config changes (SIGHUP reloads it)", "err", err)
		return nil
	}
	ctx, cancel := context.WithCancel(o.d.ctx)
	ss := &senderService{acct: acct, s: s, cancel: cancel, done: make(chan struct{})}
	go ss.run(ctx, log)
	return ss
}

// run runs the sender until ctx ends; one that fails is started again a
// minute later.
func (ss *senderService) run(ctx context.Context, log *slog.Logger) {
	defer close(ss.done)
	keepRunning(ctx, log, "sending queued mail failed; trying again in a minute", ss.s.Run)
}

func (ss *senderService) stop() {
	ss.cancel()
	<-ss.done
}

// sameSender reports whether two versions of an account send alike: the
// same name and [accounts.smtp] (where it stands in the file aside).
func sameSender(a, b *configs.Account) bool {
	if a.Name != b.Name || (a.SMTP == nil) != (b.SMTP == nil) {
		return false
	}
	if a.SMTP == nil {
		return true
	}
	x, y := *a.SMTP, *b.SMTP
	x.Line, y.Line = 0, 0
	return reflect.DeepEqual(x, y)
}

// senderOptions turns an account's [accounts.smtp] into the sender's
// options.
func senderOptions(store *index.Store, acct *configs.Account, log *slog.Logger) (outbox.Options, error) {
	s := acct.SMTP
	if s == nil {
		return outbox.Options{}, fmt.Errorf("account %q has no [accounts.smtp]", acct.Name)
	}
	relay := outbox.Relay{Host: s.Host, Port: s.Port, TLS: s.TLS, Auth: smtpCredentials(s)}
	if s.TLS != "none" {
		cfg, err := s.TLSConfig()
		if err != nil {
			return outbox.Options{}, err
		}
		relay.TLSConfig = cfg
	}
	saveSent, sentFolder, expiry, warn := smtpSettings(acct)
	return outbox.Options{
		Store: store, Account: acct.Name, Relay: relay,
		SaveSent: saveSent, SentFolder: sentFolder, Expiry: expiry, Warn: warn,
		Logger: log,
	}, nil
}

// nudge asks the senders of the named accounts (every one when none) to
// look at their queues now; an unknown name is an error.
func (o *outboxes) nudge(names []string) error {
	picked, err := o.pick(names)
	for _, s := range picked {
		s.s.Nudge()
	}
	return err
}

// nudgeOne nudges account's sender, if it has one.
func (o *outboxes) nudgeOne(account string) {
	o.mu.Lock()
	s := o.senders[account]
	o.mu.Unlock()
	if s != nil {
		s.s.Nudge()
	}
}

// pick returns the running senders of the named accounts (all when
// none).
func (o *outboxes) pick(names []string) ([]*senderService, error) {
	order := o.d.cfgAccounts()
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*senderService
	if len(names) == 0 {
		for _, acct := range order {
			if s := o.senders[acct]; s != nil {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var errs []error
	for _, n := range names {
		if s := o.senders[n]; s != nil {
			out = append(out, s)
		} else {
			errs = append(errs, fmt.Errorf("account %q sends no mail through this agent (no [accounts.smtp] in its config, or its sender could not start: see its log)", n))
		}
	}
	return out, errors.Join(errs...)
}

// flush flushes the named accounts' queues (all when none) at once.
func (o *outboxes) flush(ctx context.Context, names []string) ([]OutboxReport, error) {
	picked, err := o.pick(names)
	if err != nil {
		return nil, err
	}
	senders := make([]mailSender, len(picked))
	accts := make([]string, len(picked))
	for i, s := range picked {
		senders[i], accts[i] = s.s, s.acct.Name
	}
	return flushAll(ctx, accts, senders)
}

// flushAll flushes each sender, in parallel, and reports per account.
func flushAll(ctx context.Context, accts []string, senders []mailSender) ([]OutboxReport, error) {
	reports := make([]OutboxReport, len(senders))
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := s.Flush(ctx)
			reports[i] = OutboxReport{Account: accts[i], Sent: rep.Sent, Deferred: rep.Deferred, Failed: rep.Failed}
			if err != nil {
				reports[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	return reports, outboxErrors(reports)
}

func outboxErrors(reports []OutboxReport) error {
	var errs []error
	for _, r := range reports {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s: %s", r.Account, r.Error))
		}
	}
	return errors.Join(errs...)
}

// wait waits for the senders once the run's context has ended.
func (o *outboxes) wait() {
	o.mu.Lock()
	senders := o.senders
	o.mu.Unlock()
	for _, s := range senders {
		<-s.done
	}
}

// cfgAccounts returns the account names of the running config, in order.
func (d *daemon) cfgAccounts() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg == nil {
		return nil
	}
	names := make([]string, len(d.cfg.Accounts))
	for i, a := range d.cfg.Accounts {
		names[i] = a.Name
	}
	return names
}

// watchFeed nudges an account's sender for each outbox change the store's
// feed announces (Store.Enqueue in this process), until ctx ends; when
// the feed fell behind, every sender.
//
// Every change that is none of the mailbox kinds (message added, flags
// changed, message removed, folder created, renamed, removed) is taken
// for an outbox change of its account: nudging is cheap, and so the
// wiring does not depend on what the queue calls its change.
func (o *outboxes) watchFeed(ctx context.Context) {
	for resync := true; resync && ctx.Err() == nil; {
		resync = false
		sub := o.d.a.store.Subscribe(0)
		stop := context.AfterFunc(ctx, sub.Close)
		for c := range sub.C() {
			switch c.Kind {
			case index.MessageAdded, index.FlagsChanged, index.MessageRemoved,
				index.FolderCreated, index.FolderRenamed, index.FolderRemoved:
			case index.Resync:
				o.nudge(nil)
				resync = true
			default:
				o.nudgeOne(o.accountName(ctx, c.Account))
			}
		}
		stop()
		sub.Close()
	}
}

// accountName is the name of the account with id, "" when unknown.
func (o *outboxes) accountName(ctx context.Context, id index.AccountID) string {
	o.mu.Lock()
	name, ok := o.names[id]
	o.mu.Unlock()
	if ok {
		return name
	}
	names := map[index.AccountID]string{}
	err := o.d.a.store.Read(ctx, func(tx *index.ReadTx) error {
		states, err := tx.Accounts()
		for _, st := range states {
			names[st.ID] = st.Name
		}
		return err
	})
	if err != nil {
		o.d.log.Debug("reading the accounts for the outbox", "err", err)
	}
	o.mu.Lock()
	o.names = names
	o.mu.Unlock()
	return names[id]
}

// NudgeOutbox asks the agent running on cfg's store to send the named
// accounts' queued mail now (all when none), as `postfach send` does once
// its message is queued; ErrNoAgent when none runs.
func NudgeOutbox(ctx context.Context, cfg *configs.Config, names []string) error {
	resp, err := callAgent(ctx, cfg.Store.Path, controlRequest{Op: "outbox", Accounts: names})
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("the agent (postfach run) on %s: %s", cfg.Store.Path, resp.Error)
	}
	return nil
}

// ErrNoStore means that the store cannot be opened for queueing (it does
// not exist yet, or its index cannot be opened).
var ErrNoStore = errors.New("the store cannot be opened")

// noStoreError is an ErrNoStore saying why.
type noStoreError struct{ err error }

func (e noStoreError) Error() string        { return e.err.Error() }
func (e noStoreError) Unwrap() error        { return e.err }
func (e noStoreError) Is(target error) bool { return target == ErrNoStore }

// QueueMessage stores a message in the outbox of cfg's store for account
// (index.Store.Enqueue; body as it is to be sent, Bcc removed) and
// returns once it is durable. It neither creates the store (an error
// wrapping ErrNoStore when there is none: a sendmail must not make a
// store where the config's path is wrong) nor checks its place as Open
// does: it is what `postfach send` runs for each message, and it writes
// only below <store>/.postfach.
func QueueMessage(ctx context.Context, cfg *configs.Config, account string, env index.Envelope, body io.Reader) (*index.OutboxMessage, error) {
	root := cfg.Store.Path
	if _, err := os.Stat(index.DefaultPath(root)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, noStoreError{fmt.Errorf("no store at %s yet (postfach sync or postfach run makes it)", root)}
		}
		return nil, noStoreError{fmt.Errorf("store %s: %w", root, err)}
	}
	st, err := index.OpenStore(root)
	if err != nil {
		return nil, noStoreError{err}
	}
	defer st.Close()
	m, err := st.Enqueue(ctx, account, env, body)
	if err != nil {
		return nil, storeFull(root, err)
	}
	return m, nil
}

// SenderAddress is the envelope sender of account's mail when nothing
// names one: its first address, else its SMTP user name when that is an
// address; "" when neither.
func SenderAddress(acct *configs.Account) string {
	if a := accountAddresses(acct); len(a) > 0 {
		return a[0]
	}
	if acct.SMTP != nil && strings.Contains(acct.SMTP.Username, "@") {
		return acct.SMTP.Username
	}
	return ""
}

// FlushThroughAgent asks the agent running on the store to send the named
// accounts' queued mail now (all when none), due or not, and returns
// when each message is sent, deferred or failed; ErrNoAgent (and nothing
// else) when no agent runs.
func (a *Agent) FlushThroughAgent(ctx context.Context, names []string) ([]OutboxReport, error) {
	resp, err := callAgent(ctx, a.cfg.Store.Path, controlRequest{Op: "flush", Accounts: names})
	if err != nil {
		return nil, err
	}
	if resp.Error == "" {
		return resp.Outbox, nil
	}
	var errs []error
	for _, line := range strings.Split(resp.Error, "\n") {
		errs = append(errs, errors.New(line))
	}
	return resp.Outbox, errors.Join(errs...)
}

// FlushOutbox sends the named accounts' queued mail (every account with
// [accounts.smtp] when none) now, due or not, in this process, under the
// store's sync lock (so that no agent nor a second flush sends the same
// queue), and returns when each message is sent, deferred or failed.
// With an agent running it fails on the lock: use FlushThroughAgent.
func (a *Agent) FlushOutbox(ctx context.Context, names []string) ([]OutboxReport, error) {
	accts, err := a.pick(names)
	if err != nil {
		return nil, err
	}
	var picked []*configs.Account
	for _, acct := range accts {
		switch {
		case acct.SMTP != nil:
			picked = append(picked, acct)
		case len(names) > 0:
			return nil, fmt.Errorf("account %q has no [accounts.smtp] in %s: it sends no mail", acct.Name, a.cfg.File)
		}
	}
	unlock, err := lockStore(a.cfg.Store.Path, "postfach queue --flush")
	if err != nil {
		return nil, err
	}
	defer unlock()
	senders := make([]mailSender, len(picked))
	names = make([]string, len(picked))
	for i, acct := range picked {
		opts, err := senderOptions(a.store, acct, a.log) // the sender adds the account
		if err == nil {
			senders[i], err = newMailSender(opts)
		}
		if err != nil {
			return nil, err
		}
		names[i] = acct.Name
	}
	return flushAll(ctx, names, senders)
}

// AccountForSender returns the account that sends mail from the envelope
// sender from, as the submission endpoint chooses it: the account with
// [accounts.smtp] whose addresses hold from (case-insensitive), else the
// only account with [accounts.smtp]. ErrUnknownSender when none fits.
func AccountForSender(cfg *configs.Config, from string) (*configs.Account, error) {
	var only *configs.Account
	n := 0
	for i := range cfg.Accounts {
		acct := &cfg.Accounts[i]
		if acct.SMTP == nil {
			continue
		}
		n++
		only = acct
		for _, addr := range accountAddresses(acct) {
			if from != "" && strings.EqualFold(addr, from) {
				return acct, nil
			}
		}
	}
	switch {
	case n == 1:
		return only, nil
	case n == 0:
		return nil, fmt.Errorf("%w: no account in %s has [accounts.smtp]", ErrUnknownSender, cfg.File)
	case from == "":
		return nil, fmt.Errorf("%w: the message names no sender (no From field, no -f), and %d accounts send mail", ErrUnknownSender, n)
	}
	return nil, fmt.Errorf("%w: no account sends as %s (see each account's addresses in %s)", ErrUnknownSender, from, cfg.File)
}

// ErrUnknownSender means that no account sends mail from an address.
var ErrUnknownSender = errors.New("unknown sender")
