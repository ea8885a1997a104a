package imapconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/sync/nethint"
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
// (AppendAll); a server without MULTIAPPEND and LITERAL+, or an uploader
// that cannot connect, gets one APPEND per message on the caller's own
// go-imap connection (LazyUploader.Get returns nil).

// Uploader is one MULTIAPPEND connection; its methods are safe for
// concurrent use. Commands are pipelined: each is written whole, one
// at a time, and its caller then waits for its answer while others
// write theirs, so the folders' uploads follow each other on the wire
// without a round trip between them. Whoever waits reads the answers
// for everyone (an answer to another's command is kept for it).
type Uploader struct {
	wmu  sync.Mutex // held while a command is written: tag, bw
	rmu  sync.Mutex // held while answers are read: br, early
	smu  sync.Mutex // broken, sent
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	tag  int

	debug   io.Writer
	uidPlus bool
	broken  error               // set when the connection can no longer be used
	dead    atomic.Bool         // broken, readable without waiting for a lock
	sent    map[string]bool     // tags written and not yet answered
	early   map[string]answered // answers read before their command's caller came for them
	timeout atomic.Int64        // time.Duration: bounds each wait; 0: uploadTimeout
	ended   bool                // under wmu: LOGOUT is sent (Close), no command goes after it

	closeOnce sync.Once
}

// answered is a command's tagged answer: the text after OK, or the
// server's refusal.
type answered struct {
	text string
	err  error
}

// UploadMsg is one message of a MULTIAPPEND.
type UploadMsg struct {
	Flags []imap.Flag
	Date  time.Time             // the internal date; zero: the server's time
	Size  int64                 // bytes on the wire (CRLF line ends)
	Write func(io.Writer) error // writes exactly Size bytes
}

// uploadTimeout bounds each wait of the uploader without a byte moving;
// Endpoint.LiteralTimeout replaces it where set (see progressConn).
const uploadTimeout = 2 * time.Minute

