package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// POP3 sessions (sessions/*.pop3) use the session format with POP3
// command lines, which have no tags: "A: STAT". Connections log in with
// USER and PASS on first use, unless declared with "connect A" (then
// $USER, $PASS and $PLAIN, the base64 SASL PLAIN response, stand for the
// credentials). "A! close" drops A without QUIT. Seeds go in over the
// target's IMAP. Every response is normalised as it is read:
//
//   - the status: +OK or -ERR and the RFC 2449 response code ([AUTH],
//     [IN-USE], ...), without the text; the text is kept for STAT, LIST n
//     and UIDL n, which carry data;
//   - UIDLs: each distinct UIDL becomes <uidl-N> in order of first
//     appearance in the session (so stability across logins still shows);
//   - CAPA: only the capabilities the endpoint must have (TOP, UIDL, USER,
//     RESP-CODES, AUTH-RESP-CODE, STLS, SASL PLAIN), sorted: servers may
//     offer more;
//   - RETR and TOP: the dot-unstuffed content with its line ends, as one
//     string.

// pop3MultiLine reports whether a successful reply to cmd has a body.
func pop3MultiLine(cmd string) bool {
	verb, arg, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(cmd)), " ")
	switch verb {
	case "RETR", "TOP", "CAPA":
		return true
	case "LIST", "UIDL":
		return arg == ""
	}
	return false
}

// pop3Conn is one POP3 connection of a session.
type pop3Conn struct {
	c net.Conn
	r *bufio.Reader
}

func (t Target) dialPOP3() (*pop3Conn, error) {
	if t.POP3 == "" {
		return nil, errors.New("clienttest: target has no POP3 address")
	}
	var c net.Conn
	var err error
	cfg := t.tlsConfig()
	if h, _, err := net.SplitHostPort(t.POP3); err == nil && t.ServerName == "" && (t.TLSConfig == nil || t.TLSConfig.ServerName == "") {
		cfg.ServerName = h
	}
	if t.TLS == TLSImplicit {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", t.POP3, cfg)
	} else {
		c, err = net.DialTimeout("tcp", t.POP3, 10*time.Second)
	}
	if err != nil {
		return nil, err
	}
	pc := &pop3Conn{c: c, r: bufio.NewReader(c)}
	if line, err := pc.line(); err != nil || !strings.HasPrefix(line, "+OK") {
		c.Close()
		return nil, fmt.Errorf("clienttest: POP3 greeting from %s: %q %v", t.POP3, line, err)
	}
	if t.TLS == TLSStartTLS {
		fmt.Fprintf(c, "STLS\r\n")
		if line, err := pc.line(); err != nil || !strings.HasPrefix(line, "+OK") {
			c.Close()
			return nil, fmt.Errorf("clienttest: STLS at %s: %q %v", t.POP3, line, err)
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("clienttest: STLS at %s: %v", t.POP3, err)
		}
		pc = &pop3Conn{c: tc, r: bufio.NewReader(tc)}
	}
	return pc, nil
}

