package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/maildir"
)

// IdleWatcher tells the agent which upstream folders changed, as they
// change: it keeps one connection per watched folder in IMAP IDLE (RFC
// 2177) and names the folder (Notify) whenever the server reports
// something there: a new message (EXISTS), an expunge (EXPUNGE), changed
// flags (FETCH). The agent then syncs that folder (Options.Only). Folders
// not watched are left to the agent's poll, which CONDSTORE makes cheap.
//
// A folder is also named each time its IDLE starts, after every connect:
// what changed while nobody watched would otherwise wait for the poll.
//
// IDLE is restarted every Restart (default 25 minutes; servers may end an
// IDLE after 30, RFC 2177), which also proves the connection alive: the
// server must answer the DONE within 30 s. The connection uses TCP
// keepalives too, so a dead link is noticed within minutes even in
// between.
//
// Run's error: nil when ctx ends; otherwise the failure of one of the
// connections (dial, login, a dropped connection, a server BYE), worded
// as one line. Classify it with nethint.Permanent: a wrong password or an
// untrusted certificate is permanent, everything else temporary (back off
// and call Run again). A server without IDLE is said once in the log and
// Run then waits for ctx doing nothing (the poll covers every folder); so
// is a folder that is not on the server or cannot be selected, per
// folder. No goroutine or connection outlives Run.
//
// An IdleWatcher may be Run again after Run returned (not concurrently);
// what it said once it does not say again.
type IdleWatcher struct {
	Account  string   // account name: its namespace record is read (see NamespaceFile)
	Root     string   // store root
	Endpoint Endpoint // Endpoint.Unilateral is set per connection; leave it nil
	// Folders are the local names of the folders to watch (idle_folders);
	// default INBOX.
	Folders []string
	// FolderMap and NamespacePrefix are the account's, as in Options:
	// they map the local names to server names.
	FolderMap       map[string]string
	NamespacePrefix *string
	// Connections bounds the connections held (one per folder); default 4.
	// Folders beyond it are left to the poll (said once).
	Connections int
	// Notify is called with the local name of a folder that changed
	// upstream. It is called from the watcher's goroutines, one per
	// folder, and must never block: hand the name on with a non-blocking,
	// coalescing send (the agent's per-account nudge).
	Notify func(folder string)
	// Restart is how long one IDLE command runs before it is restarted;
	// default 25 minutes. It must stay below 29 minutes.
	Restart time.Duration
	Logger  *slog.Logger // default: discard

	mu   sync.Mutex
	said map[string]bool // log lines said once
}

// idleAnswerWait bounds the wait for the server's answer to IDLE or DONE.
const idleAnswerWait = 30 * time.Second

// onceLog logs msg at warn level the first time key is seen.
func (w *IdleWatcher) onceLog(key, msg string, args ...any) {
	w.mu.Lock()
	if w.said == nil {
		w.said = map[string]bool{}
	}
	first := !w.said[key]
	w.said[key] = true
	w.mu.Unlock()
	if first {
		w.Logger.Warn(msg, args...)
	}
}

// idleConn is one connection and the signal its unilateral data raises.
type idleConn struct {
	c       *imapclient.Client
	changed chan struct{} // capacity 1: coalesces
}

// dial connects with a handler that raises the connection's signal
// without blocking go-imap's reader.
func (w *IdleWatcher) dial(ctx context.Context) (*idleConn, error) {
	ic := &idleConn{changed: make(chan struct{}, 1)}
	raise := func() {
		select {
		case ic.changed <- struct{}{}:
		default: // a signal is pending already
		}
	}
	ep := w.Endpoint
	ep.Unilateral = &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { raise() },
		Mailbox: func(*imapclient.UnilateralDataMailbox) { raise() },
		// go-imap calls Fetch on a goroutine of its own, but its reader
		// waits until the message is read: read it to the end (a literal
		// left unread would also hold Client.Close up forever).
		Fetch: func(msg *imapclient.FetchMessageData) {
			raise()
			for item := msg.Next(); item != nil; item = msg.Next() {
				if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
					_, _ = io.Copy(io.Discard, b.Literal)
				}
				if b, ok := item.(imapclient.FetchItemDataBinarySection); ok && b.Literal != nil {
					_, _ = io.Copy(io.Discard, b.Literal)
				}
			}
		},
	}
	c, err := ep.Dial(ctx)
	if err != nil {
		return nil, err
	}
	ic.c = c
	return ic, nil
}

