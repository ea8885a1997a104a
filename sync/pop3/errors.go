package pop3

import (
	"errors"
	"strings"
	"unicode"

	"github.com/postfach/postfach/sync/nethint"
)

var (
	// ErrBodyOpen is returned by a command issued while the body of an earlier
	// RETR or TOP has neither been read to io.EOF nor closed.
	ErrBodyOpen = errors.New("pop3: the previous message body was not read to the end or closed")

	// ErrClosed is returned by every method after Close or Quit.
	ErrClosed = errors.New("pop3: client closed")

	// ErrNoSTLS is returned by Dial and NewClient with TLS "starttls" when the
	// server does not list STLS in its capabilities.
	// It is permanent (see nethint.Permanent): a setting to change.
	ErrNoSTLS error = &nethint.PermanentError{Err: errors.New("pop3: server does not offer STLS; use tls = implicit, or none on a trusted network")}

	// ErrNoAPOP is returned by APOP when the server greeting has no timestamp.
	ErrNoAPOP = errors.New("pop3: server greeting has no APOP timestamp")
)

// Error is a -ERR reply from the server. The session stays usable.
type Error struct {
	// Command is the command that was refused, with secrets left out: "PASS"
	// and "AUTH PLAIN" carry no arguments, "APOP user" no digest. It is
	// "greeting" for a server that refused the connection.
	Command string
	// Reply is the server's text after "-ERR ", response code included.
	Reply string
	// Code is the RFC 2449 response code without brackets, such as "AUTH",
	// "IN-USE", "LOGIN-DELAY", "SYS/TEMP" or "SYS/PERM"; empty if none.
	Code string
}

func (e *Error) Error() string {
	if e.Reply == "" {
		return "pop3: " + e.Command + ": -ERR"
	}
	return "pop3: " + e.Command + ": -ERR " + printable(e.Reply)
}

// IsAuthError reports whether err is a refusal of the credentials: a -ERR with
// the [AUTH] response code, or a -ERR without a response code to USER, PASS,
// APOP or AUTH. Retrying with the same credentials will not help.
func IsAuthError(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	if e.Code != "" {
		return strings.EqualFold(e.Code, "AUTH")
	}
	verb, _, _ := strings.Cut(e.Command, " ")
	switch verb {
	case "USER", "PASS", "APOP", "AUTH":
		return true
	}
	return false
}

// IsTemporary reports whether err is a -ERR whose response code says that
// trying again later may succeed: SYS/TEMP (RFC 3206), IN-USE (the mailbox is
// locked by another session) or LOGIN-DELAY (logged in too recently), each
// including its sub-codes. Network errors are not classified here.
func IsTemporary(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	code := strings.ToUpper(e.Code)
	for _, c := range []string{"SYS/TEMP", "IN-USE", "LOGIN-DELAY"} {
		if code == c || strings.HasPrefix(code, c+"/") {
			return true
		}
	}
	return false
}

// Permanent reports whether the server will refuse the same way as long
// as the settings stay (see nethint.Permanent, the classification the
// agent's backoff uses): a refused login (IsAuthError) and SYS/PERM (RFC
// 3206) are permanent; SYS/TEMP, IN-USE and LOGIN-DELAY (IsTemporary) and
// every other -ERR are temporary.
func (e *Error) Permanent() bool {
	if IsTemporary(e) {
		return false
	}
	code := strings.ToUpper(e.Code)
	return IsAuthError(e) || code == "SYS/PERM" || strings.HasPrefix(code, "SYS/PERM/")
}

// ProtocolError is a server reply that breaks the protocol: a malformed or
// over-long line, a listing that does not parse, data where none may be. The
// session cannot go on after it.
type ProtocolError struct {
	Command string // the command whose reply was wrong, as in Error.Command
	Msg     string // what is wrong
	Line    string // the offending line, cut after 100 bytes; may be empty
}

func (e *ProtocolError) Error() string {
	s := "pop3: " + e.Command + ": protocol error: " + e.Msg
	if e.Line != "" {
		s += ": " + quote(e.Line)
	}
	return s
}

// quote shows a server line in an error message: printable, on one line.
func quote(line string) string {
	return `"` + printable(line) + `"`
}

// printable replaces control characters and invalid UTF-8 so that a server's
// text cannot break an error message or a log line.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}
