package imapsync

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Uploads with MULTIAPPEND (RFC 3502): many messages in one APPEND
// command, which a server stores in one transaction. Dovecot spends about a
// quarter of the CPU time on 25 messages appended that way that it spends
// on 25 APPEND commands (it opens the mailbox, locks its UID list and
// updates its index once, not 25 times), and the server's CPU is most of
// what an incremental sync waits for.
//
// go-imap's client has no MULTIAPPEND and no way to send a raw command, so
// the uploader is a small client of its own on a second connection, used
// only where the server has MULTIAPPEND and LITERAL+ (then every command
// goes out in one piece and the only answers to read are lines, untagged
// and tagged). It logs in as Endpoint.Dial does. A refused command is sent
// again one message per command, to find the message the server refuses
// (see multiAppend); a server without MULTIAPPEND and LITERAL+, or an
// uploader that cannot connect, gets one APPEND per message on the
// workers' own connections (appendEach).

// Uploader is one MULTIAPPEND connection; its methods are safe for
// concurrent use (commands are sent one at a time). sync/migrate uses it
// too.
type Uploader struct {
	mu      sync.Mutex
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	debug   io.Writer
	tag     int
	uidPlus bool
	broken  error         // set when the connection can no longer be used
	dead    atomic.Bool   // broken, readable without waiting for mu
	timeout time.Duration // bounds each read and write; 0: uploadTimeout
}

// UploadMsg is one message of a MULTIAPPEND.
type UploadMsg struct {
	Flags []imap.Flag
	Date  time.Time             // the internal date; zero: the server's time
	Size  int64                 // bytes on the wire (CRLF line ends)
	Write func(io.Writer) error // writes exactly Size bytes
}

// uploadTimeout bounds each read and write of the uploader.
const uploadTimeout = 2 * time.Minute

// DialUploader connects and logs in for MULTIAPPEND. It fails (and the
// caller keeps to plain APPEND) unless the server has MULTIAPPEND and
// LITERAL+.
func (e *Endpoint) DialUploader(ctx context.Context) (*Uploader, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	host, _, _ := net.SplitHostPort(e.Addr)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if e.TLSConfig != nil {
		cfg = e.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host // as go-imap does: tls.Client needs it
		}
	}
	var conn net.Conn
	var err error
	switch e.TLS {
	case "", "implicit":
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", e.Addr)
	case "starttls", "none":
		conn, err = d.DialContext(ctx, "tcp", e.Addr)
	default:
		return nil, fmt.Errorf("unknown tls mode %q", e.TLS)
	}
	if err != nil {
		return nil, &ConnError{Addr: e.Addr, Op: "connect", Err: err}
	}
	u := &Uploader{conn: conn, debug: e.Debug}
	u.setConn(conn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fail := func(op string, err error) (*Uploader, error) {
		u.conn.Close()
		return nil, &ConnError{Addr: e.Addr, Op: op, Err: err}
	}
	greeting, err := u.readLine()
	if err != nil {
		return fail("connect", err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return fail("connect", fmt.Errorf("unexpected greeting %q", greeting))
	}
	if e.TLS == "starttls" {
		if _, err := u.command(func(w *bufio.Writer) { w.WriteString("STARTTLS") }); err != nil {
			return fail("STARTTLS", err)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("STARTTLS", err)
		}
		u.setConn(tc)
	}
	caps, err := u.capabilities()
	if err != nil {
		return fail("connect", err)
	}
	literalPlus := caps[string(imap.CapLiteralPlus)]
	if !literalPlus && (!quotable(e.Username) || !quotable(e.Password)) {
		u.conn.Close()
		return nil, ErrNoMultiAppend
	}
	if _, err := u.command(func(w *bufio.Writer) {
		w.WriteString("LOGIN ")
		writeAString(w, e.Username, literalPlus)
		w.WriteByte(' ')
		writeAString(w, e.Password, literalPlus)
	}); err != nil {
		return fail("login as "+e.Username, err)
	}
	// Servers tell most of their capabilities only after login.
	if caps, err = u.capabilities(); err != nil {
		return fail("connect", err)
	}
	if !caps[string(imap.CapLiteralPlus)] || !caps[string(imap.CapMultiAppend)] {
		u.Close()
		return nil, ErrNoMultiAppend
	}
	u.uidPlus = caps[string(imap.CapUIDPlus)]
	return u, nil
}

// ErrNoMultiAppend: the server lacks MULTIAPPEND or LITERAL+.
var ErrNoMultiAppend = errors.New("server has no MULTIAPPEND with LITERAL+")

func (u *Uploader) setConn(c net.Conn) {
	u.conn = c
	var r io.Reader = c
	var w io.Writer = c
	if u.debug != nil {
		r = io.TeeReader(c, u.debug)
		w = io.MultiWriter(c, u.debug)
	}
	u.br = bufio.NewReaderSize(r, 16<<10)
	u.bw = bufio.NewWriterSize(w, 64<<10)
}

func (u *Uploader) capabilities() (map[string]bool, error) {
	var caps map[string]bool
	_, err := u.commandUntagged(func(w *bufio.Writer) { w.WriteString("CAPABILITY") }, func(line string) {
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			caps = map[string]bool{}
			for _, c := range strings.Fields(rest) {
				caps[strings.ToUpper(c)] = true
			}
		}
	})
	if err == nil && caps == nil {
		err = errors.New("no CAPABILITY answer")
	}
	return caps, err
}

