package pop3d

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// session is one client connection.
type session struct {
	s   *Server
	log *slog.Logger

	raw      net.Conn // as accepted
	conn     net.Conn // raw, or TLS over it after STLS
	br       *bufio.Reader
	bw       *bufio.Writer
	isTLS    bool
	loopback bool // the client is on this machine

	user    string // from USER, waiting for PASS
	hasUser bool
	md      *maildrop // after login (TRANSACTION state)

	bad   int // commands refused in a row
	fails int // failed logins
	buf   []byte
}

// errClose ends a session after its last reply.
var errClose = errors.New("session closed by the server")

// errLineTooLong is readLine's error for a line over maxLine.
var errLineTooLong = errors.New("command line too long")

// deadlineConn gives every Write timeout to make progress.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c deadlineConn) Write(p []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

func newSession(s *Server, c net.Conn) *session {
	ss := &session{s: s, raw: c, conn: c}
	_, ss.isTLS = c.(*tls.Conn)
	ss.loopback = true
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ss.loopback = a.IP.IsLoopback()
	}
	ss.log = s.log.With("remote", c.RemoteAddr().String())
	ss.br = bufio.NewReaderSize(c, maxLine)
	ss.bw = bufio.NewWriterSize(deadlineConn{c, s.lim.writeTimeout}, 32<<10)
	return ss
}

// run serves the session until QUIT, an error or the server's Close.
func (ss *session) run() {
	defer func() {
		if ss.md != nil {
			ss.s.unlock(ss.md.account)
		}
	}()
	ss.log.Debug("pop3d: session start")
	ss.reply("+OK postfach POP3 server ready")
	if err := ss.bw.Flush(); err != nil {
		return
	}
	for {
		line, err := ss.readLine()
		if errors.Is(err, errLineTooLong) {
			ss.reply("-ERR command line too long")
			ss.bw.Flush()
			ss.log.Info("pop3d: session ended", "reason", err)
			return
		}
		if err != nil {
			ss.log.Debug("pop3d: session ended", "reason", err)
			return
		}
		err = ss.handle(line)
		if err == nil && !ss.pending() {
			err = ss.bw.Flush()
		}
		if err != nil {
			ss.bw.Flush()
			ss.log.Debug("pop3d: session ended", "reason", err)
			return
		}
	}
}

// pending reports whether a whole command line is waiting in the input
// buffer (pipelining: its reply goes out with this one).
func (ss *session) pending() bool {
	n := ss.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := ss.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// readLine reads one command line within the command timeout, without its line
// end (CRLF or LF).
func (ss *session) readLine() (string, error) {
	ss.conn.SetReadDeadline(time.Now().Add(ss.s.lim.commandTimeout))
	b, err := ss.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
	return string(b), nil
}

// reply queues one reply line.
func (ss *session) reply(format string, args ...any) {
	fmt.Fprintf(ss.bw, format, args...)
	ss.bw.WriteString("\r\n")
}

// refuse queues a -ERR reply for a command the client should not have
// sent as it did; too many in a row end the session.
func (ss *session) refuse(msg string) error {
	ss.bad++
	ss.reply("-ERR %s", msg)
	if ss.bad >= maxBadCommands {
		ss.reply("-ERR too many bad commands, closing")
		ss.log.Info("pop3d: too many bad commands")
		return errClose
	}
	return nil
}

// handle answers one command line.
func (ss *session) handle(line string) error {
	c, err := parseCommand(line)
	if err != nil {
		return ss.refuse(err.Error())
	}
	if ss.md == nil {
		err = ss.authorization(c)
	} else {
		err = ss.transaction(c)
	}
	return err
}

// authorization answers a command in the AUTHORIZATION state.
func (ss *session) authorization(c command) error {
	switch c.Verb {
	case "CAPA":
		return ss.capa(c)
	case "STLS":
		return ss.stls(c)
	case "USER":
		if len(c.Args) != 1 {
			return ss.refuse("USER takes one argument")
		}
		if !ss.loginAllowed() {
			return ss.refuse("log in after STLS")
		}
		ss.user, ss.hasUser = c.Args[0], true
		ss.bad = 0
		ss.reply("+OK send PASS")
		return nil
	case "PASS":
		if !ss.hasUser {
			return ss.refuse("USER first")
		}
		user := ss.user
		ss.user, ss.hasUser = "", false
		return ss.login(user, c.Rest)
	case "AUTH":
		return ss.auth(c)
	case "QUIT":
		ss.reply("+OK bye")
		return errClose
	case "APOP":
		return ss.refuse("APOP is not offered; use USER/PASS or AUTH PLAIN")
	case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
		return ss.refuse("log in first")
	}
	return ss.refuse("unknown command")
}

// loginAllowed reports whether a login may be made now: over TLS, or from
// this machine.
func (ss *session) loginAllowed() bool { return ss.isTLS || ss.loopback }

// capa answers CAPA (RFC 2449).
func (ss *session) capa(c command) error {
	if len(c.Args) != 0 {
		return ss.refuse("CAPA takes no argument")
	}
	ss.bad = 0
	ss.reply("+OK capability list follows")
	for _, l := range []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} {
		ss.reply("%s", l)
	}
	if ss.md == nil {
		if ss.loginAllowed() {
			ss.reply("USER")
			ss.reply("SASL PLAIN")
		}
		if ss.s.o.TLS != nil && !ss.isTLS {
			ss.reply("STLS")
		}
	}
	ss.reply("IMPLEMENTATION postfach")
	ss.reply(".")
	return nil
}