// Run watches until ctx ends or a connection fails; see IdleWatcher.
func (w *IdleWatcher) Run(ctx context.Context) error {
	if w.Logger == nil {
		w.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if w.Notify == nil {
		w.Notify = func(string) {}
	}
	first, err := w.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var watch []watchedFolder
	if caps := first.c.Caps(); !caps.Has(imap.CapIdle) && !caps.Has(imap.CapIMAP4rev2) {
		w.onceLog("noidle", "the server has no IDLE: its changes are found by polling", "server", w.Endpoint.Addr)
	} else if watch, err = w.resolve(first.c); err != nil {
		first.c.Close()
		if ctx.Err() != nil {
			return nil
		}
		return &IdleError{Addr: w.Endpoint.Addr, Op: "LIST", Err: err}
	}
	if len(watch) == 0 {
		Logout(ctx, first.c)
		first.c.Close()
		<-ctx.Done()
		return nil
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i, f := range watch {
		conn := first
		if i > 0 {
			conn = nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.watchFolder(wctx, conn, f); err != nil {
				cancel(err) // ends the others: the agent restarts all
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return context.Cause(wctx)
}

// watchedFolder is a folder to watch: its local and server names.
type watchedFolder struct{ local, remote string }

// resolve maps the configured folders to server folders, by the names
// the sync uses (the namespace prefix recorded for the account, else the
// server's), and bounds them by Connections.
func (w *IdleWatcher) resolve(c *imapclient.Client) ([]watchedFolder, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, err
	}
	var delim rune
	for _, l := range list {
		if l.Delim != 0 {
			delim = l.Delim
			break
		}
	}
	var prefix string
	switch rec, ok, err := readNamespace(filepath.Join(w.Root, maildir.EncodeName(w.Account))); {
	case w.NamespacePrefix != nil:
		prefix = *w.NamespacePrefix
	case err != nil:
		return nil, err
	case ok:
		prefix = rec
	default:
		if prefix, _, err = serverNamespace(c); err != nil {
			return nil, err
		}
	}
	names := newFolderNames(delim, prefix, w.FolderMap)
	remoteOf := map[string]string{}
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		remoteOf[names.Local(l.Mailbox)] = l.Mailbox
	}
	folders := w.Folders
	if len(folders) == 0 {
		folders = []string{"INBOX"}
	}
	limit := w.Connections
	if limit <= 0 {
		limit = 4
	}
	var out []watchedFolder
	seen := map[string]bool{}
	for _, f := range folders {
		f = inboxCase(f)
		if seen[f] {
			continue
		}
		seen[f] = true
		remote, ok := remoteOf[f]
		switch {
		case !ok:
			w.onceLog("missing:"+f, "an idle folder is not on the server: not watched", "folder", f)
		case len(out) == limit:
			w.onceLog("limit:"+f, "more idle folders than connections: this one is polled", "folder", f, "connections", limit)
		default:
			out = append(out, watchedFolder{local: f, remote: remote})
		}
	}
	return out, nil
}

// watchFolder keeps one folder in IDLE on ic (dialed here if nil) until
// ctx ends (nil) or the connection fails (its error). A folder the
// server will not select is said once and left to the poll (nil, once
// ctx ends).
func (w *IdleWatcher) watchFolder(ctx context.Context, ic *idleConn, f watchedFolder) error {
	if ic == nil {
		var err error
		if ic, err = w.dial(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	c := ic.c
	// Every wait below ends when ctx does: the connection is closed.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close() // returns once go-imap's reader has ended
	}()
	fail := func(op string, err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return &IdleError{Addr: w.Endpoint.Addr, Folder: f.local, Op: op, Err: err}
	}
	if _, err := c.Select(f.remote, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) {
			return fail("SELECT", err)
		}
		w.onceLog("select:"+f.local, "the server will not select an idle folder: not watched", "folder", f.local, "err", describe(err))
		<-ctx.Done()
		return nil
	}
	w.Logger.Debug("watching", "folder", f.local)
	w.Notify(f.local) // what changed while nobody watched
	restart := w.Restart
	if restart <= 0 || restart >= 29*time.Minute {
		restart = 25 * time.Minute
	}
	for {
		idle, err := boundedWait(c, func() (*imapclient.IdleCommand, error) { return c.Idle() })
		if err != nil {
			return fail("IDLE", err)
		}
		timer := time.NewTimer(restart)
		for running := true; running; {
			select {
			case <-ic.changed:
				w.Notify(f.local)
			case <-timer.C:
				running = false
			case <-c.Closed():
				timer.Stop()
				return fail("IDLE", closedErr(c))
			}
		}
		_, err = boundedWait(c, func() (struct{}, error) {
			if err := idle.Close(); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, idle.Wait()
		})
		if err != nil {
			return fail("IDLE", err)
		}
	}
}

// boundedWait runs fn, closing c if it takes longer than idleAnswerWait:
// go-imap waits for the first byte of an answer without a deadline, and a
// dead link may never send one.
func boundedWait[T any](c *imapclient.Client, fn func() (T, error)) (T, error) {
	var timedOut bool
	var mu sync.Mutex
	t := time.AfterFunc(idleAnswerWait, func() {
		mu.Lock()
		timedOut = true
		mu.Unlock()
		c.Close()
	})
	v, err := fn()
	t.Stop()
	mu.Lock()
	defer mu.Unlock()
	if timedOut && err != nil {
		err = fmt.Errorf("no answer within %v: %w", idleAnswerWait, err)
	}
	return v, err
}

// closedErr is why c's connection ended.
func closedErr(c *imapclient.Client) error {
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return io.EOF // an orderly end: "server closed the connection"
}

// IdleError is the failure of an IDLE connection: one line, temporary
// unless its cause is permanent (see nethint.Permanent).
type IdleError struct {
	Addr   string
	Folder string // local name; "" before one was chosen
	Op     string
	Err    error
}

func (e *IdleError) Unwrap() error { return e.Err }

func (e *IdleError) Error() string {
	where := e.Addr
	if e.Folder != "" {
		where += ": watching " + e.Folder
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Op, describe(e.Err))
}