// AppendMany appends msgs to mailbox (its UTF-8 name) in one command and
// returns the UIDs the server gave them, in order, or nil without UIDPLUS.
// An *imap.Error is the server's refusal (nothing was appended); any other
// error leaves the connection unusable and whether the messages arrived
// unknown.
func (u *Uploader) AppendMany(ctx context.Context, mailbox string, msgs []UploadMsg) ([]uint32, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.broken != nil {
		return nil, u.broken
	}
	stop := context.AfterFunc(ctx, func() { u.conn.Close() })
	defer stop()
	var werr error
	text, err := u.command(func(w *bufio.Writer) {
		w.WriteString("APPEND ")
		w.WriteString(quoteMailbox(mailbox))
		for _, m := range msgs {
			w.WriteString(" (")
			for i, f := range m.Flags {
				if i > 0 {
					w.WriteByte(' ')
				}
				w.WriteString(string(f))
			}
			w.WriteString(")")
			if !m.Date.IsZero() {
				w.WriteString(" \"")
				w.WriteString(m.Date.Format("02-Jan-2006 15:04:05 -0700"))
				w.WriteString("\"")
			}
			fmt.Fprintf(w, " {%d+}\r\n", m.Size)
			if err := m.Write(w); err != nil && werr == nil {
				werr = err
			}
		}
	})
	if werr != nil {
		u.broken = werr
		u.dead.Store(true)
		u.conn.Close()
		return nil, werr
	}
	if u.broken != nil {
		u.dead.Store(true)
	}
	if err != nil {
		return nil, err
	}
	if !u.uidPlus {
		return nil, nil
	}
	uids, ok := parseAppendUID(text, len(msgs))
	if !ok || len(uids) != len(msgs) {
		return nil, nil // no usable APPENDUID: the intents stay, the next run matches by content
	}
	return uids, nil
}

// Close logs out (briefly) and closes the connection.
func (u *Uploader) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.broken == nil {
		// A server that does not answer LOGOUT holds nobody up for long.
		u.timeout = 2 * time.Second
		u.command(func(w *bufio.Writer) { w.WriteString("LOGOUT") })
	}
	u.broken = net.ErrClosed
	u.conn.Close()
}

// command sends one command (build writes it without tag and CRLF) and
// reads up to its tagged answer, which it returns (the text after "OK").
func (u *Uploader) command(build func(w *bufio.Writer)) (string, error) {
	return u.commandUntagged(build, nil)
}

