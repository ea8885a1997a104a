package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
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

// mboxMessage is one message of an mbox, as read: its bytes went to
// the writer given to mboxReader.next.
type mboxMessage struct {
	Sender   string
	Date     time.Time // the From_ line's; zero when it has none we read
	Flags    maildir.Flags
	Keywords []string
	Size     int64    // the message's length as stored (the export's lines removed)
	Sum      [32]byte // its SHA-256
	Ours     bool     // it has an X-Postfach-Export header (SHA256 is set)
	SHA256   [32]byte // what that header says Sum is
	Line     int      // its From_ line's number in the mbox (from 1)
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
