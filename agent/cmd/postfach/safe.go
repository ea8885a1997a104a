package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Everything postfach prints for a human may hold text from a server or a
// message: subjects and senders (RFC 2047 decodes to any byte), folder
// names, server error texts. A terminal obeys the control characters in
// it (ESC [2J clears the screen, OSC sequences set the title or a
// clipboard), so none reaches it raw: safe escapes them in each value, and
// the command's stdout and stderr are safeWriters that escape any a value
// still carries. JSON output escapes them itself.

// safe returns s with every control character (C0, DEL, C1), bidirectional
// formatting character and invalid UTF-8 byte written as a visible escape:
// \x1b, \u009b, \u202e. It is for one value on one line: tab and newline
// are escaped too.
func safe(s string) string {
	i := strings.IndexFunc(s, unsafeRune)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether a terminal would act on r rather than show
// it, or could be made to show text in another order than it is written.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true // bidirectional formatting
	}
	return false
}

// safeWriter passes bytes to w, each control byte except newline and tab
// written as \xNN: nothing written through it can move the cursor, clear
// the screen or start an escape sequence.
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	clean := true
	for _, c := range p {
		if unsafeByte(c) {
			clean = false
			break
		}
	}
	if clean {
		return s.w.Write(p)
	}
	out := make([]byte, 0, len(p)+16)
	for _, c := range p {
		if unsafeByte(c) {
			out = fmt.Appendf(out, `\x%02x`, c)
		} else {
			out = append(out, c)
		}
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func unsafeByte(c byte) bool { return c < 0x20 && c != '\n' && c != '\t' || c == 0x7f }