// DialUploader connects and logs in for MULTIAPPEND. It fails (and the
// caller keeps to plain APPEND) unless the server has MULTIAPPEND and
// LITERAL+.
func (e *Endpoint) DialUploader(ctx context.Context) (*Uploader, error) {
	mode, err := ParseTLSMode(string(e.TLS))
	if err != nil {
		return nil, &ConnError{Addr: e.Addr, Op: "connect", Err: err}
	}
	cfg := nethint.TLSConfig(e.Addr, e.TLSConfig)
	conn, err := e.open(ctx, mode, cfg)
	if err != nil {
		return nil, &ConnError{Addr: e.Addr, Op: "connect", Err: err}
	}
	u := &Uploader{conn: conn, debug: e.Debug}
	u.setConn(conn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fail := func(op string, err error) (*Uploader, error) {
		u.conn.Close()
		return nil, &ConnError{Addr: e.Addr, Op: op, Err: err, refusal: op != "connect"} // refusal: see ConnError.Permanent
	}
	conn.SetReadDeadline(time.Now().Add(nethint.GreetingWait))
	greeting, err := u.readLine()
	if err != nil {
		var te net.Error
		if errors.As(err, &te) && te.Timeout() {
			err = &nethint.NoGreetingError{Addr: e.Addr, After: nethint.GreetingWait}
		}
		return fail("connect", err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return fail("connect", fmt.Errorf("unexpected greeting %q", greeting))
	}
	// The capabilities come with the greeting and the LOGIN's answer
	// where the server puts them there (Dovecot does): each CAPABILITY
	// asked is a round trip before the first upload.
	caps := capabilityCode(strings.TrimSpace(greeting[len("* OK"):]))
	if mode == TLSStartTLS {
		if _, err := u.command(func(w *bufio.Writer) error { _, err := w.WriteString("STARTTLS"); return err }); err != nil {
			return fail("STARTTLS", err)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("STARTTLS", err)
		}
		u.setConn(tc)
		caps = nil // those told before TLS are not to be trusted (RFC 3501, 6.2.1)
	}
	if caps == nil {
		if caps, err = u.capabilities(); err != nil {
			return fail("connect", err)
		}
	}
	pre := caps
	literalPlus := pre[string(imap.CapLiteralPlus)]
	// Servers tell most of their capabilities only after login.
	caps = nil
	switch {
	case e.Token != nil:
		if err := u.signIn(ctx, e, pre); err != nil {
			return fail("sign-in as "+e.Username, err)
		}
	case !literalPlus && (!quotable(e.Username) || !quotable(e.Password)):
		u.conn.Close()
		return nil, ErrNoMultiAppend
	default:
		text, err := u.command(func(w *bufio.Writer) error {
			w.WriteString("LOGIN ")
			writeAString(w, e.Username, literalPlus)
			w.WriteByte(' ')
			writeAString(w, e.Password, literalPlus)
			return nil
		})
		if err != nil {
			return fail("login as "+e.Username, err)
		}
		caps = capabilityCode(text)
	}
	if caps == nil {
		if caps, err = u.capabilities(); err != nil {
			return fail("connect", err)
		}
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

// capabilityCode returns the capabilities of a status text that begins
// with a CAPABILITY response code ("[CAPABILITY IMAP4rev1 ...] text"),
// upper-cased, or nil.
func capabilityCode(text string) map[string]bool {
	rest, ok := strings.CutPrefix(text, "[")
	if !ok {
		return nil
	}
	code, _, ok := strings.Cut(rest, "]")
	if !ok {
		return nil
	}
	list, ok := cutPrefixFold(code, "CAPABILITY ")
	if !ok {
		return nil
	}
	return capabilitySet(list)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// capabilitySet is the set of a CAPABILITY list's names, upper-cased.
func capabilitySet(list string) map[string]bool {
	caps := map[string]bool{}
	for _, c := range strings.Fields(list) {
		caps[strings.ToUpper(c)] = true
	}
	return caps
}

func (u *Uploader) capabilities() (map[string]bool, error) {
	var caps map[string]bool
	_, err := u.commandUntagged(func(w *bufio.Writer) error { _, err := w.WriteString("CAPABILITY"); return err }, func(line string) {
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			caps = capabilitySet(rest)
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
// unknown. Calls from several goroutines are pipelined.
func (u *Uploader) AppendMany(ctx context.Context, mailbox string, msgs []UploadMsg) ([]uint32, error) {
	stop := context.AfterFunc(ctx, func() { u.conn.Close() })
	defer stop()
	text, err := u.command(func(w *bufio.Writer) error {
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
			if err := m.Write(w); err != nil {
				return err
			}
		}
		return nil
	})
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

// Close logs out and closes the connection; a second call waits for the
// first. It returns once LOGOUT is sent: the answer is waited for in the
// background (at most logoutWait), and the connection closed then, so
// that a run ends a round trip sooner. No command goes out after it. The
// run calls it once every upload is over: a command still under way
// would get its answer only within that short wait.
func (u *Uploader) Close() {
	u.closeOnce.Do(func() {
		tag, err := "", u.err()
		if err == nil {
			// A server that does not answer LOGOUT holds nobody up for long.
			u.timeout.Store(int64(logoutWait))
			tag, err = u.send(func(w *bufio.Writer) error { _, err := w.WriteString("LOGOUT"); return err })
		}
		u.wmu.Lock()
		u.ended = true
		u.wmu.Unlock()
		if err != nil {
			u.fail(net.ErrClosed)
			u.conn.Close()
			return
		}
		go func() {
			u.await(tag, nil)
			u.fail(net.ErrClosed)
			u.conn.Close()
		}()
	})
}

// err is the error that broke the connection, or nil.
func (u *Uploader) err() error {
	u.smu.Lock()
	defer u.smu.Unlock()
	return u.broken
}

// fail marks the connection broken by err (the first such error stays)
// and returns the error that broke it.
func (u *Uploader) fail(err error) error {
	u.smu.Lock()
	defer u.smu.Unlock()
	if u.broken == nil {
		u.broken = err
		u.dead.Store(true)
	}
	return u.broken
}

// wait is the bound of each wait without a byte moving.
func (u *Uploader) wait() time.Duration {
	if d := time.Duration(u.timeout.Load()); d > 0 {
		return d
	}
	return uploadTimeout
}

// command sends one command (build writes it without tag and CRLF) and
// waits for its tagged answer, whose text after "OK" it returns.
func (u *Uploader) command(build func(w *bufio.Writer) error) (string, error) {
	return u.commandUntagged(build, nil)
}

// commandUntagged is command, with untagged answer lines read meanwhile
// handed to untagged (those of any command: it serves the login, when
// only one command is under way).
func (u *Uploader) commandUntagged(build func(w *bufio.Writer) error, untagged func(line string)) (string, error) {
	tag, err := u.send(build)
	if err != nil {
		return "", err
	}
	return u.await(tag, untagged)
}

// send writes one command under a new tag, which it returns.
func (u *Uploader) send(build func(w *bufio.Writer) error) (string, error) {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	if err := u.err(); err != nil {
		return "", err
	}
	if u.ended {
		return "", net.ErrClosed
	}
	u.tag++
	tag := "U" + strconv.Itoa(u.tag)
	u.smu.Lock()
	if u.sent == nil {
		u.sent = map[string]bool{}
	}
	u.sent[tag] = true
	u.smu.Unlock()
	u.conn.SetWriteDeadline(time.Now().Add(u.wait()))
	u.bw.WriteString(tag)
	u.bw.WriteByte(' ')
	if err := build(u.bw); err != nil {
		// A command cut short (a message file that could not be read
		// to its end) would leave the server waiting for the rest of a
		// literal: the connection is given up at once. The error is this
		// caller's; the commands under way on the connection (other
		// folders' uploads) end as if it had been lost: whether the
		// server stored them is unknown.
		u.fail(fmt.Errorf("%w: given up after an upload's message could not be read", ErrConnLost))
		u.conn.Close()
		return "", err
	}
	u.bw.WriteString("\r\n")
	if err := u.bw.Flush(); err != nil {
		return "", u.fail(fmt.Errorf("%w: %w", ErrConnLost, err))
	}
	return tag, nil
}

// await reads answers until tag's, which it returns, keeping those of
// other commands sent on this connection for their callers.
func (u *Uploader) await(tag string, untagged func(line string)) (string, error) {
	u.rmu.Lock()
	defer u.rmu.Unlock()
	for {
		if a, ok := u.early[tag]; ok {
			delete(u.early, tag)
			return a.text, a.err
		}
		if err := u.err(); err != nil {
			return "", err
		}
		u.conn.SetReadDeadline(time.Now().Add(u.wait()))
		line, err := u.readLine()
		if err != nil {
			return "", u.fail(fmt.Errorf("%w: %w", ErrConnLost, err))
		}
		t, rest, _ := strings.Cut(line, " ")
		if t == "*" || t == "+" {
			if strings.HasPrefix(line, "* BYE") {
				return "", u.fail(fmt.Errorf("%w: server said %s", ErrConnLost, line[2:]))
			}
			if untagged != nil {
				untagged(line)
			}
			continue // untagged data, or a continuation we do not need
		}
		u.smu.Lock()
		ours := u.sent[t]
		delete(u.sent, t)
		u.smu.Unlock()
		if !ours {
			continue // not an answer to any command under way
		}
		status, text, _ := strings.Cut(rest, " ")
		a := answered{text: text}
		switch strings.ToUpper(status) {
		case "OK":
		case "NO":
			a = answered{err: statusError(imap.StatusResponseTypeNo, text)}
		default:
			a = answered{err: statusError(imap.StatusResponseTypeBad, text)}
		}
		if t == tag {
			return a.text, a.err
		}
		if u.early == nil {
			u.early = map[string]answered{}
		}
		u.early[t] = a
	}
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