// line reads one line without its CRLF, within WaitTimeout.
func (p *pop3Conn) line() (string, error) {
	p.c.SetReadDeadline(time.Now().Add(WaitTimeout))
	l, err := p.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// body reads a multi-line body up to the "." line, dot-unstuffed, line
// ends kept as sent.
func (p *pop3Conn) body() ([]byte, error) {
	var out []byte
	for {
		p.c.SetReadDeadline(time.Now().Add(WaitTimeout))
		l, err := p.r.ReadBytes('\n')
		if err != nil {
			return out, err
		}
		if bytes.Equal(bytes.TrimRight(l, "\r\n"), []byte(".")) {
			return out, nil
		}
		if l[0] == '.' {
			l = l[1:]
		}
		out = append(out, l...)
	}
}

// runPOP3Session seeds t over IMAP and runs the POP3 session s.
func runPOP3Session(ctx context.Context, t Target, s *Session) (*Transcript, error) {
	if err := Seed(t, s.Seeds); err != nil {
		return nil, fmt.Errorf("clienttest: %s: seeding %s: %w", s.Name, t.IMAP, err)
	}
	tr := &Transcript{Session: s.Name, Target: t.POP3}
	creds := strings.NewReplacer("$USER", t.User, "$PASS", t.Pass,
		"$PLAIN", base64.StdEncoding.EncodeToString([]byte("\x00"+t.User+"\x00"+t.Pass)))
	uidls := map[string]string{}
	conns := map[string]*pop3Conn{}
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	for _, st := range s.Steps {
		if err := ctx.Err(); err != nil {
			return tr, err
		}
		rec := Record{Step: st, pop3: true}
		c := conns[st.Conn]
		if st.Kind == '!' {
			if c != nil {
				c.c.Close()
				delete(conns, st.Conn)
			}
			tr.Records = append(tr.Records, rec)
			continue
		}
		if st.Kind == '?' {
			return nil, fmt.Errorf("clienttest: %s line %d: POP3 sessions cannot wait", s.Name, st.Line)
		}
		if c == nil {
			var err error
			if s.NoLogin[st.Conn] {
				c, err = t.dialPOP3()
			} else {
				c, err = loginPOP3(ctx, t)
			}
			if err != nil {
				return nil, fmt.Errorf("clienttest: %s line %d: %w", s.Name, st.Line, err)
			}
			conns[st.Conn] = c
		}
		err := runPOP3Step(c, st, creds, uidls, &rec)
		tr.Records = append(tr.Records, rec)
		if err != nil {
			tr.Records[len(tr.Records)-1].Err = err.Error()
			return tr, nil
		}
		if strings.EqualFold(strings.TrimSpace(st.Text), "QUIT") {
			c.c.Close()
			delete(conns, st.Conn)
		}
	}
	return tr, nil
}

// loginPOP3 dials the target's POP3 endpoint and logs in with USER and
// PASS. A login refused with [IN-USE] is tried again for up to
// inUseWait: a server frees the maildrop of a connection the client
// dropped without QUIT only when it notices the drop (RFC 2449 calls
// the code temporary), and a script's next connection may come first.
func loginPOP3(ctx context.Context, t Target) (*pop3Conn, error) {
	deadline := time.Now().Add(inUseWait)
	for {
		c, err := t.dialPOP3()
		if err != nil {
			return nil, err
		}
		l, err := c.login(t.User, t.Pass)
		if err == nil && strings.HasPrefix(l, "+OK") {
			return c, nil
		}
		c.c.Close()
		if err != nil || !strings.HasPrefix(l, "-ERR [IN-USE]") || time.Now().After(deadline) {
			return nil, fmt.Errorf("POP3 login at %s: %q %v", t.POP3, l, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// inUseWait bounds how long loginPOP3 waits for a maildrop in use.
const inUseWait = 10 * time.Second

// login sends USER and PASS and returns the first reply that is not
// +OK, or PASS's.
func (c *pop3Conn) login(user, pass string) (string, error) {
	var l string
	for _, cmd := range []string{"USER " + user, "PASS " + pass} {
		if _, err := fmt.Fprintf(c.c, "%s\r\n", cmd); err != nil {
			return "", err
		}
		var err error
		if l, err = c.line(); err != nil || !strings.HasPrefix(l, "+OK") {
			return l, err
		}
	}
	return l, nil
}

// runPOP3Step sends one command and records its normalised reply.
func runPOP3Step(c *pop3Conn, st Step, creds *strings.Replacer, uidls map[string]string, rec *Record) error {
	if _, err := fmt.Fprintf(c.c, "%s\r\n", creds.Replace(st.Text)); err != nil {
		return err
	}
	status, err := c.line()
	if err != nil {
		return err
	}
	rec.Responses = append(rec.Responses, []byte(status))
	verb, arg, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(st.Text)), " ")
	ok := strings.HasPrefix(status, "+OK")
	rec.Normalized = append(rec.Normalized, normalizePOP3Status(status, verb, arg != "", uidls))
	if !ok || !pop3MultiLine(st.Text) {
		return nil
	}
	body, err := c.body()
	if err != nil {
		return err
	}
	rec.Responses = append(rec.Responses, body)
	switch verb {
	case "RETR", "TOP":
		rec.Normalized = append(rec.Normalized, token{kind: tokString, s: string(body)}.render())
	case "CAPA":
		rec.Normalized = append(rec.Normalized, normalizeCAPA(body)...)
	default: // LIST, UIDL
		for _, l := range strings.Split(strings.TrimRight(string(body), "\r\n"), "\n") {
			l = strings.TrimRight(l, "\r")
			if verb == "UIDL" {
				n, u, _ := strings.Cut(l, " ")
				l = n + " " + maskUIDL(uidls, u)
			}
			rec.Normalized = append(rec.Normalized, l)
		}
	}
	return nil
}

// normalizePOP3Status keeps +OK/-ERR and the response code, and the data of
// STAT, LIST n and UIDL n.
func normalizePOP3Status(line, verb string, hasArg bool, uidls map[string]string) string {
	st, text, _ := strings.Cut(line, " ")
	if st != "+OK" && st != "-ERR" {
		return "<bad status " + strconvQuote(line) + ">"
	}
	if strings.HasPrefix(text, "[") {
		if end := strings.IndexByte(text, ']'); end > 0 {
			return st + " " + text[:end+1]
		}
	}
	if st == "+OK" {
		switch {
		case verb == "STAT", verb == "LIST" && hasArg:
			f := strings.Fields(text)
			if len(f) >= 2 {
				return st + " " + f[0] + " " + f[1]
			}
		case verb == "UIDL" && hasArg:
			f := strings.Fields(text)
			if len(f) >= 2 {
				return st + " " + f[0] + " " + maskUIDL(uidls, f[1])
			}
		}
	}
	return st
}

func maskUIDL(uidls map[string]string, u string) string {
	if m, ok := uidls[u]; ok {
		return m
	}
	m := fmt.Sprintf("<uidl-%d>", len(uidls)+1)
	uidls[u] = m
	return m
}

// requiredCAPA are the POP3 capabilities the issue asks of the endpoint.
var requiredCAPA = map[string]bool{"TOP": true, "UIDL": true, "USER": true, "RESP-CODES": true, "AUTH-RESP-CODE": true, "STLS": true}

// normalizeCAPA keeps the required capabilities and SASL PLAIN, sorted.
func normalizeCAPA(body []byte) []string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		f := strings.Fields(strings.ToUpper(l))
		switch {
		case len(f) == 0:
		case requiredCAPA[f[0]]:
			out = append(out, f[0])
		case f[0] == "SASL":
			for _, m := range f[1:] {
				if m == "PLAIN" {
					out = append(out, "SASL PLAIN")
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
