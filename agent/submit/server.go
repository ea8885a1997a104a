package submit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/index"
)

// Account is an account with [accounts.smtp], as submission sees it.
type Account struct {
	Name      string
	Addresses []string // envelope senders that choose this account
}

// Options configures a Server.
type Options struct {
	Store    *index.Store
	Accounts []Account                                              // accounts with [accounts.smtp], in config order
	Auth     func(remote net.Addr, username, password string) error // the local credentials (localauth.Checker.Check)
	TLS      *tls.Config                                            // non-nil: STARTTLS offered
	MaxSize  int64                                                  // 0 = 35 MiB
	Nudge    func(account string)                                   // after a message is queued
	Logger   *slog.Logger
}

// DefaultMaxSize is the size limit when Options.MaxSize is 0.
const DefaultMaxSize = 35 << 20

const (
	maxAuthFailures = 3
	maxRecipients   = 1000
	// maxLineLength bounds a command or message line (RFC 5321's 1000 is
	// exceeded by real mail clients' unwrapped text).
	maxLineLength = 64 << 10
	// ioTimeout ends a connection silent for this long.
	ioTimeout = 10 * time.Minute
)

// closeGrace is how long Close lets mail transactions under way finish
// (a message being read is queued and acknowledged) before it closes
// their connections. A variable for tests.
var closeGrace = 10 * time.Second

// Server is the submission endpoint.
type Server struct {
	o      Options
	log    *slog.Logger
	srv    *smtp.Server
	ctx    context.Context // ended by Close after its grace: queueing in progress stops
	cancel context.CancelFunc

	mu       sync.Mutex
	closing  bool              // Close has begun: no new transaction
	sessions map[*session]bool // open connections
}

// New checks o and returns a Server; Serve starts it.
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("submit: no store")
	}
	if o.Auth == nil {
		return nil, errors.New("submit: no Auth: the endpoint never accepts mail without a login")
	}
	if len(o.Accounts) == 0 {
		return nil, errors.New("submit: no account to send from (none has [accounts.smtp])")
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, log: o.Logger, sessions: map[*session]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.TLSConfig = o.TLS
	srv.MaxMessageBytes = o.MaxSize
	srv.MaxRecipients = maxRecipients
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout, srv.WriteTimeout = ioTimeout, ioTimeout
	srv.EnableSMTPUTF8 = true
	// go-smtp's own rule (AUTH only over TLS) is replaced by the
	// session's: over TLS or from loopback (see allowAuth).
	srv.AllowInsecureAuth = true
	srv.ErrorLog = logAdapter{o.Logger}
	s.srv = srv
	return s, nil
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if s.ctx.Err() != nil {
		return nil
	}
	return err
}

// Close stops listening, closes the connections between transactions,
// and lets those in a transaction finish (a message being read is queued
// and acknowledged; a further MAIL is answered 421) for up to
// closeGrace; then it closes what is left (a message being queued then
// is not acknowledged).
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	var idle []*session
	for ss := range s.sessions {
		if !ss.inTx {
			idle = append(idle, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range idle {
		ss.conn.Close() // its Logout takes s.mu
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	err := s.srv.Shutdown(ctx)
	cancel()
	s.cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// account returns the account that sends for the envelope sender from.
func (s *Server) account(from string) (string, bool) {
	if len(s.o.Accounts) == 1 {
		return s.o.Accounts[0].Name, true
	}
	for _, a := range s.o.Accounts {
		for _, addr := range a.Addresses {
			if strings.EqualFold(addr, from) {
				return a.Name, true
			}
		}
	}
	return "", false
}

// splitLogin splits a login name into the username Auth judges and the
// account it names: "<username>+<account>" names one of Options.Accounts
// (the longest that matches, as the POP3 endpoint reads logins); anything
// else is the username, naming no account ("").
func (s *Server) splitLogin(login string) (user, account string) {
	user, best := login, -1
	for _, a := range s.o.Accounts {
		n := a.Name
		if len(n) > best && len(login) > len(n)+1 && login[len(login)-len(n)-1:] == "+"+n {
			user, account, best = login[:len(login)-len(n)-1], n, len(n)
		}
	}
	return user, account
}

// logAdapter sends go-smtp's own messages (connection errors) to the
// logger at debug level.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, v ...any) {
	a.l.Debug("submission: " + oneLine(fmt.Sprintf(format, v...)))
}
func (a logAdapter) Println(v ...any) { a.l.Debug("submission: " + oneLine(fmt.Sprint(v...))) }

// oneLine keeps control characters out of a log line or reply.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
