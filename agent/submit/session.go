package submit

import (
	"errors"
	"io"
	"net"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/outbox"
)

var (
	errAuthRequired    = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errAuthFailed      = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication failed"}
	errNeedTLS         = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required: use STARTTLS first"}
	errNoAccount       = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No account sends from this address"}
	errTooManyFailures = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed logins; closing"}
	errNotQueued       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not queue the message; try again later"}
	errShuttingDown    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down; try again later"}
)

// session is one client connection.
type session struct {
	s        *Server
	conn     *smtp.Conn
	remote   net.Addr
	loopback bool

	user     string // after AUTH
	authed   bool
	pinned   string // the account the login named ("<username>+<account>"), or ""
	failures int

	account string // chosen by MAIL FROM
	from    string
	rcpts   []string
	inTx    bool // from MAIL to the end of DATA or a reset; under Server.mu
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	remote := c.Conn().RemoteAddr()
	ta, ok := remote.(*net.TCPAddr)
	ss := &session{s: s, conn: c, remote: remote, loopback: ok && ta.IP.IsLoopback()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, errShuttingDown
	}
	s.sessions[ss] = true
	return ss, nil
}

// transaction marks the session in a mail transaction or out of one; it
// refuses to start one once Close has begun.
func (ss *session) transaction(on bool) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if on && ss.s.closing {
		return errShuttingDown
	}
	ss.inTx = on
	return nil
}

// allowAuth tells whether AUTH may happen now: over TLS, or from
// loopback.
func (ss *session) allowAuth() bool {
	_, isTLS := ss.conn.TLSConnectionState()
	return isTLS || ss.loopback
}

func (ss *session) AuthMechanisms() []string {
	if !ss.allowAuth() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.allowAuth() {
		return nil, errNeedTLS
	}
	if ss.failures >= maxAuthFailures {
		go ss.conn.Close()
		return nil, errTooManyFailures
	}
	check := func(identity, username, password string) error {
		if identity != "" && identity != username {
			return ss.authFailed(username, errors.New("authorization identity differs from the login"))
		}
		user, account := ss.s.splitLogin(username)
		if err := ss.s.o.Auth(ss.remote, user, password); err != nil {
			return ss.authFailed(username, err)
		}
		ss.user, ss.pinned, ss.authed = username, account, true
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(check), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authFailed counts and logs a failed AUTH.
func (ss *session) authFailed(username string, err error) error {
	ss.failures++
	ss.s.log.Warn("submission: login refused", "remote", ss.remote.String(), "user", oneLine(username), "err", oneLine(err.Error()))
	return errAuthFailed
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	acct, ok := ss.pinned, true
	if acct == "" {
		acct, ok = ss.s.account(from)
	}
	if !ok {
		return errNoAccount
	}
	if err := ss.transaction(true); err != nil {
		return err
	}
	ss.account, ss.from, ss.rcpts = acct, from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if !ss.authed || ss.account == "" {
		return errAuthRequired
	}
	defer ss.transaction(false)
	er := &errReader{r: r}
	sub, err := outbox.ReadSubmission(er)
	if err != nil {
		if er.err != nil {
			return readErr(er.err)
		}
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message header: " + oneLine(err.Error())}
	}
	env := index.Envelope{From: ss.from, To: append([]string(nil), ss.rcpts...)}
	m, err := ss.s.o.Store.Enqueue(ss.s.ctx, ss.account, env, sub.Body)
	if err != nil {
		if er.err != nil {
			return readErr(er.err)
		}
		ss.s.log.Error("submission: could not queue a message", "account", ss.account, "err", oneLine(err.Error()))
		return errNotQueued
	}
	ss.s.log.Info("submission: queued", "account", ss.account, "id", int64(m.ID), "from", oneLine(ss.from),
		"recipients", len(env.To), "size", m.Size, "user", oneLine(ss.user))
	if ss.s.o.Nudge != nil {
		ss.s.o.Nudge(ss.account)
	}
	return nil
}

func (ss *session) Reset() {
	ss.account, ss.from, ss.rcpts = "", "", nil
	ss.transaction(false)
}

func (ss *session) Logout() error {
	ss.s.mu.Lock()
	delete(ss.s.sessions, ss)
	ss.s.mu.Unlock()
	return nil
}

// errReader remembers the error of the client's data stream (too large,
// connection lost), so that it is answered as such and not as a store
// failure.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// readErr is the reply for a failed read of the message.
func readErr(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error reading the message"}
}

// loginServer is the server side of the LOGIN mechanism (draft-murchison-
// sasl-login): username and password, each after its prompt.
type loginServer struct {
	check    func(identity, username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) == 0 { // no initial response: ask
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check("", l.username, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