// stls answers STLS (RFC 2595) and, after its +OK, runs the TLS handshake.
// Anything the client sent after STLS before the handshake is not read as
// a command: the session ends instead (a command injected in the clear).
func (ss *session) stls(c command) error {
	switch {
	case len(c.Args) != 0:
		return ss.refuse("STLS takes no argument")
	case ss.s.o.TLS == nil:
		return ss.refuse("STLS is not offered")
	case ss.isTLS:
		return ss.refuse("TLS is on already")
	}
	ss.reply("+OK begin TLS negotiation")
	if err := ss.bw.Flush(); err != nil {
		return err
	}
	if ss.br.Buffered() > 0 {
		ss.log.Warn("pop3d: client sent data after STLS before the TLS handshake; closing")
		return errClose
	}
	tc := tls.Server(ss.raw, ss.s.o.TLS)
	ss.raw.SetDeadline(time.Now().Add(time.Minute))
	if err := tc.HandshakeContext(ss.s.ctx); err != nil {
		ss.log.Info("pop3d: TLS handshake failed", "err", err)
		return errClose
	}
	ss.raw.SetDeadline(time.Time{})
	ss.conn, ss.isTLS = tc, true
	ss.br.Reset(tc)
	ss.bw.Reset(deadlineConn{tc, ss.s.lim.writeTimeout})
	ss.user, ss.hasUser, ss.bad = "", false, 0
	return nil
}

// loginFailed answers a failed login; too many end the session.
func (ss *session) loginFailed(msg string) error {
	ss.fails++
	ss.reply("-ERR %s", msg)
	if ss.fails >= maxAuthFailures {
		ss.reply("-ERR too many failed logins, closing")
		return errClose
	}
	return nil
}

// login checks a login name and password and, if Auth accepts them,
// takes the account's maildrop (TRANSACTION state).
func (ss *session) login(name, password string) error {
	user, account := ss.s.splitLogin(name)
	if err := ss.s.o.Auth(ss.raw.RemoteAddr(), user, password); err != nil {
		ss.log.Info("pop3d: login failed", "user", user, "err", err)
		return ss.loginFailed("[AUTH] invalid login name or password")
	}
	if !ss.s.lock(account) {
		ss.log.Info("pop3d: maildrop in use", "account", account)
		ss.reply("-ERR [IN-USE] the maildrop is in use by another session")
		return nil
	}
	md, err := ss.s.snapshot(ss.s.ctx, account)
	if err != nil {
		ss.s.unlock(account)
		ss.log.Error("pop3d: cannot open the maildrop", "account", account, "err", err)
		ss.reply("-ERR [SYS/TEMP] cannot open the maildrop now, try again later")
		return nil
	}
	ss.md, ss.bad = md, 0
	ss.log = ss.log.With("account", account)
	n, size := md.counts()
	ss.log.Debug("pop3d: logged in", "user", user, "messages", n)
	ss.reply("+OK %d messages (%d octets)", n, size)
	return nil
}
