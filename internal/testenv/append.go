package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/postfach/postfach/internal/corpus"
)

// Limits of one MULTIAPPEND command (the batch held per folder) and of the
// pipeline.
const (
	batchMessages = 1000
	batchBytes    = 32 << 20
	maxInFlight   = 64
)

// Appender copies messages into a mailbox over IMAP, creating folders on
// first use, as fast as the server allows:
//
//   - Messages are buffered per folder and sent in one MULTIAPPEND command
//     (RFC 3502) per folder and batch when the server offers it. Dovecot
//     commits each APPEND command as one transaction whose cost grows with
//     the mailbox: 3,000 single APPENDs to one Maildir cost it 11 s of CPU,
//     the same in batches of 500 cost 0.5 s.
//   - Literals are non-synchronizing (LITERAL+) when offered, and commands
//     are pipelined.
//
// It speaks just enough IMAP for that on its own connection (go-imap's
// client has neither MULTIAPPEND nor large non-synchronizing literals).
// Messages keep their order within a folder, so UIDs follow it; across
// folders the order is not kept. Append keeps m.Raw until the batch is sent.
// Not safe for concurrent use. Errors are sticky: after one, every call
// returns it.
type Appender struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	caps    map[string]bool
	tag     int
	created map[string]bool

	pending  map[string]*batch // by folder
	order    []string          // folders with a batch, first-seen order
	inflight []string          // tags of sent commands awaiting replies
	err      error
}

type batch struct {
	msgs []corpus.Message
	size int
}

// DialAppender connects to addr over plaintext IMAP and logs in.
func DialAppender(addr, user, password string) (*Appender, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	a, err := NewAppender(conn, user, password)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return a, nil
}

