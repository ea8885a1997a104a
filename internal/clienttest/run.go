package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Transcript is what one session saw: per step, the raw responses.
type Transcript struct {
	Session string
	Target  string // the IMAP address
	Records []Record
}

// Record is one command of a session and the responses to it.
type Record struct {
	Step      Step
	Responses [][]byte // raw, literals inline, without the final CRLF
	Err       string   // a timeout or a broken connection

	pop3       bool
	Normalized []string // POP3: the normalised responses
}

// Normal is the normalised form of the responses (see normalize.go; for
// POP3 the responses are normalised as they are read).
func (r Record) Normal() []string {
	var out []string
	if r.pop3 {
		out = append(out, r.Normalized...)
	} else {
		out = normalizeResponses(r.Responses, r.Step.Unordered)
	}
	if r.Err != "" {
		out = append(out, "<error: "+r.Err+">")
	}
	return out
}

// sessionConn is one connection of a running session.
type sessionConn struct {
	c       net.Conn
	r       *bufio.Reader
	pending string // tag of a command waiting for client input (IDLE), or ""
	rec     int    // index of the record that collects its responses
}

// RunSession seeds t's account with s's messages, runs s against t and
// returns the transcript. An error means the session could not run at all
// (no connection, no login, seeding failed); a command that times out is
// recorded in the transcript and ends the session.
func RunSession(ctx context.Context, t Target, s *Session) (*Transcript, error) {
	if s.POP3 {
		return runPOP3Session(ctx, t, s)
	}
	if err := Seed(t, s.Seeds); err != nil {
		return nil, fmt.Errorf("clienttest: %s: seeding %s: %w", s.Name, t.IMAP, err)
	}
	tr := &Transcript{Session: s.Name, Target: t.IMAP}
	creds := strings.NewReplacer("$USER", quoteIMAP(t.User), "$PASS", quoteIMAP(t.Pass),
		"$PLAIN", base64.StdEncoding.EncodeToString([]byte("\x00"+t.User+"\x00"+t.Pass)))
	conns := map[string]*sessionConn{}
	defer func() {
		for _, c := range conns {
			c.c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c.c, "ZZ LOGOUT\r\n")
			c.c.Close()
		}
	}()
	for _, st := range s.Steps {
		if err := ctx.Err(); err != nil {
			return tr, err
		}
		c := conns[st.Conn]
		if st.Kind == '!' {
			if c != nil {
				if c.pending != "" {
					return tr, fmt.Errorf("clienttest: %s line %d: %s closed with command %s unfinished", s.Name, st.Line, st.Conn, c.pending)
				}
				c.c.Close()
				delete(conns, st.Conn)
			}
			tr.Records = append(tr.Records, Record{Step: st})
			continue
		}
		if c == nil {
			var err error
			if s.NoLogin[st.Conn] {
				c, err = connect(t)
			} else {
				c, err = login(t)
			}
			if err != nil {
				return nil, fmt.Errorf("clienttest: %s line %d: %w", s.Name, st.Line, err)
			}
			conns[st.Conn] = c
		}
		if err := runStep(tr, c, st, creds); err != nil {
			tr.Records[len(tr.Records)-1].Err = err.Error()
			return tr, nil
		}
	}
	for name, c := range conns {
		if c.pending != "" {
			return tr, fmt.Errorf("clienttest: %s: command %s on %s never finished (missing DONE?)", s.Name, c.pending, name)
		}
	}
	return tr, nil
}

// connect opens a connection (TLS as the target says) and reads the
// greeting; nothing of it is recorded.
func connect(t Target) (*sessionConn, error) {
	c, r, err := t.dialIMAP()
	if err != nil {
		return nil, err
	}
	return &sessionConn{c: c, r: r}, nil
}

// login opens a connection and logs in; nothing of it is recorded.
func login(t Target) (*sessionConn, error) {
	sc, err := connect(t)
	if err != nil {
		return nil, err
	}
	c := sc.c
	fmt.Fprintf(c, "L0 LOGIN %s %s\r\n", quoteIMAP(t.User), quoteIMAP(t.Pass))
	for {
		resp, err := sc.read()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("login at %s: %w", t.IMAP, err)
		}
		if bytes.HasPrefix(resp, []byte("L0 ")) {
			if !bytes.HasPrefix(resp, []byte("L0 OK")) {
				c.Close()
				return nil, fmt.Errorf("login at %s: %s", t.IMAP, resp)
			}
			return sc, nil
		}
	}
}

