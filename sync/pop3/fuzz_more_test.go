package pop3

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postfach/postfach/index"
)

// Fuzz targets for the parsers of server bytes that fuzz_test.go does not
// cover. Each checks properties against a reference written differently
// (mostly a regular expression), not just the absence of a panic.

// FuzzParseStatus: a status line is +OK, -ERR or "+ " exactly when it starts
// with that keyword (any case) and a space or the end; the text is what
// follows the space; the response code is the RFC 2449 one, checked
// against a regular expression of its grammar.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"+OK", "+ok ready", "-ERR [SYS/TEMP] busy", "-err [AUTH]", "+ ", "+", "+OKx", "-ERR", "+ dGVzdA==",
		"-ERR [IN-USE] x", "-ERR [a//b] x", "-ERR [] x", "-ERR [x] y", "-ERR [a b] c", "-ERR [\x7f] c", "-ERR [a/b/c]"} {
		f.Add(s)
	}
	codeRE := regexp.MustCompile(`^\[([!-.0-Z\\^-~]+(?:/[!-.0-Z\\^-~]+)*)\]`)
	f.Fuzz(func(t *testing.T, line string) {
		kind, text, err := parseStatus(line)
		upper := strings.ToUpper(line)
		var wantKind statusKind
		var kw int
		switch {
		case strings.HasPrefix(upper, "+OK") && (len(line) == 3 || line[3] == ' '):
			wantKind, kw = statusOK, 3
		case strings.HasPrefix(upper, "-ERR") && (len(line) == 4 || line[4] == ' '):
			wantKind, kw = statusErr, 4
		case line == "+" || strings.HasPrefix(line, "+ "):
			wantKind, kw = statusCont, 1
		default:
			if err == nil {
				t.Fatalf("parseStatus(%q) = %v, %q, accepted", line, kind, text)
			}
			return
		}
		if err != nil || kind != wantKind {
			t.Fatalf("parseStatus(%q) = %v, %q, %v; want kind %v", line, kind, text, err, wantKind)
		}
		if want := strings.TrimPrefix(line[kw:], " "); text != want {
			t.Fatalf("parseStatus(%q) text %q, want %q", line, text, want)
		}
		code := responseCode(text)
		want := ""
		if m := codeRE.FindStringSubmatch(text); m != nil {
			want = m[1]
		}
		if code != want {
			t.Fatalf("responseCode(%q) = %q, want %q", text, code, want)
		}
	})
}

// FuzzAPOPTimestamp: the timestamp is the first "<...>" of the greeting
// when what lies between the brackets is 1 or more printable ASCII
// characters other than '<' and '>' (the digest covers it byte for byte,
// so nothing else may pass); otherwise there is none.
func FuzzAPOPTimestamp(f *testing.F) {
	for _, s := range []string{"POP3 ready <1896.697170952@dbc.mtview.ca.us>", "ready", "<>", "<a>", "x <a b> <c>", "<<a>", "<a\x00>", "<\xff>", "a < b > c"} {
		f.Add(s)
	}
	tsRE := regexp.MustCompile(`^<[!-;=?-~]+>`)
	f.Fuzz(func(t *testing.T, greeting string) {
		ts := apopTimestamp(greeting)
		want := ""
		if i := strings.IndexByte(greeting, '<'); i >= 0 {
			want = tsRE.FindString(greeting[i:])
		}
		if ts != want {
			t.Fatalf("apopTimestamp(%q) = %q, want %q", greeting, ts, want)
		}
	})
}

// FuzzParseCapaLine: the name is the first word upper-cased, the arguments
// the other words, whatever the spacing.
func FuzzParseCapaLine(f *testing.F) {
	for _, s := range []string{"SASL PLAIN LOGIN", "pipelining", "  UIDL  ", "", "\t", "EXPIRE 0 USER", "IMPLEMENTATION x\x00y", "ß x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		name, args := parseCapaLine(line)
		words := strings.Fields(line)
		if len(words) == 0 {
			if name != "" || args != nil {
				t.Fatalf("parseCapaLine(%q) = %q, %q", line, name, args)
			}
			return
		}
		if name != strings.ToUpper(words[0]) || !slices.Equal(args, words[1:]) {
			t.Fatalf("parseCapaLine(%q) = %q, %q", line, name, args)
		}
		caps := Caps{name: args}
		if !caps.Has(words[0]) {
			t.Fatalf("Caps %v lacks %q", caps, words[0])
		}
	})
}

