// PLACEHOLDER: replaced by part R at merge

// Package submit is the local submission endpoint (a stand-in with the
// contract's signatures: AUTH PLAIN required, the account by envelope
// sender, queued through outbox.ReadSubmission and index.Store.Enqueue).
package submit

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/outbox"
)

// Account is an account mail can be submitted for.
type Account struct {
	Name      string
	Addresses []string // envelope senders that choose this account
}

// Options configure the endpoint.
type Options struct {
	Store    *index.Store
	Accounts []Account
	Auth     func(remote net.Addr, username, password string) error
	TLS      *tls.Config
	MaxSize  int64
	Nudge    func(account string)
	Logger   *slog.Logger
}

// Server is the submission endpoint.
type Server struct {
	o   Options
	srv *smtp.Server
}

// New makes the endpoint.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Auth == nil {
		return nil, errors.New("submit: store and auth are needed")
	}
	if o.MaxSize == 0 {
		o.MaxSize = 35 << 20
	}
	s := &Server{o: o}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, remote: c.Conn().RemoteAddr()}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.TLSConfig = o.TLS
	s.srv.MaxMessageBytes = o.MaxSize
	s.srv.AllowInsecureAuth = true
	return s, nil
}

// Serve accepts connections until Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the endpoint.
func (s *Server) Close() error { return s.srv.Close() }

type session struct {
	s       *Server
	remote  net.Addr
	authed  bool
	account string
	env     index.Envelope
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if err := ss.s.o.Auth(ss.remote, username, password); err != nil {
			return err
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Reset()        { ss.env, ss.account = index.Envelope{}, "" }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	accts := ss.s.o.Accounts
	for _, a := range accts {
		for _, addr := range a.Addresses {
			if strings.EqualFold(addr, from) {
				ss.account = a.Name
			}
		}
	}
	if ss.account == "" && len(accts) == 1 {
		ss.account = accts[0].Name
	}
	if ss.account == "" {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no account sends as " + from}
	}
	ss.env.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.env.To = append(ss.env.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	sub, err := outbox.ReadSubmission(r)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: err.Error()}
	}
	if _, err := ss.s.o.Store.Enqueue(context.Background(), ss.account, ss.env, sub.Body); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "not queued"}
	}
	if ss.s.o.Nudge != nil {
		ss.s.o.Nudge(ss.account)
	}
	return nil
}