func (u *Uploader) commandUntagged(build func(w *bufio.Writer), untagged func(line string)) (string, error) {
	if u.broken != nil {
		return "", u.broken
	}
	u.tag++
	tag := "U" + strconv.Itoa(u.tag)
	timeout := u.timeout
	if timeout == 0 {
		timeout = uploadTimeout
	}
	u.conn.SetDeadline(time.Now().Add(timeout))
	u.bw.WriteString(tag)
	u.bw.WriteByte(' ')
	build(u.bw)
	u.bw.WriteString("\r\n")
	if err := u.bw.Flush(); err != nil {
		u.broken = fmt.Errorf("%w: %w", errConn, err)
		return "", u.broken
	}
	for {
		u.conn.SetDeadline(time.Now().Add(timeout))
		line, err := u.readLine()
		if err != nil {
			u.broken = fmt.Errorf("%w: %w", errConn, err)
			return "", u.broken
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			if strings.HasPrefix(line, "* BYE") {
				u.broken = fmt.Errorf("%w: server said %s", errConn, line[2:])
				return "", u.broken
			}
			if untagged != nil {
				untagged(line)
			}
			continue // untagged data, or a continuation we do not need
		}
		status, text, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(status) {
		case "OK":
			return text, nil
		case "NO":
			return "", statusError(imap.StatusResponseTypeNo, text)
		default:
			return "", statusError(imap.StatusResponseTypeBad, text)
		}
	}
}

// statusError is a NO or BAD answer as go-imap reports it: the response
// code ("[AUTHENTICATIONFAILED] ...") apart from the text.
func statusError(typ imap.StatusResponseType, text string) *imap.Error {
	e := &imap.Error{Type: typ, Text: text}
	if rest, ok := strings.CutPrefix(text, "["); ok {
		if end := strings.IndexByte(rest, ']'); end >= 0 {
			code, _, _ := strings.Cut(rest[:end], " ")
			e.Code = imap.ResponseCode(strings.ToUpper(code))
			e.Text = strings.TrimSpace(rest[end+1:])
		}
	}
	return e
}

// readLine reads one response line without its CRLF. A literal inside it
// ("{n}" at the end of a piece) is read and left out of the line.
func (u *Uploader) readLine() (string, error) {
	var sb strings.Builder
	for {
		piece, err := u.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		piece = strings.TrimRight(piece, "\r\n")
		if sb.Len()+len(piece) > 1<<20 {
			return "", errors.New("response line too long")
		}
		sb.WriteString(piece)
		n, ok := literalSize(piece)
		if !ok {
			return sb.String(), nil
		}
		if _, err := io.CopyN(io.Discard, u.br, n); err != nil {
			return "", err
		}
	}
}

// literalSize reports the size of the literal a line piece announces at
// its end ("{123}" or "{123+}").
func literalSize(s string) (int64, bool) {
	if !strings.HasSuffix(s, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	digits := strings.TrimSuffix(s[i+1:len(s)-1], "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false // number = 1*DIGIT: no sign
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// parseAppendUID reads "[APPENDUID <uidvalidity> <uid-set>] ..." and
// returns the UIDs in the order given. A set of more than limit UIDs (the
// messages appended) is not usable: it is refused, counted range by range
// before any range is walked (see uidset.go).
func parseAppendUID(text string, limit int) ([]uint32, bool) {
	rest, ok := strings.CutPrefix(text, "[APPENDUID ")
	if !ok {
		return nil, false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return nil, false
	}
	// resp-code-apnd = "APPENDUID" SP nz-number SP append-uid (RFC 4315)
	f := strings.Split(rest[:end], " ")
	if len(f) != 2 {
		return nil, false
	}
	if v, err := strconv.ParseUint(f[0], 10, 32); err != nil || v == 0 {
		return nil, false
	}
	type span struct{ a, b uint64 }
	var spans []span
	var n uint64
	for _, part := range strings.Split(f[1], ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil || a == 0 {
			return nil, false
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil || b < a {
				return nil, false
			}
		}
		if n += b - a + 1; n > uint64(limit) {
			return nil, false
		}
		spans = append(spans, span{a, b})
	}
	uids := make([]uint32, 0, n)
	for _, s := range spans {
		for x := s.a; x <= s.b; x++ {
			uids = append(uids, uint32(x))
		}
	}
	return uids, true
}

// writeAString writes s as a non-synchronizing literal (LITERAL+), which
// may hold any byte, or else as a quoted string (see quotable).
func writeAString(w *bufio.Writer, s string, literalPlus bool) {
	if literalPlus {
		fmt.Fprintf(w, "{%d+}\r\n%s", len(s), s)
		return
	}
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.WriteByte('\\')
		}
		w.WriteByte(s[i])
	}
	w.WriteByte('"')
}

// quotable reports whether s can be a quoted string: 7-bit, no CR, LF or NUL.
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}

