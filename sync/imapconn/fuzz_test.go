package imapconn

import (
	"bufio"
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for the uploader's parsers of server bytes and its mailbox
// name encoding. Each checks properties against a reference written
// another way, not just the absence of a panic.

// FuzzParseAppendUID: an APPENDUID code parses to the UIDs of its set in
// order, checked against a regular expression of the grammar and the set
// written out again, and never to more than asked for; anything else is
// refused.
func FuzzParseAppendUID(f *testing.F) {
	for _, s := range []string{"[APPENDUID 38505 3955] APPEND completed", "[APPENDUID 1 1:3,7] ok", "[APPENDUID 1 3:1]", "[APPENDUID 1 0]",
		"[APPENDUID 1 1:*]", "[APPENDUID 1 1,,2]", "[APPENDUID x 5]", "[APPENDUID 1 4294967295]", "[APPENDUID 1 1:4294967295]", "[APPENDUID  1  2 ]"} {
		f.Add(s, uint16(100))
	}
	codeRE := regexp.MustCompile(`^\[APPENDUID ([0-9]+) ([0-9:,]+)\]`)
	f.Fuzz(func(t *testing.T, text string, max uint16) {
		uids, ok := parseAppendUID(text, int(max))
		if !ok {
			return
		}
		if len(uids) > int(max) {
			t.Fatalf("parseAppendUID(%q, %d) = %d UIDs", text, max, len(uids))
		}
		m := codeRE.FindStringSubmatch(text)
		if m == nil || len(uids) == 0 {
			t.Fatalf("parseAppendUID(%q) = %v, accepted", text, uids)
		}
		if v, err := strconv.ParseUint(m[1], 10, 32); err != nil || v == 0 {
			t.Fatalf("parseAppendUID(%q) = %v, accepted", text, uids)
		}
		var want []uint32
		for _, part := range strings.Split(m[2], ",") {
			lo, hi, isRange := strings.Cut(part, ":")
			a, err1 := strconv.ParseUint(lo, 10, 32)
			b, err2 := strconv.ParseUint(hi, 10, 32)
			if !isRange {
				b, err2 = a, nil
			}
			if err1 != nil || err2 != nil || a == 0 || b < a {
				t.Fatalf("parseAppendUID(%q) = %v, accepted %q", text, uids, part)
			}
			for x := a; x <= b; x++ {
				want = append(want, uint32(x))
			}
		}
		if !slices.Equal(uids, want) {
			t.Fatalf("parseAppendUID(%q) = %v, want %v", text, uids, want)
		}
	})
}

// FuzzUploaderReadLine: a response line comes back without its line end
// and without the literals inside it (their "{n}" stays), whatever the
// literals hold; arbitrary bytes never give a line with a line end in it.
func FuzzUploaderReadLine(f *testing.F) {
	f.Add("* 1 FETCH (BODY[] ", []byte("x\r\n)"), ")", true, []byte("* OK\r\n"))
	f.Add("U1 OK ", []byte{}, "done\r", false, []byte("{3}\r\nab"))
	f.Add("{1+}", []byte("\n"), "", true, []byte("{99999999999}\r\n"))
	f.Fuzz(func(t *testing.T, before string, lit []byte, after string, plus bool, raw []byte) {
		u := &Uploader{br: bufio.NewReader(bytes.NewReader(raw))}
		if line, err := u.readLine(); err == nil && strings.ContainsAny(line, "\n") {
			t.Fatalf("readLine(%q) = %q", raw, line)
		}
		if strings.ContainsAny(before+after, "\n") || strings.HasSuffix(strings.TrimRight(after, "\r"), "}") {
			return
		}
		marker := "{" + strconv.Itoa(len(lit)) + "}"
		if plus {
			marker = "{" + strconv.Itoa(len(lit)) + "+}"
		}
		wire := before + marker + "\r\n" + string(lit) + after + "\r\n"
		u = &Uploader{br: bufio.NewReader(strings.NewReader(wire + "next\r\n"))}
		line, err := u.readLine()
		if want := before + marker + strings.TrimRight(after, "\r"); err != nil || line != want {
			t.Fatalf("readLine(%q) = %q, %v; want %q", wire, line, err, want)
		}
		if next, err := u.readLine(); err != nil || next != "next" {
			t.Fatalf("readLine(%q) then %q, %v", wire, next, err)
		}
	})
}

// FuzzLiteralSize: a line piece announces a literal exactly when it ends
// with "{digits}" or "{digits+}".
func FuzzLiteralSize(f *testing.F) {
	for _, s := range []string{"* 1 FETCH (BODY[] {12}", "{0}", "{12+}", "{+5}", "{-1}", "{}", "{1}}", "x{ 1}", "{99999999999999999999}"} {
		f.Add(s)
	}
	litRE := regexp.MustCompile(`\{([0-9]+)\+?\}$`)
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := literalSize(s)
		m := litRE.FindStringSubmatch(s)
		want, err := int64(0), error(nil)
		if m != nil {
			if want, err = strconv.ParseInt(m[1], 10, 64); err != nil {
				want = 0
			}
		}
		if wantOK := m != nil && err == nil; ok != wantOK || n != want {
			t.Fatalf("literalSize(%q) = %d, %v; want %d, %v", s, n, ok, want, wantOK)
		}
	})
}

