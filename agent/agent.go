// Package agent runs postfach's jobs for the accounts of a config: one-shot
// syncs and migrations, the daemon, `postfach run`, with the local
// endpoints and the senders of outgoing mail (later also backups). It is the only package that turns a
// configs.Config into the plain option structs of the packages below it.
//
// Open (and CheckStore, for `config check`) refuses a store whose place
// would mix its mail with another's: inside another postfach store,
// holding one below an account's folder, or with an account folder full of
// another program's Maildir (storecheck.go); so does OpenReadOnly
// (readonly.go), the open of the commands that only read the store
// (search, show, status, queue): it writes nothing to the index and
// records no setting in it. Sync, Migrate and Run run
// under the store's sync lock, an flock on <store>/.postfach/sync.lock
// holding the holder's process id and command (lock.go): one writer per
// store at a time, whatever path the config spells the store with, and
// Sync runs each account once however often it is named.
//
// Run (run.go) holds the lock for its whole life and supervises one
// service per account (supervise.go): a full sync at start, then a sync on
// every Nudge, request and poll_interval. Two watchers (watchers.go) nudge
// it, naming a folder: IdleUpstream (IMAP IDLE on idle_folders, one
// connection each; the syncs keep the rest of the account's connections)
// and MaildirLocal (fsnotify on the account's Maildir, localwatch.go; a
// file whose state the index already records, index.Store.Knows, is the
// store's own write and nudges nothing). A third, the store's change feed
// (feed.go, index.Store.Subscribe), nudges the folder of a committed
// change that leaves something queued upstream (a local endpoint's
// expunge, move, flag change or new message: index.ReadTx.FolderQueued),
// so the sync's own writes, which leave nothing queued, never nudge
// another sync. A nudge syncs the named folders
// alone (imapsync.Options.Only); a request or a poll, the whole account;
// a temporary failure (nethint.Permanent false) is retried with capped
// exponential backoff (state "offline"), a permanent one parks the
// account (state "error") until the config is reloaded or a sync is asked
// for. A service only ever syncs its own account, one sync at a time. The
// full-text indexer runs while no sync does. The control socket
// <store>/.postfach/agent.sock (control.go; 0600, line-delimited JSON)
// serves `postfach status` (AgentStatus; the count of changes queued
// upstream per account is read from the index, index.ReadTx.QueuedUpstream,
// agent or not) and `postfach sync`
// (SyncThroughAgent); a socket file without a listener is one a killed
// agent left, removed by the next.
//
// The local endpoints (serve.go) are one endpointService each, for every
// [serve] address set: it refuses an address that is not loopback unless
// allow_remote and TLS are on, wraps the listener for implicit TLS or
// hands the server the tls.Config for STARTTLS, and runs the Endpoint the
// CLI plugged in (RunOptions.Endpoints) with a localauth.Checker as its
// Auth, guarded: a client on another machine logs in only over TLS (the
// service's tls.Config marks each connection that starts TLS). They start with Run and on a reload that changes [serve] or the
// account names, or finds one failed; one that cannot listen is logged
// and shown failed while the rest of the agent goes on. The submission
// endpoint ([serve] submission, agent/submit) is one of them, started only
// when an account has [accounts.smtp] (serve_submit.go).
//
// Outgoing mail (outbox.go): Run runs one outbox.Sender per account with
// [accounts.smtp], beside its sync service, for the agent's whole life;
// a reload restarts only a sender whose [accounts.smtp] changed (stopping
// the old one first: never two senders for one account). A sender is
// nudged by a new outbox row on the store's change feed (Store.Enqueue in
// this process: the submission endpoint's), by the control socket's op
// "outbox" (`postfach send`, another process, QueueMessage then
// NudgeOutbox) and by its account's service coming back online. The
// control socket's op "flush" (`postfach queue --flush`,
// FlushThroughAgent) flushes the senders; without an agent FlushOutbox
// sends under the store's sync lock, so two processes never send one
// queue. QueueMessage opens an existing store only (it never makes one)
// and writes below <store>/.postfach alone.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/pop3"
)

// Agent holds an open store for a config.
type Agent struct {
	// Force lets a sync delete more of a folder than max_delete_percent.
	Force bool
	// DryRun makes Sync report what it would do and change nothing.
	DryRun bool

	cfg    *configs.Config
	store  *index.Store
	log    *slog.Logger
	dialed *DialedAhead // first connections dialed ahead (UseDialed)
}

