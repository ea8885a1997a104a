package imapsync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/sync/nethint"
)

// Endpoint says how to reach and log in to the upstream server.
type Endpoint struct {
	Addr      string      // host:port
	TLS       string      // "implicit" (default), "starttls" or "none"
	TLSConfig *tls.Config // nil: system roots, ServerName from Addr
	Username  string
	Password  string
	// Debug, if set, receives the raw protocol traffic. It contains the
	// password: never enable it in production logs.
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
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := func() {}
	if e.TLS == "starttls" || e.TLS == "none" {
		// A plain-text greeting from a port that speaks TLS never comes
		// (the server waits for our handshake): say so within seconds.
		stopWatch = nethint.WatchTLSPort(gctx, e.Addr, cancel)
	}
	defer stopWatch()
	greetErr := func(err error) error {
		var tlsPort *nethint.SpeaksTLSError
		switch {
		case errors.As(context.Cause(gctx), &tlsPort) && ctx.Err() == nil:
			err = tlsPort
		case (e.TLS == "starttls" || e.TLS == "none") && ctx.Err() == nil && isConnErr(err) && nethint.SpeaksTLS(ctx, e.Addr):
			// go-imap's STARTTLS is sent before the greeting is read:
			// a TLS port closes the connection at once.
			err = &nethint.SpeaksTLSError{Addr: e.Addr}
		}
		return &ConnError{Addr: e.Addr, Op: "connect", Err: err}
	}
	c, err := e.connect(gctx)
	if err != nil {
		return nil, greetErr(err)
	}
	stop := context.AfterFunc(gctx, func() { c.Close() })
	defer stop()
	err = c.WaitGreeting()
	stopWatch()
	if err != nil {
		c.Close()
		return nil, greetErr(err)
	}
	if err := c.Login(e.Username, e.Password).Wait(); err != nil {
		c.Close()
		return nil, &ConnError{Addr: e.Addr, Op: "login as " + e.Username, Err: err}
	}
	return c, nil
}

// connect dials the server and hands go-imap the connection, wrapped in a
// progressConn (TLS runs over it, so its deadlines count TLS's bytes).
func (e *Endpoint) connect(ctx context.Context) (*imapclient.Client, error) {
	opts := &imapclient.Options{TLSConfig: e.TLSConfig, DebugWriter: e.Debug, UnilateralDataHandler: e.Unilateral}
	host, _, _ := net.SplitHostPort(e.Addr)
	if opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	} else if opts.TLSConfig.ServerName == "" {
		// As go-imap's DialTLS and DialStartTLS do: the name to verify.
		opts.TLSConfig = opts.TLSConfig.Clone()
		opts.TLSConfig.ServerName = host
	}
	switch e.TLS {
	case "", "implicit", "starttls", "none":
	default:
		return nil, fmt.Errorf("unknown tls mode %q", e.TLS)
	}
	d := &net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return nil, err
	}
	conn := &progressConn{Conn: raw, literalIdle: e.LiteralTimeout}
	switch e.TLS {
	case "", "implicit":
		cfg := opts.TLSConfig.Clone()
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
		return imapclient.New(tc, opts), nil
	case "starttls":
		return imapclient.NewStartTLS(conn, opts)
	}
	return imapclient.New(conn, opts), nil
}

// ConnError is a failure to connect to or log in to the server.
type ConnError struct {
	Addr string
	Op   string
	Err  error
}

func (e *ConnError) Unwrap() error { return e.Err }

func (e *ConnError) Error() string {
	return fmt.Sprintf("%s: %s failed: %s", e.Addr, e.Op, describe(e.Err))
}

// Temporary reports whether retrying later may help (network trouble), as
// opposed to a wrong password or an untrusted certificate.
func (e *ConnError) Temporary() bool {
	var imapErr *imap.Error
	if errors.As(e.Err, &imapErr) {
		return imapErr.Code == imap.ResponseCodeUnavailable || imapErr.Code == imap.ResponseCodeInUse
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var tlsPort *nethint.SpeaksTLSError
	if errors.As(e.Err, &tlsPort) || errors.As(e.Err, &certErr) || errors.As(e.Err, &unknownAuth) || errors.As(e.Err, &hostErr) || errors.As(e.Err, &invalid) {
		return false
	}
	return true
}

// describe turns library errors into the one clear line a user needs
// (network, DNS and TLS failures are worded by nethint, as for POP3).
func describe(err error) string {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		if imapErr.Code == imap.ResponseCodeAuthenticationFailed {
			return "authentication failed (wrong user name or password?): " + imapErr.Text
		}
		return strings.TrimSpace(fmt.Sprintf("server said %s %s", imapErr.Type, imapErr.Text))
	}
	if line, ok := nethint.Describe(err); ok {
		return line
	}
	return err.Error()
}

// DialRetry dials, retrying temporary failures (see ConnError.Temporary)
// with exponential backoff (1 s, 2 s, 4 s, ...) up to attempts times; log
// is told of each retry.
func (e *Endpoint) DialRetry(ctx context.Context, attempts int, log func(msg string, args ...any)) (*imapclient.Client, error) {
	delay := time.Second
	for i := 1; ; i++ {
		c, err := e.Dial(ctx)
		if err == nil {
			return c, nil
		}
		var ce *ConnError
		if i >= attempts || ctx.Err() != nil || (errors.As(err, &ce) && !ce.Temporary()) {
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
// while ctx is live and waits for the answer at most logoutWait (or until
// ctx ends): a server that never answers holds no run up. The connection
// is closed without waiting for go-imap's reader (see abort).
func Logout(ctx context.Context, c *imapclient.Client) {
	if ctx.Err() == nil {
		stop := context.AfterFunc(ctx, func() { go c.Close() })
		t := time.AfterFunc(logoutWait, func() { go c.Close() })
		c.Logout().Wait()
		t.Stop()
		stop()
	}
	go c.Close()
}