// FuzzParseStat: a STAT reply parses to two non-negative numbers, and the
// canonical form of what it gave parses to the same; numbers of up to 18
// digits are accepted exactly when they are plain decimal.
func FuzzParseStat(f *testing.F) {
	for _, s := range []string{"2 320", "0 0", "1 2 x", "1", " 1 2", "-1 2", "1 +2", "999999999999999999 1", "1 0000000000000000001"} {
		f.Add(s)
	}
	numRE := regexp.MustCompile(`^[0-9]{1,18}$`)
	f.Fuzz(func(t *testing.T, text string) {
		n, size, err := parseStat(text)
		countStr, rest, hasSpace := strings.Cut(text, " ")
		sizeStr, _, _ := strings.Cut(rest, " ")
		valid := hasSpace && numRE.MatchString(countStr) && numRE.MatchString(sizeStr)
		if valid != (err == nil) {
			t.Fatalf("parseStat(%q) = %d, %d, %v; valid %v", text, n, size, err, valid)
		}
		if err != nil {
			return
		}
		wantN, _ := strconv.ParseInt(countStr, 10, 64)
		wantSize, _ := strconv.ParseInt(sizeStr, 10, 64)
		if int64(n) != wantN || size != wantSize {
			t.Fatalf("parseStat(%q) = %d, %d", text, n, size)
		}
	})
}

// pipeClient starts a Client whose server sends data (after a greeting),
// reads what the client sends into nothing, and stays open until the test
// ends.
func pipeClient(t *testing.T, data []byte) *Client {
	cl, srv := net.Pipe()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(io.Discard, srv)
		done <- struct{}{}
	}()
	go func() {
		_, _ = srv.Write(append([]byte("+OK hi\r\n"), data...))
		done <- struct{}{}
	}()
	c, err := NewClient(cl, &Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
		<-done
	})
	return c
}

// dotStuff is the server side of a multi-line reply: each line that starts
// with '.' gets another, and ".\r\n" ends it. body must end with a line end.
func dotStuff(body []byte) []byte {
	var out []byte
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line = body[:i+1]
		}
		if line[0] == '.' {
			out = append(out, '.')
		}
		out = append(out, line...)
		body = body[len(line):]
	}
	return append(out, ".\r\n"...)
}

// FuzzMultiLine: the lines of a dot-stuffed listing come back as sent,
// one by one, whatever they hold; a line longer than the limit is an error.
func FuzzMultiLine(f *testing.F) {
	f.Add("a\n.b\n..\n.\n\nc\r", false)
	f.Add(".", true)
	f.Add(strings.Repeat("x", maxLine+1), false)
	f.Add(" \x00\xff\r\r", true)
	f.Fuzz(func(t *testing.T, s string, bareLF bool) {
		lines := strings.Split(s, "\n")
		eol := "\r\n"
		if bareLF {
			eol = "\n"
		}
		// A line up to maxLine bytes on the wire (dot-stuffed) must pass;
		// one longer than maxLine+1 must not; in between, either.
		var wire []byte
		fits, tooLong := true, false
		want := make([]string, len(lines))
		for i, l := range lines {
			stuffed := len(l)
			if strings.HasPrefix(l, ".") {
				stuffed++
			}
			fits = fits && stuffed <= maxLine
			tooLong = tooLong || len(l) > maxLine+1
			wire = append(wire, l+eol...)
			want[i] = l
			if bareLF { // a sloppy server's bare LF: a CR before it is the line end
				want[i] = strings.TrimSuffix(l, "\r")
			}
		}
		c := pipeClient(t, dotStuff(wire))
		var got []string
		err := c.multiLine("LIST", len(lines), func(line string) error {
			got = append(got, line)
			return nil
		})
		switch {
		case tooLong && err == nil:
			t.Fatalf("a line longer than %d bytes was accepted", maxLine+1)
		case fits && err != nil:
			t.Fatalf("multiLine: %v", err)
		case err == nil && !slices.Equal(got, want):
			t.Fatalf("multiLine = %q; want %q", got, want)
		case !fits:
			return
		}
		// One line fewer allowed than there are: an error, never a short list.
		c2 := pipeClient(t, dotStuff(wire))
		if err := c2.multiLine("LIST", len(lines)-1, func(string) error { return nil }); err == nil {
			t.Fatalf("%d lines accepted with a limit of %d", len(lines), len(lines)-1)
		}
	})
}

