package pop3d

import (
	"errors"
	"strconv"
	"strings"
)

// command is one parsed command line.
type command struct {
	Verb string   // upper case, 3 or 4 letters
	Args []string // the space-separated arguments
	// Rest is everything after the verb and one space, as sent: PASS takes
	// it whole (a password may hold spaces, RFC 1939 section 7).
	Rest string
}

var (
	errEmpty   = errors.New("empty command")
	errVerb    = errors.New("malformed command")
	errControl = errors.New("control character in command")
	errArgs    = errors.New("too many arguments")
)

// maxArgs bounds the arguments a command line may carry (no command takes
// more than two; AUTH's initial response is the second).
const maxArgs = 4

// parseCommand parses a command line, its line end (CRLF or LF) already
// removed. The verb is 3 or 4 ASCII letters, case-insensitive; arguments
// are separated by spaces (more than one is tolerated). Control characters
// other than space are refused, except that a tab inside Rest is kept for
// PASS.
func parseCommand(line string) (command, error) {
	var c command
	if line == "" {
		return c, errEmpty
	}
	for i := 0; i < len(line); i++ {
		if b := line[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return c, errControl
		}
	}
	verb, rest, _ := strings.Cut(line, " ")
	if len(verb) < 3 || len(verb) > 4 {
		return c, errVerb
	}
	for i := 0; i < len(verb); i++ {
		b := verb[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z') {
			return c, errVerb
		}
	}
	c.Verb = strings.ToUpper(verb)
	c.Rest = rest
	for f := range strings.FieldsSeq(rest) {
		if len(c.Args) == maxArgs {
			if c.Verb == "PASS" {
				break // PASS reads Rest
			}
			return command{}, errArgs
		}
		c.Args = append(c.Args, f)
	}
	return c, nil
}

// parseNum parses a message number or a line count: decimal digits only
// (no sign), at most 9 of them, so that it always fits an int.
func parseNum(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
