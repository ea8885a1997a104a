// Package imapd is postfach's local IMAP endpoint: any mail client reads
// and files mail in the local store (index and Maildir) over IMAP4rev1 or
// IMAP4rev2, with or without the network, and its changes go upstream
// with the accounts' syncs. It is go-imap's imapserver over index.Store.
//
// Mailbox names are the store's folder names ('/' the delimiter): the
// folder's name alone when the server serves one account,
// "<account>/<folder>" when it serves several. Every folder is
// subscribed unless a client unsubscribed it (kept in
// <store>/.postfach/imapd-unsubscribed).
//
// What clients change goes through the store's door, never around it:
// flags through Store.SetFlags (the merge base is left: the sync pushes
// the difference), APPEND, COPY, MOVE and EXPUNGE through the local
// operations (index/local.go: files first, rows and upstream intents in
// one transaction), CREATE, RENAME and DELETE through the folder door
// (which refuses, NO [CANNOT], to delete or rename the archive view's
// folders, or a folder with messages of an archive account).
//
// Invariants:
//   - UIDVALIDITY and UIDs are the store's local ones
//     (folders.local_uidvalidity, messages.local_uid), never upstream's:
//     they never change under a client and are never reused.
//   - Each selected folder has one mailbox with one go-imap
//     MailboxTracker, and one writer: the hub's goroutine, which reads the
//     store's change feed (Store.Subscribe) and turns each committed change
//     into EXISTS, EXPUNGE or FETCH FLAGS for every session that has the
//     folder selected, whoever made it (a sync, the Maildir watcher,
//     another session, this one). A session's own command waits until the
//     hub has applied its change before it answers, so its untagged
//     responses come with the command. When the feed falls behind
//     (Resync), the hub reads what changed from the index
//     (ReadTx.ChangesSince) and goes on.
//   - The mailbox's UID list is the tracker's server view: both change
//     together under the mailbox's lock, and sessions translate sequence
//     numbers under it. A sequence number beyond the client's view (the
//     mailbox's count plus the expunges not sent to it yet) is answered
//     BAD, as RFC 3501 and 9051 ask.
//   - Bodies are streamed from the files (index.Store.OpenMessage), turned
//     back into CRLF on the way (maildir.CRLFWriter); a literal's size is
//     counted from the file before it is sent.
//   - No capability is advertised whose session interface is missing (the
//     library would panic the connection). ID (RFC 2971) is neither served
//     nor advertised: imapserver answers a command it does not know
//     itself (BAD; BYE before login) and has no hook for another.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postfach/postfach/index"
)

// Options configure a Server.
type Options struct {
	Store    *index.Store
	Accounts []string                                               // account names from the config, in config order
	Auth     func(remote net.Addr, username, password string) error // nil error = logged in
	TLS      *tls.Config                                            // non-nil: STARTTLS offered (implicit TLS is done by the caller wrapping the listener)
	Logger   *slog.Logger
}

// appendLimit is the largest message APPEND takes (APPENDLIMIT).
const appendLimit = 100 << 20

// Server is a local IMAP endpoint.
type Server struct {
	o      Options
	log    *slog.Logger
	srv    *imapserver.Server
	hub    *hub
	subs   *subscriptions
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	sessions int           // not closed yet
	ended    *sync.Cond    // on mu: sessions fell to 0, or Close stopped waiting
	done     chan struct{} // closed when the hub has stopped
}

// closeWait bounds how long Close waits for the sessions' commands in
// flight (a COPY of many messages) to end.
const closeWait = 10 * time.Second

// New returns a server over o.Store (opened with index.OpenStore) for
// o.Accounts, and starts following the store's change feed.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Store.Root() == "" {
		return nil, errors.New("imapd: a store opened with its Maildir root is needed")
	}
	if o.Auth == nil {
		return nil, errors.New("imapd: no login check (Options.Auth)")
	}
	if len(o.Accounts) == 0 {
		return nil, errors.New("imapd: no accounts to serve")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{o: o, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.ended = sync.NewCond(&s.mu)
	s.subs = loadSubscriptions(o.Store.Root())
	s.hub = newHub(o.Store, log)
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       capabilities(),
		Logger:     logAdapter{log},
		TLSConfig:  o.TLS,
		// Clear-text LOGIN is the session's to refuse: it takes one from
		// loopback (the agent's default), never from another machine
		// outside TLS.
		InsecureAuth: true,
	})
	go func() {
		defer close(s.done)
		s.hub.run(ctx)
	}()
	return s, nil
}

// capabilities are those advertised on top of the library's own
// (SASL-IR, LITERAL-, UNSELECT, ENABLE, IDLE, UTF8=ACCEPT, and
// APPENDLIMIT through the session): each one that needs a session
// interface has it (SessionIMAP4rev2: NAMESPACE and MOVE).
func capabilities() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:    {},
		imap.CapIMAP4rev2:    {},
		imap.CapNamespace:    {},
		imap.CapUIDPlus:      {},
		imap.CapMove:         {},
		imap.CapESearch:      {},
		imap.CapSearchRes:    {},
		imap.CapListExtended: {},
		imap.CapListStatus:   {},
		imap.CapStatusSize:   {},
		imap.CapChildren:     {},
		imap.CapSpecialUse:   {},
		imap.CapLiteralPlus:  {},
	}
}

// Serve serves IMAP on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return nil
	}
	err := s.srv.Serve(ln)
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	if closed {
		ln.Close() // Close may have come before the library had it
		return nil
	}
	if err != nil {
		return fmt.Errorf("imapd: %w", err)
	}
	return nil
}

// Close stops listening, ends the sessions (waiting a while for the
// commands in flight, which the store's door makes safe to cut anyway)
// and stops following the store's feed. The store may be closed after
// it.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Close()
	timedOut := false
	t := time.AfterFunc(closeWait, func() {
		s.mu.Lock()
		timedOut = true
		s.ended.Broadcast()
		s.mu.Unlock()
	})
	s.mu.Lock()
	for s.sessions > 0 && !timedOut {
		s.ended.Wait()
	}
	if timedOut {
		s.log.Warn("imapd: closing with commands still running")
	}
	s.mu.Unlock()
	t.Stop()
	s.cancel()
	s.hub.close()
	<-s.done
	return err
}

// logAdapter gives the library's messages to the logger.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(format string, args ...any) {
	l.log.Debug("imapd: " + fmt.Sprintf(format, args...))
}