// utf7Encoding is modified BASE64 of modified UTF-7: ',' for '/', no padding.
var utf7Encoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// quoteMailbox encodes a UTF-8 mailbox name in modified UTF-7 (RFC 3501
// 5.1.3) as a quoted string.
func quoteMailbox(name string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		b := make([]byte, 0, 2*len(u))
		for _, c := range u {
			b = append(b, byte(c>>8), byte(c))
		}
		sb.WriteByte('&')
		sb.WriteString(utf7Encoding.EncodeToString(b))
		sb.WriteByte('-')
		run = run[:0]
	}
	for _, r := range name {
		if r >= 0x20 && r <= 0x7e {
			flush()
			switch r {
			case '&':
				sb.WriteString("&-")
			case '"', '\\':
				sb.WriteByte('\\')
				sb.WriteRune(r)
			default:
				sb.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	sb.WriteByte('"')
	return sb.String()
}

// MULTIAPPEND commands of AppendAll: at most this many messages and bytes
// each.
const (
	multiAppendCount = 100
	multiAppendBytes = 16 << 20
)

// AppendAll appends msgs to mailbox in commands of at most
// multiAppendCount messages or multiAppendBytes. A refused command stores
// nothing; its messages are then sent one per command, so that a refusal
// is its own message's and the others go up. done is called once for each
// message, in order, with the UID the server gave it (0: unknown, no
// UIDPLUS) or the server's refusal (an *imap.Error). Any other error is
// returned and ends the upload: the connection broke, and whether its last
// command arrived is unknown, so nothing is sent again.
func (u *Uploader) AppendAll(ctx context.Context, mailbox string, msgs []UploadMsg, done func(i int, uid uint32, refused error)) error {
	send := func(first int, chunk []UploadMsg) (refused error, err error) {
		uids, err := u.AppendMany(ctx, mailbox, chunk)
		var no *imap.Error
		if errors.As(err, &no) {
			return err, nil
		}
		if err != nil {
			return nil, err
		}
		for i := range chunk {
			var uid uint32
			if uids != nil {
				uid = uids[i]
			}
			done(first+i, uid, nil)
		}
		return nil, nil
	}
	for start := 0; start < len(msgs); {
		n, bytes := 0, int64(0)
		for start+n < len(msgs) && n < multiAppendCount && (n == 0 || bytes+msgs[start+n].Size <= multiAppendBytes) {
			bytes += msgs[start+n].Size
			n++
		}
		refused, err := send(start, msgs[start:start+n])
		if err != nil {
			return err
		}
		if refused != nil && n == 1 {
			done(start, 0, refused)
		} else if refused != nil {
			for i := start; i < start+n; i++ {
				refused, err := send(i, msgs[i:i+1])
				if err != nil {
					return err
				}
				if refused != nil {
					done(i, 0, refused)
				}
			}
		}
		start += n
	}
	return nil
}

// LazyUploader is a run's MULTIAPPEND connection: dialed on first need,
// shared by the run's folders, closed at the end. Get returns nil where
// it cannot be had (Off, a server without MULTIAPPEND and LITERAL+, or a
// failed dial, not tried again); the caller then uploads with one APPEND
// per message on its own connection.
type LazyUploader struct {
	Endpoint *Endpoint
	Off      bool         // never dial: one APPEND each (Options.NoMultiAppend)
	Log      *slog.Logger // told why there is none; may be nil

	mu    sync.Mutex
	up    *Uploader
	tried bool
}

// Get returns the connection, dialing it the first time; c is a logged-in
// connection to the same server, for its capabilities.
func (l *LazyUploader) Get(ctx context.Context, c *imapclient.Client) *Uploader {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tried {
		if l.up != nil && l.up.dead.Load() {
			// It broke in another folder's upload: this folder uploads
			// on its own connection rather than fail with that error.
			return nil
		}
		return l.up
	}
	l.tried = true
	if l.Off {
		return nil
	}
	if caps := c.Caps(); !caps.Has(imap.CapMultiAppend) || !caps.Has(imap.CapLiteralPlus) {
		return nil
	}
	up, err := l.Endpoint.DialUploader(ctx)
	if err != nil {
		if l.Log != nil {
			l.Log.Info("no MULTIAPPEND connection; one APPEND each", "err", err)
		}
		return nil
	}
	l.up = up
	return up
}

// Close logs out of the connection, if it was dialed.
func (l *LazyUploader) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up != nil {
		l.up.Close()
	}
}
