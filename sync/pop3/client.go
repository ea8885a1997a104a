package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postfach/postfach/sync/nethint"
)

// TLSMode says how a connection is secured.
type TLSMode string

const (
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (port 995)
	TLSStartTLS TLSMode = "starttls" // plain, then STLS before login (port 110)
	TLSNone     TLSMode = "none"     // no TLS: for loopback and tests
)

// Options configure a Client. A nil *Options means all defaults.
type Options struct {
	// TLS is how the connection is secured. Dial defaults to TLSImplicit.
	// NewClient uses the connection as given unless TLS is TLSStartTLS, in
	// which case it upgrades it with STLS after the greeting.
	TLS TLSMode

	// TLSConfig is used for implicit TLS and STLS. Default: the system roots,
	// TLS 1.2 or later. Dial fills in ServerName from its address when empty;
	// NewClient with STLS needs ServerName (or InsecureSkipVerify) set.
	TLSConfig *tls.Config

	// Timeout bounds each wait for the network: every write of a command and
	// every read of a reply or a message body must make progress within it.
	// It also bounds connecting and the TLS handshake. Default 60s; negative
	// means no limit.
	Timeout time.Duration

	// PipelineDepth is how many commands RetrMany, TopMany and DeleMany
	// keep in flight when the server advertises PIPELINING. Default 16; 1
	// turns pipelining off.
	PipelineDepth int

	// Logger receives connection events and warnings (such as UIDs that
	// break RFC 1939), never message contents or passwords. Default: none.
	Logger *slog.Logger

	// Debug, if set, receives a copy of the raw traffic in both directions,
	// after TLS decryption. It contains passwords (USER/PASS, AUTH PLAIN)
	// and whole messages: never point it at a shared log.
	Debug io.Writer
}

