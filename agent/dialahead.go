package agent

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/imapconn"
)

// DialedAhead holds the first connection of each IMAP account a sync is
// about to run, dialed while the store opens (DialAhead): connecting, the
// server's greeting and the login are most of a sync that finds nothing
// to do, and opening the index and reading the account's folders need
// not wait for them. An Agent takes them with UseDialed; Close logs out
// of those no sync took.
type DialedAhead struct {
	mu    sync.Mutex
	conns map[string]*dialedAccount
}

type dialedAccount struct {
	ready chan struct{}     // closed once ep, first and err are set
	ep    imapconn.Endpoint // with the password the dial used (a password command runs once)
	first *imapconn.Pending
	err   error // the secret could not be had: the sync reports this, it does not ask again
}

// dialAheadAttempts is how often a connection dialed ahead is tried, as
// imapsync dials by default.
const dialAheadAttempts = 3

// DialAhead starts the first connection of each IMAP account names selects
// (every one when none), each account's secret resolved and dialed in the
// background and at once, as the accounts' syncs do. It dials nothing when
// an agent's control socket is there (the agent runs the sync: see
// SyncThroughAgent). An account whose secret cannot be had keeps that
// error, which its sync reports (its password command is not run a second
// time: it may prompt).
func DialAhead(ctx context.Context, cfg *configs.Config, names []string, log *slog.Logger) *DialedAhead {
	d := &DialedAhead{conns: map[string]*dialedAccount{}}
	if _, err := os.Stat(socketPath(cfg.Store.Path)); err == nil {
		return d
	}
	accts, err := pickAccounts(cfg, names)
	if err != nil {
		return d
	}
	for _, acct := range accts {
		if acct.Kind != "imap" {
			continue
		}
		c := &dialedAccount{ready: make(chan struct{})}
		d.conns[acct.Name] = c
		go func() {
			defer close(c.ready)
			if c.ep, c.err = serverEndpoint(ctx, acct); c.err == nil {
				c.first = c.ep.DialAhead(ctx, dialAheadAttempts, log.With("account", acct.Name).Warn)
			}
		}()
	}
	return d
}

// take hands over the account's connection dialed ahead, once its secret
// is resolved (nil: none).
func (d *DialedAhead) take(account string) *dialedAccount {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	c := d.conns[account]
	delete(d.conns, account)
	d.mu.Unlock()
	if c != nil {
		<-c.ready
	}
	return c
}

// Close logs out of the connections no sync took.
func (d *DialedAhead) Close() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, c := range conns {
		<-c.ready
		if c.first != nil {
			c.first.Close()
		}
	}
}

// UseDialed gives the agent's syncs the connections dialed ahead.
func (a *Agent) UseDialed(d *DialedAhead) { a.dialed = d }