// FuzzRetrBody: a message sent dot-stuffed comes back from Retr byte for
// byte (its line ends as sent), read in any chunk size, and so does the
// next command's reply after it.
func FuzzRetrBody(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n.\r\n..x\r\n.\n"), 7)
	f.Add([]byte("a\rb\n\n.\r"), 1)
	f.Add(bytes.Repeat([]byte("."), 40<<10), 4096)
	f.Add([]byte(""), 3)
	f.Fuzz(func(t *testing.T, body []byte, chunk int) {
		if len(body) == 0 || body[len(body)-1] != '\n' {
			body = append(body, "\r\n"...)
		}
		chunk = 1 + (chunk&0xffff)%(len(body)+1)
		c := pipeClient(t, append(append([]byte("+OK\r\n"), dotStuff(body)...), "+OK 3 4\r\n"...))
		r, err := c.Retr(1)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, chunk)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("Retr gave %q, want %q", got, body)
		}
		if n, size, err := c.Stat(); err != nil || n != 3 || size != 4 {
			t.Fatalf("Stat after Retr = %d, %d, %v", n, size, err)
		}
	})
}

// refHeader is the header of a stored message as headerHasher defines it,
// computed another way: the text before the first empty line, with a line
// end added to a last line that lacks one.
func refHeader(stored []byte) []byte {
	if len(stored) == 0 || stored[0] == '\n' {
		return nil
	}
	if i := bytes.Index(stored, []byte("\n\n")); i >= 0 {
		return stored[:i+1]
	}
	if stored[len(stored)-1] != '\n' {
		return append(slices.Clip(stored), '\n')
	}
	return stored
}

// FuzzHeaderHasher: the hash of a stored message equals the SHA-256 of its
// header (refHeader), and equals the hash of the same message as a server
// sends it (each LF as CRLF), however the bytes are split into writes.
func FuzzHeaderHasher(f *testing.F) {
	f.Add([]byte("Subject: a\nFrom: b\n\nbody\n"), uint8(3))
	f.Add([]byte("no end"), uint8(1))
	f.Add([]byte("\nbody"), uint8(0))
	f.Add([]byte("a\r\nb\r\r\n\r\n"), uint8(2))
	f.Add([]byte("x\ry\r"), uint8(1))
	f.Fuzz(func(t *testing.T, stored []byte, split uint8) {
		want := sha256.Sum256(refHeader(stored))
		write := func(hh *headerHasher, b []byte) {
			step := int(split) + 1
			for len(b) > 0 {
				n := min(step, len(b))
				hh.Write(b[:n])
				b = b[n:]
				step = step*7%13 + 1
			}
		}
		hh := newHeaderHasher(false)
		write(hh, stored)
		if got := hh.Sum(); got != want {
			t.Fatalf("stored %q: hash of %q expected", stored, refHeader(stored))
		}
		wire := bytes.ReplaceAll(stored, []byte("\n"), []byte("\r\n"))
		hw := newHeaderHasher(true)
		write(hw, wire)
		if got := hw.Sum(); got != want {
			t.Fatalf("wire %q: hash of %q expected", wire, refHeader(stored))
		}
	})
}

// FuzzInternalDate: any header gives a date; a Received field whose date
// after the last ';' is valid gives that date, whatever comes before the
// ';' and however the date is folded.
func FuzzInternalDate(f *testing.F) {
	f.Add([]byte("Received: from a by b; Tue, 1 Jul 2003 10:52:37 +0200\nDate: x\n\n"), "from a (b; c) by d", int64(1057049557), int16(120), true)
	f.Add([]byte("Received: ;\n\n"), "", int64(0), int16(-600), false)
	f.Add([]byte("Date: Mon, 2 Jan 2006 15:04:05 -0700\n\n"), "x", int64(-1e9), int16(0), true)
	f.Add([]byte("Received: x; 99 Foo 12345\n"), ";;", int64(1<<40), int16(1439), false)
	f.Fuzz(func(t *testing.T, hdr []byte, via string, sec int64, offMin int16, fold bool) {
		if internalDate(hdr, index.ParseHeader(hdr)).IsZero() {
			t.Fatalf("internalDate(%q) is zero", hdr)
		}
		if strings.ContainsAny(via, "\r\n") || !utf8.ValidString(via) {
			return
		}
		// Dates from year 1900 to 9998, offsets within a day.
		const lo, span = -2208988800, 253370764800 + 2208988800
		sec = lo + ((sec%span)+span)%span
		zone := time.FixedZone("", int(offMin%1440)*60)
		when := time.Unix(sec, 0).In(zone)
		date := when.Format("Mon, 2 Jan 2006 15:04:05 -0700")
		sep := " "
		if fold {
			sep = "\r\n\t"
		}
		h := []byte("Received: " + via + ";" + sep + date + "\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\n\r\n")
		got := internalDate(h, index.ParseHeader(h))
		if !got.Equal(when) {
			_, err := mail.ParseDate(date)
			t.Fatalf("internalDate(%q) = %v, want %v (net/mail.ParseDate: %v)", h, got, when, err)
		}
	})
}