const (
	defaultTimeout       = 60 * time.Second
	defaultPipelineDepth = 16
	maxLine              = 8 << 10  // longest status or listing line, CRLF excluded
	bufSize              = 32 << 10 // read buffer; bounds the memory of a transfer
	maxCommand           = 255      // RFC 2449: longest command line, CRLF included
	maxListing           = 1 << 21  // most lines in a LIST or UIDL listing
	maxReplyBytes        = 64 << 20 // most bytes in any multi-line reply but a message
	maxCapaLines         = 1000
)

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Timeout == 0 {
		out.Timeout = defaultTimeout
	} else if out.Timeout < 0 {
		out.Timeout = 0
	}
	if out.PipelineDepth <= 0 {
		out.PipelineDepth = defaultPipelineDepth
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// Client is one POP3 session. See the package documentation for the rules:
// one command at a time, bodies read or closed before the next command.
type Client struct {
	opts     Options
	log      *slog.Logger
	state    *abortState
	br       *bufio.Reader
	bw       *bufio.Writer
	conn     net.Conn // the current connection (TLS after STLS), unwrapped
	greeting string
	isTLS    bool

	caps  Caps        // cached CAPA reply; nil until asked or after a state change
	body  *bodyReader // the body of a RETR or TOP not yet consumed
	batch bool        // inside RetrMany, TopMany or DeleMany
	err   error       // the first fatal error; the connection is closed

	closed atomic.Bool
}

// Dial connects to addr ("host:port"), secures the connection as
// opts.TLS says (implicit TLS by default) and reads the greeting. ctx bounds
// the whole of it.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	o := opts.withDefaults()
	if o.TLS == "" {
		o.TLS = TLSImplicit
	}
	if err := checkMode(o.TLS); err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pop3: address %q: %w", addr, err)
	}
	if o.TLS != TLSNone {
		o.TLSConfig = nethint.TLSConfig(host, o.TLSConfig)
	}

	d := net.Dialer{Timeout: o.Timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	conn := raw
	if o.TLS == TLSImplicit {
		tc := tls.Client(raw, o.TLSConfig)
		if err := handshake(ctx, raw, tc, o.Timeout); err != nil {
			raw.Close()
			return nil, fmt.Errorf("pop3: TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	c, err := newClient(ctx, raw, conn, o)
	if err != nil {
		return nil, err
	}
	c.log.Debug("pop3 connected", "addr", addr, "tls", string(o.TLS))
	return c, nil
}

// NewClient starts a session on an open connection: it reads the greeting
// and, when opts.TLS is TLSStartTLS, upgrades the connection with STLS.
// Otherwise the connection is used as it is: for implicit TLS, pass a
// *tls.Conn. The Client owns conn from now on, also when NewClient fails.
func NewClient(conn net.Conn, opts *Options) (*Client, error) {
	o := opts.withDefaults()
	if o.TLS != "" {
		if err := checkMode(o.TLS); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if o.TLS == TLSStartTLS && (o.TLSConfig == nil || (o.TLSConfig.ServerName == "" && !o.TLSConfig.InsecureSkipVerify)) {
		conn.Close()
		return nil, errors.New("pop3: STLS needs Options.TLSConfig with ServerName set")
	}
	return newClient(context.Background(), conn, conn, o)
}

func checkMode(m TLSMode) error {
	switch m {
	case TLSImplicit, TLSStartTLS, TLSNone:
		return nil
	}
	// A setting to change: permanent (see nethint.Permanent).
	return &nethint.PermanentError{Err: fmt.Errorf("pop3: unknown TLS mode %q (want implicit, starttls or none)", string(m))}
}

// handshake runs the TLS handshake on tc within timeout and ctx.
func handshake(ctx context.Context, raw net.Conn, tc *tls.Conn, timeout time.Duration) error {
	if timeout > 0 {
		_ = raw.SetDeadline(time.Now().Add(timeout))
	}
	err := tc.HandshakeContext(ctx)
	_ = raw.SetDeadline(time.Time{})
	return err
}

// newClient reads the greeting on conn, which runs over raw, and does STLS
// if asked to.
func newClient(ctx context.Context, raw, conn net.Conn, o Options) (*Client, error) {
	c := &Client{opts: o, log: o.Logger, state: &abortState{raw: raw}}
	c.setConn(conn)
	_, c.isTLS = conn.(*tls.Conn)

	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := c.state.watch(gctx)
	defer stop()
	stopWait := nethint.WatchGreeting(raw.RemoteAddr().String(), cancel)
	text, err := c.status("greeting")
	stopWait()
	if err != nil {
		c.closeConn()
		var noGreeting *nethint.NoGreetingError
		if errors.As(context.Cause(gctx), &noGreeting) && ctx.Err() == nil {
			return nil, noGreeting
		}
		return nil, err
	}
	c.greeting = text
	if o.TLS == TLSStartTLS {
		if err := c.startTLS(); err != nil {
			c.closeConn()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	nc := &netConn{Conn: conn, timeout: c.opts.Timeout, debug: c.opts.Debug, state: c.state}
	c.br = bufio.NewReaderSize(nc, bufSize)
	c.bw = bufio.NewWriterSize(nc, 1024)
}

// Greeting returns the text of the server's greeting, after "+OK ".
func (c *Client) Greeting() string { return c.greeting }

// TLS reports whether the session runs over TLS (implicit or after STLS).
func (c *Client) TLS() bool { return c.isTLS }

// Close closes the connection without QUIT, so the server deletes nothing.
// It may be called from any goroutine, also to abort a command in progress,
// and more than once.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.state.raw.Close()
}

func (c *Client) closeConn() {
	if !c.closed.Swap(true) {
		c.state.raw.Close()
	}
}

// check returns why no command may be sent now, if anything.
func (c *Client) check(cmd string) error {
	if c.err != nil {
		return &opError{cmd: cmd, what: "not sent, the session ended earlier", err: c.err}
	}
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.state.err(); err != nil {
		return c.fail(cmd, err)
	}
	if c.body != nil {
		return ErrBodyOpen
	}
	if c.batch {
		return fmt.Errorf("pop3: %s: not sent, RetrMany, TopMany or DeleMany is in progress", cmd)
	}
	return nil
}

// fail records a fatal error for cmd, closes the connection and returns the
// error. Network errors caused by a cancelled context or by Close are
// reported as such.
func (c *Client) fail(cmd string, err error) error {
	if c.err != nil {
		return c.err
	}
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
	case c.state.err() != nil:
		err = &opError{cmd: cmd, err: c.state.err()}
	case c.closed.Load():
		err = &opError{cmd: cmd, err: ErrClosed}
	case errors.Is(err, io.EOF):
		err = &opError{cmd: cmd, what: "server closed the connection", err: io.ErrUnexpectedEOF}
	default:
		err = &opError{cmd: cmd, err: err}
	}
	c.err = err
	c.closeConn()
	return err
}

// opError is a fatal error during one command.
type opError struct {
	cmd, what string
	err       error
}

func (e *opError) Error() string {
	s := "pop3: " + e.cmd + ": "
	if e.what != "" {
		s += e.what + ": "
	}
	return s + strings.TrimPrefix(e.err.Error(), "pop3: ")
}

func (e *opError) Unwrap() error { return e.err }

func protoErr(cmd, msg, line string) *ProtocolError {
	if len(line) > 100 {
		line = line[:100] + "..."
	}
	return &ProtocolError{Command: cmd, Msg: msg, Line: line}
}

// send writes one command line into the write buffer. args must not carry
// line breaks; the caller checks user input with checkArg.
func (c *Client) send(cmd, line string) error {
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return c.fail(cmd, err)
	}
	return nil
}

func (c *Client) flush(cmd string) error {
	if err := c.bw.Flush(); err != nil {
		return c.fail(cmd, err)
	}
	return nil
}

// checkArg refuses an argument that would break the command line.
func checkArg(cmd, what, arg string) error {
	if arg == "" || strings.ContainsAny(arg, "\r\n\x00") {
		return fmt.Errorf("pop3: %s: %s is empty or contains a line break or NUL", cmd, what)
	}
	return nil
}

// cmd sends one command and reads its status line. shown is the command as
// errors and logs show it (without secrets).
func (c *Client) cmd(shown, line string) (string, error) {
	if err := c.check(shown); err != nil {
		return "", err
	}
	if len(line)+2 > maxCommand {
		return "", fmt.Errorf("pop3: %s: command longer than %d octets", shown, maxCommand)
	}
	if err := c.send(shown, line); err != nil {
		return "", err
	}
	if err := c.flush(shown); err != nil {
		return "", err
	}
	return c.status(shown)
}

// readLine reads one line of a status reply or a listing, without its line
// end (CRLF, or a bare LF from a sloppy server).
func (c *Client) readLine(cmd string) (string, error) {
	b, err := c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || len(b) > maxLine+2:
		return "", c.fail(cmd, protoErr(cmd, fmt.Sprintf("line longer than %d bytes", maxLine), string(b)))
	case err != nil:
		return "", c.fail(cmd, err)
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return string(b), nil
}

// status reads a status line. A -ERR becomes *Error; anything but +OK and
// -ERR is fatal.
func (c *Client) status(cmd string) (string, error) {
	line, err := c.readLine(cmd)
	if err != nil {
		return "", err
	}
	kind, text, err := parseStatus(line)
	if err != nil || kind == statusCont {
		return "", c.fail(cmd, protoErr(cmd, "malformed status line", line))
	}
	if kind == statusErr {
		return "", &Error{Command: cmd, Reply: text, Code: responseCode(text)}
	}
	return text, nil
}

// multiLine reads the lines of a multi-line reply up to the terminating
// ".", undoing the dot-stuffing, and hands each to fn. An error from fn is
// a protocol error: the reply cannot be trusted, so the session ends.
//
// A reply longer than maxLines lines or maxReplyBytes bytes (say, a UIDL
// listing that never ends) is a protocol error: what it holds is kept in
// memory, and is bounded.
func (c *Client) multiLine(cmd string, maxLines int, fn func(line string) error) error {
	size := 0
	for n := 0; ; n++ {
		line, err := c.readLine(cmd)
		if err != nil {
			return err
		}
		if size += len(line) + 2; size > maxReplyBytes {
			return c.fail(cmd, protoErr(cmd, fmt.Sprintf("reply longer than %d bytes", maxReplyBytes), ""))
		}
		if strings.HasPrefix(line, ".") {
			if line == "." {
				return nil
			}
			line = line[1:]
		}
		if n >= maxLines {
			return c.fail(cmd, protoErr(cmd, fmt.Sprintf("reply longer than %d lines", maxLines), ""))
		}
		if err := fn(line); err != nil {
			return c.fail(cmd, protoErr(cmd, err.Error(), line))
		}
	}
}

// withContext runs fn with the connection aborted when ctx is done.
func (c *Client) withContext(ctx context.Context, fn func() error) error {
	stop := c.state.watch(ctx)
	defer stop()
	return fn()
}