// NewAppender logs in on conn, a fresh IMAP connection (plain or TLS). The
// Appender owns conn from then on: Close closes it.
func NewAppender(conn net.Conn, user, password string) (*Appender, error) {
	a := &Appender{
		conn:    conn,
		r:       bufio.NewReaderSize(conn, 64<<10),
		w:       bufio.NewWriterSize(conn, 256<<10),
		caps:    map[string]bool{},
		created: map[string]bool{"INBOX": true},
		pending: map[string]*batch{},
	}
	line, err := a.readLine()
	if err != nil {
		return nil, fmt.Errorf("testenv: IMAP greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return nil, fmt.Errorf("testenv: IMAP greeting %q", line)
	}
	if err := a.simple("LOGIN " + quote(user) + " " + quote(password)); err != nil {
		return nil, err
	}
	if err := a.simple("CAPABILITY"); err != nil {
		return nil, err
	}
	return a, nil
}

// Append queues m for its folder with its flags and internal date, and
// sends the folder's batch when it is full.
func (a *Appender) Append(m corpus.Message) error {
	if a.err != nil {
		return a.err
	}
	folder := folderName(m.Folder)
	b := a.pending[folder]
	if b == nil {
		b = &batch{}
		a.pending[folder] = b
		a.order = append(a.order, folder)
	}
	b.msgs = append(b.msgs, m)
	b.size += len(m.Raw)
	if len(b.msgs) >= batchMessages || b.size >= batchBytes {
		a.send(folder)
	}
	return a.err
}

// Flush sends every batch and waits for every reply. It returns the first
// error.
func (a *Appender) Flush() error {
	for len(a.order) > 0 && a.err == nil {
		a.send(a.order[0])
	}
	a.drain(0)
	return a.err
}

// Close flushes, logs out and closes the connection.
func (a *Appender) Close() error {
	err := a.Flush()
	if err == nil {
		err = a.simple("LOGOUT")
	}
	a.conn.Close()
	return err
}

// send writes folder's batch as one MULTIAPPEND command, or one APPEND per
// message without MULTIAPPEND, creating the folder first if needed.
func (a *Appender) send(folder string) {
	b := a.pending[folder]
	delete(a.pending, folder)
	for i, f := range a.order {
		if f == folder {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
	if !a.created[folder] {
		if err := a.simple("CREATE " + quote(encodeMUTF7(folder))); err != nil && !strings.Contains(err.Error(), "[ALREADYEXISTS]") {
			if a.err == nil {
				a.err = err
			}
			return
		}
		a.created[folder] = true
	}
	multi := a.caps["MULTIAPPEND"]
	for i, m := range b.msgs {
		if a.err != nil {
			return
		}
		if i == 0 || !multi {
			a.drain(maxInFlight - 1)
			a.tag++
			fmt.Fprintf(a.w, "A%d APPEND %s", a.tag, quote(encodeMUTF7(folder)))
		}
		a.w.WriteString(" (")
		for j, f := range m.Flags {
			if j > 0 {
				a.w.WriteByte(' ')
			}
			a.w.WriteString(string(f))
		}
		a.w.WriteString(")")
		if !m.Date.IsZero() {
			a.w.WriteString(` "` + m.Date.Format("02-Jan-2006 15:04:05 -0700") + `"`)
		}
		if a.caps["LITERAL+"] {
			fmt.Fprintf(a.w, " {%d+}\r\n", len(m.Raw))
		} else {
			fmt.Fprintf(a.w, " {%d}\r\n", len(m.Raw))
			if err := a.w.Flush(); err != nil {
				a.err = err
				return
			}
			if a.waitContinuation() != nil {
				return
			}
		}
		a.w.Write(m.Raw)
		if i == len(b.msgs)-1 || !multi {
			a.w.WriteString("\r\n")
			a.inflight = append(a.inflight, "A"+strconv.Itoa(a.tag))
		}
	}
	if err := a.w.Flush(); err != nil && a.err == nil {
		a.err = err
	}
}

// drain reads replies until at most n commands are in flight.
func (a *Appender) drain(n int) {
	if len(a.inflight) > n {
		if err := a.w.Flush(); err != nil && a.err == nil {
			a.err = err
		}
	}
	for len(a.inflight) > n && a.err == nil {
		a.readResponse()
	}
}

// simple sends one command and waits for its reply, after all before it.
func (a *Appender) simple(cmd string) error {
	if a.drain(0); a.err != nil {
		return a.err
	}
	a.tag++
	tag := "A" + strconv.Itoa(a.tag)
	fmt.Fprintf(a.w, "%s %s\r\n", tag, cmd)
	if err := a.w.Flush(); err != nil {
		a.err = err
		return err
	}
	for {
		line, err := a.readLine()
		if err != nil {
			a.err = err
			return err
		}
		a.untagged(line)
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if strings.HasPrefix(rest, "OK") {
				return nil
			}
			verb, _, _ := strings.Cut(cmd, " ")
			return fmt.Errorf("testenv: IMAP %s: %s", verb, rest)
		}
	}
}

// readResponse reads one response line and completes the oldest command
// in flight when it is its tagged reply.
func (a *Appender) readResponse() {
	line, err := a.readLine()
	if err != nil {
		a.err = fmt.Errorf("testenv: IMAP APPEND: %w", err)
		return
	}
	a.untagged(line)
	if len(a.inflight) == 0 {
		return
	}
	if rest, ok := strings.CutPrefix(line, a.inflight[0]+" "); ok {
		a.inflight = a.inflight[1:]
		if !strings.HasPrefix(rest, "OK") && a.err == nil {
			a.err = fmt.Errorf("testenv: IMAP APPEND: %s", rest)
		}
	}
}

// waitContinuation reads until the server's "+" for a synchronizing literal.
func (a *Appender) waitContinuation() error {
	for a.err == nil {
		line, err := a.peekContinuation()
		if err != nil {
			a.err = err
			break
		}
		if line {
			return nil
		}
		a.readResponse()
	}
	return a.err
}

func (a *Appender) peekContinuation() (bool, error) {
	b, err := a.r.Peek(1)
	if err != nil {
		return false, err
	}
	if b[0] != '+' {
		return false, nil
	}
	line, err := a.readLine()
	if err == nil && !strings.HasPrefix(line, "+") {
		err = fmt.Errorf("testenv: IMAP: unexpected %q", line)
	}
	return true, err
}

// untagged records capabilities from "* CAPABILITY" and "[CAPABILITY ...]".
func (a *Appender) untagged(line string) {
	var list string
	if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
		list = rest
	} else if _, rest, ok := strings.Cut(line, "[CAPABILITY "); ok {
		list, _, _ = strings.Cut(rest, "]")
	} else {
		return
	}
	clear(a.caps)
	for _, c := range strings.Fields(list) {
		a.caps[strings.ToUpper(c)] = true
	}
}

// readLine reads a response line without CRLF, with the literals it
// announces inlined.
func (a *Appender) readLine() (string, error) {
	a.conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	var b strings.Builder
	for {
		line, err := a.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		b.WriteString(line)
		if !strings.HasSuffix(line, "}") {
			return b.String(), nil
		}
		i := strings.LastIndexByte(line, '{')
		n, err := strconv.Atoi(strings.TrimSuffix(line[i+1:len(line)-1], "+"))
		if i < 0 || err != nil || n < 0 {
			return b.String(), nil
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(a.r, lit); err != nil {
			return "", err
		}
		b.Write(lit)
	}
}

// quote makes s an IMAP quoted string.
func quote(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") {
		// Not representable as a quoted string; the server will reject it.
		return `""`
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