// runStep runs one step, appending to tr.Records.
func runStep(tr *Transcript, c *sessionConn, st Step, creds *strings.Replacer) error {
	if st.Kind == '?' {
		if c.pending == "" {
			tr.Records = append(tr.Records, Record{Step: st})
			return fmt.Errorf("line %d: nothing to wait for on %s: no command pending", st.Line, st.Conn)
		}
		want := strings.ToUpper(st.Text)
		deadline := time.Now().Add(WaitTimeout)
		for {
			resp, err := c.readUntil(deadline)
			if err != nil {
				return fmt.Errorf("waiting for %q: %v", st.Text, err)
			}
			tr.Records[c.rec].Responses = append(tr.Records[c.rec].Responses, resp)
			if strings.Contains(strings.ToUpper(string(resp)), want) {
				return nil
			}
		}
	}
	var tag string
	if c.pending != "" {
		// The answer to a continuation request (DONE): responses go on
		// into the pending command's record.
		tag = c.pending
		c.pending = ""
		tr.Records = append(tr.Records, Record{Step: st})
	} else {
		tag, _, _ = strings.Cut(st.Text, " ")
		tr.Records = append(tr.Records, Record{Step: st})
		c.rec = len(tr.Records) - 1
	}
	rec := &tr.Records[c.rec]
	segs := strings.Split(creds.Replace(st.Text), "\x00")
	for i, seg := range segs {
		if i == len(segs)-1 {
			if _, err := fmt.Fprintf(c.c, "%s\r\n", seg); err != nil {
				return err
			}
			break
		}
		lit := st.Literals[i]
		if _, err := fmt.Fprintf(c.c, "%s{%d}\r\n", seg, len(lit)); err != nil {
			return err
		}
		// A synchronizing literal: wait for "+" (or the refusal).
		for {
			resp, err := c.readUntil(time.Now().Add(WaitTimeout))
			if err != nil {
				return err
			}
			if resp[0] == '+' {
				break
			}
			rec.Responses = append(rec.Responses, resp)
			if bytes.HasPrefix(resp, []byte(tag+" ")) {
				return nil
			}
		}
		if _, err := c.c.Write(lit); err != nil {
			return err
		}
	}
	for {
		resp, err := c.readUntil(time.Now().Add(WaitTimeout))
		if err != nil {
			return err
		}
		rec = &tr.Records[c.rec]
		rec.Responses = append(rec.Responses, resp)
		if resp[0] == '+' {
			c.pending = tag
			return nil
		}
		if bytes.HasPrefix(resp, []byte(tag+" ")) {
			return nil
		}
	}
}

func (c *sessionConn) readUntil(deadline time.Time) ([]byte, error) {
	c.c.SetReadDeadline(deadline)
	resp, err := c.read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no response within %v", WaitTimeout)
	}
	return resp, err
}

// read reads one response: a line, and for each literal it announces at
// its end the literal's bytes and the rest of the line.
func (c *sessionConn) read() ([]byte, error) {
	var out []byte
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		out = append(out, line...)
		n, ok := literalAtEnd(line)
		if !ok {
			return bytes.TrimRight(out, "\r\n"), nil
		}
		lit := make([]byte, n)
		if _, err := ioReadFull(c.r, lit); err != nil {
			return nil, err
		}
		out = append(out, lit...)
	}
}

// literalAtEnd reports the size of a literal announced at the end of line
// ("{12}\r\n", "~{12}\r\n").
func literalAtEnd(line []byte) (int, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasSuffix(s, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s[i+1 : len(s)-1])
	return n, err == nil && n >= 0
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// quoteIMAP quotes s as an IMAP quoted string.
func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Difference is one command whose normalised responses differ.
type Difference struct {
	Session string
	Step    Step
	Want    []string // the reference's
	Got     []string // the target's
}

func (d Difference) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s line %d, %s%c %s\n", d.Session, d.Step.Line, d.Step.Conn, d.Step.Kind, strings.ReplaceAll(d.Step.Text, "\x00", "{literal}"))
	for _, l := range d.Want {
		if !contains(d.Got, l) {
			fmt.Fprintf(&b, "  - %s\n", l)
		}
	}
	for _, l := range d.Got {
		if !contains(d.Want, l) {
			fmt.Fprintf(&b, "  + %s\n", l)
		}
	}
	b.WriteString("  reference:\n")
	for _, l := range d.Want {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	b.WriteString("  target:\n")
	for _, l := range d.Got {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	return b.String()
}

func contains(ls []string, s string) bool {
	for _, l := range ls {
		if l == s {
			return true
		}
	}
	return false
}

// Compare returns the commands whose normalised responses differ between
// the reference transcript and the target's. A reference FETCH without
// UID first is tolerated; the target's never is.
func Compare(ref, got *Transcript, opts *Options) []Difference {
	var out []Difference
	wantAll, haveAll := canonicalEvents(ref.Records), canonicalEvents(got.Records)
	if opts != nil && opts.FlagKeywords {
		dropFlagKeywords(ref.Records, wantAll)
		dropFlagKeywords(got.Records, haveAll)
	}
	readOnly := readOnlyConns(ref.Records)
	n := max(len(ref.Records), len(got.Records))
	for i := range n {
		var want, have []string
		var st Step
		if i < len(ref.Records) {
			st = ref.Records[i].Step
			want = wantAll[i]
			for j, l := range want {
				want[j] = strings.Replace(l, " UID-NOT-FIRST", "", 1)
			}
		}
		if i < len(got.Records) {
			st = got.Records[i].Step
			have = haveAll[i]
			if opts != nil && opts.UIDAnywhere {
				for j, l := range have {
					have[j] = strings.Replace(l, " UID-NOT-FIRST", "", 1)
				}
			}
		}
		if recentSearch(st.Text) {
			want, have = maskSearch(want), maskSearch(have)
		}
		want, have = listAttrs(st.Text, want), listAttrs(st.Text, have)
		if opts != nil && opts.Normalize != nil {
			want, have = rewrite(want, opts.Normalize), rewrite(have, opts.Normalize)
		}
		if opts != nil {
			have = opts.accept(st.Text, i < len(readOnly) && readOnly[i], want, have)
		}
		if !equalLines(want, have) {
			out = append(out, Difference{Session: ref.Session, Step: st, Want: want, Got: have})
		}
	}
	return out
}

// rewrite applies f to every line, dropping those it makes empty.
func rewrite(lines []string, f func(string) string) []string {
	var out []string
	for _, l := range lines {
		if l = f(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
