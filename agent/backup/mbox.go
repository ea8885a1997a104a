package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/postfach/postfach/maildir"
)

// The mbox format of an export (see the package doc): mboxrd, one
// message after another, each
//
//	From <envelope sender> <internal date, UTC, asctime>
//	X-Postfach-Export: v=1; added=<n>; flags=<Maildir letters>; eol=<yes|no>; sha256=<hex>
//	Status: RO                      (R: \Seen; O: not new)
//	X-Status: AFTD                  (\Answered \Flagged \Draft \Deleted; left out when none)
//	X-Keywords: $Forwarded kw ...   (left out when none)
//	<the message, its lines that match ^>*From  quoted with one more '>'>
//	<a newline, when the message does not end with one: eol=no>
//	<an empty line>

// exportHeader is the name of the header line an export puts first in
// each message: it says how many of the lines after it the export added
// too, so that an import removes exactly those.
const exportHeader = "X-Postfach-Export:"

// mboxMessage is one message of an mbox.
type mboxMessage struct {
	Sender   string
	Date     time.Time // the From_ line's; zero when it has none we read
	Flags    maildir.Flags
	Keywords []string
	Raw      []byte // the message as stored, the export's lines removed
	Ours     bool   // it has an X-Postfach-Export header (the fields below are set)
	SHA256   [32]byte
	Line     int // its From_ line's number in the mbox (from 1)
}

// writeMboxMessage writes one message to w in the export's mbox form.
func writeMboxMessage(w *bufio.Writer, raw []byte, flags maildir.Flags, keywords []string, date time.Time) error {
	sum := sha256.Sum256(raw)
	eol := "yes"
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		eol = "no"
	}
	var added []string
	status := "Status: O"
	if flags&maildir.FlagSeen != 0 {
		status = "Status: RO"
	}
	added = append(added, status)
	var xs []byte
	for _, l := range []struct {
		f maildir.Flags
		c byte
	}{{maildir.FlagAnswered, 'A'}, {maildir.FlagFlagged, 'F'}, {maildir.FlagDraft, 'T'}, {maildir.FlagDeleted, 'D'}} {
		if flags&l.f != 0 {
			xs = append(xs, l.c)
		}
	}
	if len(xs) > 0 {
		added = append(added, "X-Status: "+string(xs))
	}
	var kws []string
	if flags&maildir.FlagPassed != 0 {
		kws = append(kws, "$Forwarded")
	}
	for _, k := range keywords {
		kws = append(kws, escapeKeyword(k))
	}
	if len(kws) > 0 {
		added = append(added, "X-Keywords: "+strings.Join(kws, " "))
	}
	info := strings.TrimPrefix(flags.Info(), "2,")
	if info == "" {
		info = "-"
	}
	fmt.Fprintf(w, "From %s %s\n", envelopeSender(raw), date.UTC().Format(time.ANSIC))
	fmt.Fprintf(w, "%s v=1; added=%d; flags=%s; eol=%s; sha256=%x\n", exportHeader, len(added), info, eol, sum)
	for _, l := range added {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	writeQuoted(w, raw)
	if eol == "no" {
		w.WriteByte('\n')
	}
	return w.WriteByte('\n')
}

// writeQuoted writes raw with mboxrd quoting: a line that matches
// ^>*From  gets one more '>'.
func writeQuoted(w *bufio.Writer, raw []byte) {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line = raw[:i+1]
		}
		raw = raw[len(line):]
		if isFromLine(line) {
			w.WriteByte('>')
		}
		w.Write(line)
	}
}

// isFromLine reports whether line matches ^>*From .
func isFromLine(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}

// envelopeSender is the address of the message's Return-Path header,
// MAILER-DAEMON when it has none (or none that fits a From_ line).
func envelopeSender(raw []byte) string {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line = raw[:i+1]
		}
		raw = raw[len(line):]
		l := strings.TrimRight(string(line), "\r\n")
		if l == "" {
			break // the header's end
		}
		name, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Return-Path") {
			continue
		}
		v = strings.TrimSpace(v)
		v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
		if v == "" || len(v) > 256 || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			break
		}
		return v
	}
	return "MAILER-DAEMON"
}