// decodeMailboxRef reads a quoted string of a mailbox name in modified
// UTF-7 (RFC 3501 5.1.3), strictly: it fails on anything an encoder must
// not write (printable ASCII in base64, two base64 runs in a row, padding
// bits, an empty run).
func decodeMailboxRef(q string) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	var raw []byte
	for i := 1; i < len(q)-1; i++ {
		c := q[i]
		if c < 0x20 || c > 0x7e || c == '"' {
			return "", false
		}
		if c == '\\' {
			i++
			if i == len(q)-1 || q[i] != '"' && q[i] != '\\' {
				return "", false
			}
			c = q[i]
		}
		raw = append(raw, c)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
	var out []rune
	lastRun := false
	for i := 0; i < len(raw); i++ {
		if raw[i] != '&' {
			out = append(out, rune(raw[i]))
			lastRun = false
			continue
		}
		end := bytes.IndexByte(raw[i:], '-')
		if end < 0 {
			return "", false
		}
		b64 := raw[i+1 : i+end]
		i += end
		if len(b64) == 0 {
			out = append(out, '&')
			lastRun = false
			continue
		}
		if lastRun {
			return "", false
		}
		lastRun = true
		var bits, nbits uint32
		var units []uint16
		for _, c := range b64 {
			v := strings.IndexByte(alphabet, c)
			if v < 0 {
				return "", false
			}
			bits = bits<<6 | uint32(v)
			nbits += 6
			if nbits >= 16 {
				nbits -= 16
				units = append(units, uint16(bits>>nbits))
				bits &= 1<<nbits - 1
			}
		}
		if bits != 0 || nbits >= 6 || len(units) == 0 {
			return "", false
		}
		for j := 0; j < len(units); j++ {
			u := rune(units[j])
			switch {
			case u >= 0xd800 && u < 0xdc00 && j+1 < len(units) && units[j+1] >= 0xdc00 && units[j+1] < 0xe000:
				u = 0x10000 + (u-0xd800)<<10 + rune(units[j+1]) - 0xdc00
				j++
			case u >= 0xd800 && u < 0xe000:
				return "", false
			case u >= 0x20 && u <= 0x7e:
				return "", false // printable ASCII goes as itself
			}
			out = append(out, u)
		}
	}
	return string(out), true
}

// FuzzQuoteMailbox: a folder name goes upstream as a quoted string of
// printable ASCII that a strict modified UTF-7 decoder reads back as the
// name (an invalid UTF-8 byte is sent as U+FFFD).
func FuzzQuoteMailbox(f *testing.F) {
	for _, s := range []string{"INBOX", "Entwürfe", "a&b", `"q"\`, "日本語/テスト", "\U0001F600", "ü&ü", "\x00\x1f\x7f", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q := quoteMailbox(name)
		got, ok := decodeMailboxRef(q)
		if want := string([]rune(name)); !ok || got != want {
			t.Fatalf("quoteMailbox(%q) = %s, which reads as %q, %v", name, q, got, ok)
		}
	})
}
