package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/postfach/postfach/index"
)

// Options configure a Server.
type Options struct {
	Store    *index.Store
	Accounts []string                    // account names from the config, in config order
	Folder   func(account string) string // the folder served per account; nil or "": "INBOX"
	// Auth judges a login: nil error = logged in. It delays and counts
	// failures itself.
	Auth   func(remote net.Addr, username, password string) error
	TLS    *tls.Config  // non-nil: STLS offered (implicit TLS is the caller's)
	Logger *slog.Logger // nil: none
}

// expunger removes messages from the store at QUIT: the store's Expunge
// (file, row and an upstream expunge intent for each message).
// *index.Store satisfies it.
type expunger interface {
	Expunge(ctx context.Context, msgs []*index.Message) error
}

// limits bound what a session may take; the tests shrink them.
type limits struct {
	commandTimeout time.Duration // for the client to send a command
	writeTimeout   time.Duration // for the client to take each chunk of a reply
	updateTimeout  time.Duration // for the removal at QUIT
	maxSessions    int           // connections served at once
}

var defaultLimits = limits{
	commandTimeout: 10 * time.Minute, // RFC 1939's autologout: at least 10 minutes
	writeTimeout:   2 * time.Minute,
	updateTimeout:  2 * time.Minute,
	maxSessions:    100,
}

const (
	maxLine = 4096 // longest command line, CRLF included

	maxAuthFailures = 3  // failed logins on one connection before it is closed
	maxBadCommands  = 10 // commands refused in a row before the connection is closed
	maxSizeMemo     = 1 << 20
)

// Server is a POP3 endpoint over a store. Serve may be called for several
// listeners; Close ends them all.
type Server struct {
	o       Options
	log     *slog.Logger
	expunge expunger
	lim     limits

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	inUse     map[string]bool // accounts whose maildrop a session holds
	sizes     map[index.MessageID]sizeMemo
}

// sizeMemo is a message's wire size, computed from its file of the given
// size on disk.
type sizeMemo struct {
	disk, wire int64
}

var _ expunger = (*index.Store)(nil)

// New returns a server for o.
func New(o Options) (*Server, error) {
	return newServer(o, o.Store)
}

func newServer(o Options, ex expunger) (*Server, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("pop3d: no store")
	case o.Auth == nil:
		return nil, errors.New("pop3d: no Auth function")
	case len(o.Accounts) == 0:
		return nil, errors.New("pop3d: no accounts to serve")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		o: o, log: log, expunge: ex, lim: defaultLimits, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		inUse:     map[string]bool{},
		sizes:     map[index.MessageID]sizeMemo{},
	}, nil
}

// Serve accepts connections on ln and serves each until Close; it returns
// nil after Close, or the listener's error if it fails otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("pop3d: listener %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: wait and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("pop3d: accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		s.start(c)
	}
}

// start serves c in its own goroutine, unless the server is closed or
// full.
func (s *Server) start(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return
	}
	full := len(s.conns) >= s.lim.maxSessions
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		if full {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("-ERR [SYS/TEMP] too many sessions, try again later\r\n"))
			s.log.Warn("pop3d: too many sessions", "remote", c.RemoteAddr().String())
			return
		}
		newSession(s, c).run()
	}()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the listeners, ends every session (removing nothing a
// session marked, as a dropped connection would) and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// lock takes account's maildrop for a session; false if another holds it.
func (s *Server) lock(account string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[account] {
		return false
	}
	s.inUse[account] = true
	return true
}

func (s *Server) unlock(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inUse, account)
}

// folderOf returns the name of the folder served for account.
func (s *Server) folderOf(account string) string {
	if s.o.Folder != nil {
		if f := s.o.Folder(account); f != "" {
			return f
		}
	}
	return "INBOX"
}

// splitLogin splits a login name into the username Auth judges and the
// account whose maildrop it opens: "<username>+<account>" names one of
// Options.Accounts (the longest that matches), anything else is the
// username of the first account.
func (s *Server) splitLogin(login string) (user, account string) {
	user, account = login, s.o.Accounts[0]
	best := -1
	for _, a := range s.o.Accounts {
		if len(a) > best && len(login) > len(a)+1 && login[len(login)-len(a)-1:] == "+"+a {
			user, account, best = login[:len(login)-len(a)-1], a, len(a)
		}
	}
	return user, account
}