// escapeKeyword percent-escapes the bytes of a keyword that would not
// survive in a space-separated header value ('%', space and controls,
// non-ASCII); unescapeKeyword reverses it.
func escapeKeyword(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeKeyword(k string) (string, error) {
	if !strings.Contains(k, "%") {
		return k, nil
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != '%' {
			b.WriteByte(k[i])
			continue
		}
		if i+2 >= len(k) {
			return "", fmt.Errorf("bad escape in keyword %q", k)
		}
		v, err := strconv.ParseUint(k[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in keyword %q", k)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// mboxReader reads the messages of an mbox one at a time.
type mboxReader struct {
	br   *bufio.Reader
	line int    // lines read
	from []byte // the next message's From_ line, read already
	long []byte // a line longer than br's buffer, put together
	err  error
}

func newMboxReader(r io.Reader) *mboxReader {
	return &mboxReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// readLine returns the next line (with its '\n', if it has one); it is
// valid until the next call. io.EOF at the end.
func (r *mboxReader) readLine() ([]byte, error) {
	l, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], l...)
		for errors.Is(err, bufio.ErrBufferFull) {
			l, err = r.br.ReadSlice('\n')
			r.long = append(r.long, l...)
		}
		l = r.long
	}
	if err == io.EOF && len(l) > 0 {
		err = nil
	}
	if err == nil {
		r.line++
	}
	return l, err
}

// next returns the next message, io.EOF after the last one.
func (r *mboxReader) next() (*mboxMessage, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.from == nil {
		l, err := r.readLine()
		if err != nil {
			r.err = err
			return nil, err
		}
		if !bytes.HasPrefix(l, []byte("From ")) {
			r.err = fmt.Errorf("line %d: not an mbox: no From_ line", r.line)
			return nil, r.err
		}
		r.from = append([]byte(nil), l...)
	}
	m := &mboxMessage{Line: r.line}
	m.Sender, m.Date = parseFromLine(r.from)
	r.from = nil
	added, eol := -1, true
	var body []byte
	for first := true; ; first = false {
		l, err := r.readLine()
		if err == io.EOF {
			r.err = io.EOF
			break
		}
		if err != nil {
			r.err = err
			return nil, err
		}
		if bytes.HasPrefix(l, []byte("From ")) {
			r.from = append([]byte(nil), l...)
			break
		}
		if first && bytes.HasPrefix(l, []byte(exportHeader)) {
			if added, eol, err = m.parseExportHeader(l); err != nil {
				return nil, fmt.Errorf("line %d: %w", r.line, err)
			}
			continue
		}
		if added > 0 {
			if err := m.parseAdded(l); err != nil {
				return nil, fmt.Errorf("line %d: %w", r.line, err)
			}
			added--
			continue
		}
		if l[0] == '>' && isFromLine(l) {
			l = l[1:]
		}
		body = append(body, l...)
	}
	if added > 0 {
		return nil, fmt.Errorf("line %d: the message ends within the lines the export added", r.line)
	}
	// The empty line before the next From_ line (or the end).
	body = bytes.TrimSuffix(body, []byte("\n"))
	if !eol {
		if !bytes.HasSuffix(body, []byte("\n")) {
			return nil, fmt.Errorf("line %d: eol=no, but the message has no newline the export added", m.Line)
		}
		body = body[:len(body)-1]
	}
	m.Raw = body
	if !m.Ours {
		m.foreignFlags()
	}
	return m, nil
}

// foreignFlags sets the flags and keywords of a message another tool
// wrote from the first Status, X-Status and X-Keywords lines of its
// header (which stay in it: only the export's own lines are removed).
func (m *mboxMessage) foreignFlags() {
	seen := map[string]bool{}
	raw := m.Raw
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line = raw[:i+1]
		}
		raw = raw[len(line):]
		l := strings.TrimRight(string(line), "\r\n")
		if l == "" {
			return // the header's end
		}
		name, v, ok := strings.Cut(l, ":")
		name = strings.ToLower(name)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		v = strings.TrimSpace(v)
		switch name {
		case "status":
			if strings.Contains(v, "R") {
				m.Flags |= maildir.FlagSeen
			}
		case "x-status":
			for _, l := range []struct {
				c string
				f maildir.Flags
			}{{"A", maildir.FlagAnswered}, {"F", maildir.FlagFlagged}, {"T", maildir.FlagDraft}, {"D", maildir.FlagDeleted}} {
				if strings.Contains(v, l.c) {
					m.Flags |= l.f
				}
			}
		case "x-keywords":
			for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if strings.EqualFold(k, "$Forwarded") {
					m.Flags |= maildir.FlagPassed
				} else if k, err := unescapeKeyword(k); err == nil {
					m.Keywords = append(m.Keywords, k)
				}
			}
		}
	}
}

// parseFromLine reads a From_ line: "From <sender> <asctime>".
func parseFromLine(l []byte) (string, time.Time) {
	s := strings.TrimRight(string(l[len("From "):]), "\r\n")
	sender, rest, _ := strings.Cut(s, " ")
	t, err := time.Parse(time.ANSIC, strings.TrimSpace(rest))
	if err != nil {
		return sender, time.Time{}
	}
	return sender, t
}

// parseExportHeader reads the X-Postfach-Export line of m.
func (m *mboxMessage) parseExportHeader(l []byte) (added int, eol bool, err error) {
	v := strings.TrimSpace(string(l[len(exportHeader):]))
	fields := map[string]string{}
	for _, f := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = val
	}
	bad := func(what string) error { return fmt.Errorf("malformed %s header: %s", exportHeader, what) }
	if fields["v"] != "1" {
		return 0, false, bad("version " + strconv.Quote(fields["v"]))
	}
	added, err = strconv.Atoi(fields["added"])
	if err != nil || added < 0 || added > 3 {
		return 0, false, bad("added")
	}
	switch fields["eol"] {
	case "yes":
		eol = true
	case "no":
	default:
		return 0, false, bad("eol")
	}
	info := fields["flags"]
	if info == "-" {
		info = ""
	}
	m.Flags = maildir.ParseInfo("2," + info)
	if strings.TrimPrefix(m.Flags.Info(), "2,") != info {
		return 0, false, bad("flags")
	}
	if s := fields["sha256"]; len(s) != 64 {
		return 0, false, bad("sha256")
	} else if _, err := hex.Decode(m.SHA256[:], []byte(s)); err != nil {
		return 0, false, bad("sha256")
	}
	m.Ours = true
	return added, eol, nil
}

// parseAdded reads one of the lines the export added after its
// X-Postfach-Export line: the flags are the export header's, the
// keywords X-Keywords's.
func (m *mboxMessage) parseAdded(l []byte) error {
	name, v, _ := strings.Cut(strings.TrimRight(string(l), "\r\n"), ":")
	switch name {
	case "Status", "X-Status":
	case "X-Keywords":
		for _, k := range strings.Fields(v) {
			if k == "$Forwarded" {
				continue // the P flag
			}
			k, err := unescapeKeyword(k)
			if err != nil {
				return err
			}
			m.Keywords = append(m.Keywords, k)
		}
	default:
		return fmt.Errorf("%q is not a line the export adds", name)
	}
	return nil
}
