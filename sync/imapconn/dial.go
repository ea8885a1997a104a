package imapconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/sync/nethint"
)

// Endpoint says how to reach and log in to the upstream server.
type Endpoint struct {
	Addr      string      // host:port
	TLS       TLSMode     // zero: TLSImplicit
	TLSConfig *tls.Config // base of nethint.TLSConfig(Addr, ...); nil: the system roots
	Username  string
	Password  string
	// Token, when set, signs in with an OAuth2 access token instead of
	// Password: AUTHENTICATE OAUTHBEARER or XOAUTH2, whichever the server
	// offers (OAUTHBEARER first). It is called at each sign-in, and once
	// more when the server refuses the token (see signin.go).
	Token func(ctx context.Context) (string, error)
	// Debug, if set, receives the raw protocol traffic. It contains the
	// password: never enable it in production logs. It is written to by
	// a connection's reader and writer at once (go-imap's, and the
	// uploader's when several uploads are under way): it must be safe
	// for concurrent use.
	Debug io.Writer
	// LiteralTimeout is how long the reading of a message body (or the
	// writing of an upload) may go without a byte moving; 0: 5 minutes.
	// Every other wait on the server is bounded by 30 s without a byte
	// (see progressConn).
	LiteralTimeout time.Duration
	// Unilateral, when set, receives the server's unilateral data
	// (EXISTS, EXPUNGE, FETCH outside a command: what an IDLE connection
	// is told; see IdleWatcher). Its Mailbox and Expunge callbacks run on
	// go-imap's reader goroutine and must not block.
	Unilateral *imapclient.UnilateralDataHandler
}

// dialTimeout bounds the TCP connect and the TLS handshake.
const dialTimeout = 30 * time.Second

// Dial connects and logs in. Errors are one readable line (see ConnError).
func (e *Endpoint) Dial(ctx context.Context) (*imapclient.Client, error) {
	mode, err := ParseTLSMode(string(e.TLS))
	if err != nil {
		return nil, &ConnError{Addr: e.Addr, Op: "connect", Err: err}
	}
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := func() {}
	if mode.plain() {
		// A plain-text greeting from a port that speaks TLS never comes
		// (the server waits for our handshake): say so within seconds.
		stopWatch = nethint.WatchTLSPort(gctx, e.Addr, cancel)
	}
	defer stopWatch()
	greetErr := func(err error) error {
		var tlsPort *nethint.SpeaksTLSError
		var noGreeting *nethint.NoGreetingError
		var refused *imap.Error
		switch {
		case errors.As(context.Cause(gctx), &tlsPort) && ctx.Err() == nil:
			err = tlsPort
		case errors.As(context.Cause(gctx), &noGreeting) && ctx.Err() == nil:
			err = noGreeting
		case mode == TLSStartTLS && errors.As(err, &refused) && refused.Type != imap.StatusResponseTypeBye:
			// A NO or BAD to STARTTLS (a BYE is the greeting's).
			return &ConnError{Addr: e.Addr, Op: "STARTTLS", Err: err, refusal: true}
		case mode.plain() && ctx.Err() == nil && lost(err) && nethint.SpeaksTLS(ctx, e.Addr):
			// go-imap's STARTTLS is sent before the greeting is read:
			// a TLS port closes the connection at once.
			err = &nethint.SpeaksTLSError{Addr: e.Addr}
		}
		return &ConnError{Addr: e.Addr, Op: "connect", Err: err}
	}
	// The greeting's wait starts once the connection is open (with
	// implicit TLS, its handshake done): go-imap reads the greeting of a
	// STARTTLS connection inside connect.
	stopWait := func() {}
	defer func() { stopWait() }()
	c, err := e.connect(gctx, mode, func() { stopWait = nethint.WatchGreeting(e.Addr, cancel) })
	if err != nil {
		return nil, greetErr(err)
	}
	stop := context.AfterFunc(gctx, func() { c.Close() })
	defer stop()
	err = c.WaitGreeting()
	stopWait()
	stopWatch()
	if err != nil {
		c.Close()
		return nil, greetErr(err)
	}
	if err := e.signIn(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connect dials the server and hands go-imap the connection (see open);
// opened is called once the connection is open, before the greeting is
// read.
func (e *Endpoint) connect(ctx context.Context, mode TLSMode, opened func()) (*imapclient.Client, error) {
	opts := &imapclient.Options{TLSConfig: nethint.TLSConfig(e.Addr, e.TLSConfig), DebugWriter: e.Debug, UnilateralDataHandler: e.Unilateral}
	conn, err := e.open(ctx, mode, opts.TLSConfig)
	if err != nil {
		return nil, err
	}
	opened()
	if mode == TLSStartTLS {
		// It reads the greeting and upgrades before it returns: ctx's
		// end (no greeting, a TLS port) must end that wait.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		return imapclient.NewStartTLS(conn, opts)
	}
	return imapclient.New(conn, opts), nil
}

// open dials the server: a TCP connection wrapped in a progressConn (TLS
// runs over it, so its deadlines count TLS's bytes) and, for implicit
// TLS, the handshake with cfg done. The connect and the handshake are
// bounded by dialTimeout.
func (e *Endpoint) open(ctx context.Context, mode TLSMode, cfg *tls.Config) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return nil, err
	}
	conn := &progressConn{Conn: raw, literalIdle: e.LiteralTimeout}
	if mode != TLSImplicit {
		return conn, nil
	}
	cfg = cfg.Clone()
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"imap"}
	}
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// lost reports whether err says the connection is gone.
func lost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrConnLost)
}

// DialRetry dials, retrying temporary failures (see ConnError.Permanent)
// but for a missing greeting (nethint.NoGreetingError) with exponential
// backoff (1 s, 2 s, 4 s, ...) up to attempts times; log is told of each
// retry.
func (e *Endpoint) DialRetry(ctx context.Context, attempts int, log func(msg string, args ...any)) (*imapclient.Client, error) {
	delay := time.Second
	for i := 1; ; i++ {
		c, err := e.Dial(ctx)
		if err == nil {
			return c, nil
		}
		// A server that held the connection silent for GreetingWait is
		// not tried again in this run: its next greeting would cost as
		// long (the agent's backoff tries it later).
		var silent *nethint.NoGreetingError
		if i >= attempts || ctx.Err() != nil || nethint.Permanent(err) || errors.As(err, &silent) {
			return nil, err
		}
		log("connect failed, retrying", "attempt", i, "in", delay, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		delay *= 2
	}
}

// logoutWait bounds the wait for the answer to a LOGOUT.
const logoutWait = 2 * time.Second

// Logout ends a session and closes the connection. It says LOGOUT only
// while ctx is live, and returns once the command is sent: the answer is
// waited for in the background, at most logoutWait, so that a run ends a
// round trip sooner and a server that never answers holds nobody up. The
// connection is closed without waiting for go-imap's reader: Client.Close
// waits for it, and it waits forever for a FETCH literal nobody reads.
func Logout(ctx context.Context, c *imapclient.Client) {
	if ctx.Err() != nil {
		go c.Close()
		return
	}
	cmd := c.Logout()
	go func() {
		t := time.AfterFunc(logoutWait, func() { go c.Close() })
		cmd.Wait()
		t.Stop()
		go c.Close()
	}()
}
