package pop3

import (
	"errors"
	"fmt"
	"strings"
)

// Pure parsers for the lines of POP3 replies. They take a line without its
// CRLF and never panic; the fuzz tests hold them to that.

// MsgInfo is one entry of a LIST or UIDL listing.
type MsgInfo struct {
	Num  int    // message number in this session, from 1
	Size int64  // size in octets as the server counts them (with CRLF); LIST only
	UID  string // unique id; UIDL only

	// UIDProblem is non-empty when UID breaks RFC 1939 (longer than 70
	// octets, or with octets outside 0x21-0x7E) or repeats an earlier UID of
	// the same listing. The UID is kept exactly as the server sent it; the
	// caller decides whether it can be trusted to recognize the message.
	UIDProblem string
}

// statusKind is the type of a status line.
type statusKind int

const (
	statusOK   statusKind = iota // +OK
	statusErr                    // -ERR
	statusCont                   // "+ " SASL continuation (RFC 5034)
)

// parseStatus splits a status line into its kind and its text (what follows
// "+OK ", "-ERR " or "+ "). The keywords are matched case-insensitively.
func parseStatus(line string) (statusKind, string, error) {
	switch {
	case hasWord(line, "+OK"):
		return statusOK, trimWord(line, 3), nil
	case hasWord(line, "-ERR"):
		return statusErr, trimWord(line, 4), nil
	case line == "+" || strings.HasPrefix(line, "+ "):
		return statusCont, trimWord(line, 1), nil
	}
	return 0, "", errors.New("status line is neither +OK nor -ERR")
}

// hasWord reports whether line starts with kw (case-insensitively) followed
// by a space or the end of the line.
func hasWord(line, kw string) bool {
	return len(line) >= len(kw) && strings.EqualFold(line[:len(kw)], kw) &&
		(len(line) == len(kw) || line[len(kw)] == ' ')
}

func trimWord(line string, n int) string {
	if len(line) > n {
		return line[n+1:]
	}
	return ""
}

// responseCode returns the RFC 2449 response code at the start of a reply
// text, without brackets ("[SYS/TEMP] busy" gives "SYS/TEMP"), or "" when the
// text has none or a malformed one.
func responseCode(text string) string {
	if !strings.HasPrefix(text, "[") {
		return ""
	}
	end := strings.IndexByte(text, ']')
	if end < 2 {
		return ""
	}
	code := text[1:end]
	// resp-code = "[" resp-level *("/" resp-level) "]", resp-level = 1*schar,
	// schar = %x21-5A / %x5C / %x5E-7F: printable ASCII without "[" and "]".
	for _, level := range strings.Split(code, "/") {
		if level == "" {
			return ""
		}
		for i := 0; i < len(level); i++ {
			if c := level[i]; c < 0x21 || c > 0x7e || c == '[' {
				return ""
			}
		}
	}
	return code
}

// parseNumber parses a decimal number of at most 18 digits (it fits int64
// and, on 64-bit platforms, int). Signs, spaces and empty strings are errors.
func parseNumber(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("missing number")
	}
	if len(s) > 18 {
		return 0, fmt.Errorf("number %.20q too large", s)
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%.20q is not a number", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// parseMsgNum parses a message number: 1 or more, and an int.
func parseMsgNum(s string) (int, error) {
	n, err := parseNumber(s)
	if err != nil {
		return 0, err
	}
	if n < 1 || int64(int(n)) != n {
		return 0, fmt.Errorf("message number %q out of range", s)
	}
	return int(n), nil
}

// parseListLine parses a scan listing, "num SP size", as sent in a LIST
// listing. RFC 1939 allows more text after the size; it is ignored.
func parseListLine(line string) (MsgInfo, error) {
	numStr, rest, ok := strings.Cut(line, " ")
	if !ok {
		return MsgInfo{}, errors.New("scan listing has no size")
	}
	num, err := parseMsgNum(numStr)
	if err != nil {
		return MsgInfo{}, err
	}
	sizeStr, _, _ := strings.Cut(rest, " ")
	size, err := parseNumber(sizeStr)
	if err != nil {
		return MsgInfo{}, fmt.Errorf("message size: %w", err)
	}
	return MsgInfo{Num: num, Size: size}, nil
}

// parseStat parses the text of a STAT reply, "count SP size", where the
// count may be 0.
func parseStat(text string) (count int, size int64, err error) {
	countStr, rest, ok := strings.Cut(text, " ")
	if !ok {
		return 0, 0, errors.New("STAT reply has no size")
	}
	n, err := parseNumber(countStr)
	if err != nil || int64(int(n)) != n {
		return 0, 0, fmt.Errorf("message count %.20q is not a number", countStr)
	}
	sizeStr, _, _ := strings.Cut(rest, " ")
	size, err = parseNumber(sizeStr)
	if err != nil {
		return 0, 0, fmt.Errorf("maildrop size: %w", err)
	}
	return int(n), size, nil
}

// parseUIDLLine parses a unique-id listing, "num SP uid". Everything after
// the first space is the UID, kept as sent; UIDProblem says when it breaks
// RFC 1939. A missing or empty UID is an error.
func parseUIDLLine(line string) (MsgInfo, error) {
	numStr, uid, ok := strings.Cut(line, " ")
	if !ok || uid == "" {
		return MsgInfo{}, errors.New("unique-id listing has no UID")
	}
	num, err := parseMsgNum(numStr)
	if err != nil {
		return MsgInfo{}, err
	}
	return MsgInfo{Num: num, UID: uid, UIDProblem: checkUID(uid)}, nil
}

// checkUID says what is wrong with a UID under RFC 1939 (1 to 70 octets in
// 0x21-0x7E), or "" if nothing is.
func checkUID(uid string) string {
	var problems []string
	if len(uid) > 70 {
		problems = append(problems, fmt.Sprintf("%d octets long, more than 70", len(uid)))
	}
	for i := 0; i < len(uid); i++ {
		if c := uid[i]; c < 0x21 || c > 0x7e {
			problems = append(problems, fmt.Sprintf("octet 0x%02x at offset %d is outside 0x21-0x7E", c, i))
			break
		}
	}
	return strings.Join(problems, "; ")
}

// apopTimestamp returns the "<...>" timestamp of a greeting (RFC 1939
// section 7), brackets included, or "" when the greeting has none.
func apopTimestamp(greeting string) string {
	start := strings.IndexByte(greeting, '<')
	if start < 0 {
		return ""
	}
	end := strings.IndexByte(greeting[start:], '>')
	if end < 2 {
		return ""
	}
	ts := greeting[start : start+end+1]
	for i := 1; i < len(ts)-1; i++ {
		if c := ts[i]; c <= 0x20 || c >= 0x7f || c == '<' {
			return ""
		}
	}
	return ts
}

// parseCapaLine splits one line of a CAPA listing into its upper-cased name
// and its arguments.
func parseCapaLine(line string) (name string, args []string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", nil
	}
	return strings.ToUpper(f[0]), f[1:]
}