// Open opens the store (Maildir root and index) the config names, creating
// it if needed. It refuses a store that CheckStore refuses, before creating
// anything.
func Open(cfg *configs.Config, log *slog.Logger) (*Agent, error) {
	st, err := openChecked(cfg, true)
	if err != nil {
		return nil, storeFull(cfg.Store.Path, err)
	}
	if err := recordArchive(st, cfg); err != nil {
		st.Close()
		return nil, storeFull(cfg.Store.Path, err)
	}
	return &Agent{cfg: cfg, store: st, log: log}, nil
}

// Close closes the index.
func (a *Agent) Close() error { return a.store.Close() }

// Index returns the open index.
func (a *Agent) Index() *index.Store { return a.store }

// AccountReport is the outcome of one account's sync.
type AccountReport struct {
	Name   string
	Result *imapsync.Result  // IMAP accounts; nil when the account failed as a whole
	POP3   *pop3.FetchResult // POP3 accounts; nil when the account failed as a whole
	Err    error
}

// Sync syncs the named accounts (all when names is empty; an account named
// twice is synced once), in parallel, under the store's sync lock (see
// lockStore). The error joins every account's error; each report says what
// happened.
func (a *Agent) Sync(ctx context.Context, names []string, progress imapsync.Progress) ([]AccountReport, error) {
	accts, err := a.pick(names)
	if err != nil {
		return nil, err
	}
	unlock, err := lockStore(a.cfg.Store.Path, "postfach sync")
	if err != nil {
		return nil, err
	}
	defer unlock()
	reports := make([]AccountReport, len(accts))
	var wg sync.WaitGroup
	for i, acct := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i] = a.syncAccount(ctx, acct, syncSettings{force: a.Force, dryRun: a.DryRun, progress: progress})
		}()
	}
	wg.Wait()
	return reports, reportErrors(reports)
}

// reportErrors joins the errors of a run's reports, each labelled with
// its account.
func reportErrors(reports []AccountReport) error {
	var errs []error
	for _, r := range reports {
		if r.Err != nil {
			errs = append(errs, accountErrors(r.Name, r.Err)...)
		}
	}
	return errors.Join(errs...)
}

// accountErrors labels each of an account's errors (one per failed
// folder) with the account, so that every line of the run's error names it.
func accountErrors(account string, err error) []error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, accountErrors(account, e)...)
		}
		return out
	}
	return []error{fmt.Errorf("%s: %w", account, err)}
}

func (a *Agent) pick(names []string) ([]*configs.Account, error) { return pickAccounts(a.cfg, names) }

// pickAccounts returns the accounts names selects (every one when none),
// each once.
func pickAccounts(cfg *configs.Config, names []string) ([]*configs.Account, error) {
	if len(names) == 0 {
		out := make([]*configs.Account, len(cfg.Accounts))
		for i := range cfg.Accounts {
			out[i] = &cfg.Accounts[i]
		}
		return out, nil
	}
	// Each account once, however often it is named: two syncs of one
	// account at once would each download what the other is downloading.
	var out []*configs.Account
	for _, n := range names {
		acct, ok := cfg.Account(n)
		if !ok {
			return nil, fmt.Errorf("no account %q in %s", n, cfg.File)
		}
		if !slices.Contains(out, acct) {
			out = append(out, acct)
		}
	}
	return out, nil
}

// syncSettings are what one account sync is asked for.
type syncSettings struct {
	force, dryRun bool
	progress      imapsync.Progress // nil: none
	// dialAttempts is how often a temporary connection failure is tried
	// (0: the engine's default); the daemon tries once and backs off
	// itself.
	dialAttempts int
	// only, when set, are the local folders an IMAP run syncs alone
	// (imapsync.Options.Only: the folders a watcher named).
	only []string
	// connections, when set, bounds an IMAP run's connections (the
	// agent keeps some for IDLE).
	connections int
}

func (a *Agent) syncAccount(ctx context.Context, acct *configs.Account, set syncSettings) AccountReport {
	log := a.log.With("account", acct.Name)
	rep := AccountReport{Name: acct.Name}
	var err error
	switch acct.Kind {
	case "imap":
		var opts imapsync.Options
		if opts, err = a.imapOptions(ctx, acct); err == nil {
			opts.Logger, opts.Progress = log, set.progress
			opts.Force, opts.DryRun, opts.DialAttempts = set.force, set.dryRun, set.dialAttempts
			opts.Only = set.only
			if set.connections > 0 {
				opts.Connections = set.connections
			}
			rep.Result, err = imapsync.Sync(ctx, opts)
			if opts.FirstDial != nil {
				opts.FirstDial.Close() // (a run that ended before it took it)
			}
		}
	case "pop3":
		var opts pop3.FetchOptions
		if opts, err = a.pop3Options(ctx, acct); err == nil {
			opts.Logger, opts.DryRun = log, set.dryRun
			if set.progress != nil {
				opts.Progress = set.progress
			}
			rep.POP3, err = pop3.Fetch(ctx, opts)
		}
	default:
		err = fmt.Errorf("%s accounts cannot be synced yet", acct.Kind)
	}
	err = storeFull(a.cfg.Store.Path, err)
	rep.Err = err
	if set.dryRun || ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return rep // a stopped run is no outcome to show in status
	}
	a.recordAccount(acct.Name, failedWhole(rep), err)
	return rep
}

