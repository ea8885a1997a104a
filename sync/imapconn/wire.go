package imapconn

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
)

// The uploader's reading and writing of IMAP syntax: response codes,
// literals, APPENDUID, strings and mailbox names.

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