// failedWhole reports whether the account's run failed before syncing any
// folder (no connection, no login): no result, only the error.
func failedWhole(rep AccountReport) bool {
	return rep.Err != nil && rep.Result == nil && rep.POP3 == nil
}

// recordAccount stores the account-level outcome for status: runErr is
// recorded as the account's error when the run failed as a whole.
func (a *Agent) recordAccount(name string, failedWhole bool, runErr error) {
	msg := ""
	if failedWhole {
		msg = runErr.Error()
	}
	// Status bookkeeping: its commit need not wait for the disk.
	err := a.store.WriteRelaxed(context.Background(), func(tx *index.Tx) error {
		id, err := tx.EnsureAccount(name)
		if err != nil {
			return err
		}
		return tx.SetAccountResult(id, time.Now(), msg)
	})
	if err != nil {
		a.log.Error("recording account status", "account", name, "err", err)
	}
}

func (a *Agent) imapOptions(ctx context.Context, acct *configs.Account) (imapsync.Options, error) {
	var ep imapconn.Endpoint
	var first *imapconn.Pending
	if d := a.dialed.take(acct.Name); d != nil {
		if d.err != nil {
			return imapsync.Options{}, d.err
		}
		ep, first = d.ep, d.first
	} else {
		var err error
		if ep, err = serverEndpoint(ctx, acct); err != nil {
			return imapsync.Options{}, err
		}
	}
	return imapsync.Options{
		Account:          acct.Name,
		Root:             a.cfg.Store.Path,
		Index:            a.store,
		Endpoint:         ep,
		FirstDial:        first,
		Folders:          acct.Folders,
		Connections:      acct.Connections,
		Direction:        acct.Direction,
		Expunge:          acct.Expunge,
		MaxDeletePercent: acct.MaxDeletePercent,
		CreateFolders:    acct.CreateFolders,
		RemoveFolders:    acct.RemoveFolders,
		Archive:          acct.Archive,
		FolderMap:        acct.FolderMap,
		NamespacePrefix:  acct.NamespacePrefix,
		MaxAgeDays:       acct.MaxAgeDays,
		MaxSize:          acct.MaxSize,
	}, nil
}

// serverEndpoint is how the account's server (IMAP or POP3) is reached
// and signed in to (its password resolved now: see secrets).
func serverEndpoint(ctx context.Context, acct *configs.Account) (imapconn.Endpoint, error) {
	pass, token, err := secrets(ctx, acct)
	if err != nil {
		return imapconn.Endpoint{}, err
	}
	mode, tlsConf, err := tlsSettings(acct)
	if err != nil {
		return imapconn.Endpoint{}, err
	}
	return imapconn.Endpoint{
		Addr:      acct.Addr(),
		TLS:       mode,
		TLSConfig: tlsConf,
		Username:  acct.Username,
		Password:  pass,
		Token:     token,
	}, nil
}

func (a *Agent) pop3Options(ctx context.Context, acct *configs.Account) (pop3.FetchOptions, error) {
	ep, err := serverEndpoint(ctx, acct)
	if err != nil {
		return pop3.FetchOptions{}, err
	}
	return pop3.FetchOptions{
		Account:         acct.Name,
		Root:            a.cfg.Store.Path,
		Index:           a.store,
		Addr:            ep.Addr,
		TLS:             pop3.TLSMode(ep.TLS),
		TLSConfig:       ep.TLSConfig,
		Username:        ep.Username,
		Password:        ep.Password,
		Token:           ep.Token,
		Folder:          acct.Folder,
		Keep:            acct.Keep,
		DeleteAfterDays: acct.DeleteAfterDays,
	}, nil
}

// tlsSettings parses the account's tls setting (the one place it is
// parsed; POP3 takes the same three modes) and builds its TLS
// configuration, only when it uses TLS: loading the system roots costs
// tens of milliseconds.
func tlsSettings(acct *configs.Account) (imapconn.TLSMode, *tls.Config, error) {
	mode, err := imapconn.ParseTLSMode(acct.TLS)
	if err != nil {
		return "", nil, fmt.Errorf("account %q: %w", acct.Name, err)
	}
	if mode == imapconn.TLSNone {
		return mode, nil, nil
	}
	cfg, err := acct.TLSConfig()
	return mode, cfg, err
}
