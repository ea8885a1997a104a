package faultproxy

// literal is an IMAP literal found in a stream: its content starts at
// stream position start and is size bytes long.
type literal struct {
	start, size int64
}

// literalScanner finds IMAP literals ("{n}", "{n+}" or "{n-}", then CRLF)
// in a stream fed in pieces, skipping the contents of the literals it
// found. Anything that does not complete the syntax resets it.
type literalScanner struct {
	state  int   // see below
	n      int64 // digits so far
	digits int
	skip   int64 // literal bytes still to pass over
}

const (
	litNone   = iota // outside any literal syntax
	litDigits        // after '{'
	litSign          // after '+' or '-'
	litClose         // after '}'
	litCR            // after CR
)

// maxLiteralDigits keeps n far from overflowing.
const maxLiteralDigits = 18

// feed scans b, which starts at stream position off, and returns the
// literals whose content starts within or right after it.
func (l *literalScanner) feed(b []byte, off int64) []literal {
	var out []literal
	for i := 0; i < len(b); i++ {
		if l.skip > 0 {
			k := min(l.skip, int64(len(b)-i))
			l.skip -= k
			i += int(k) - 1
			continue
		}
		c := b[i]
		switch l.state {
		case litNone:
			if c == '{' {
				l.state, l.n, l.digits = litDigits, 0, 0
			}
		case litDigits:
			switch {
			case c >= '0' && c <= '9' && l.digits < maxLiteralDigits:
				l.n = l.n*10 + int64(c-'0')
				l.digits++
			case (c == '+' || c == '-') && l.digits > 0:
				l.state = litSign
			case c == '}' && l.digits > 0:
				l.state = litClose
			default:
				l.reset(c)
			}
		case litSign:
			if c == '}' {
				l.state = litClose
			} else {
				l.reset(c)
			}
		case litClose:
			if c == '\r' {
				l.state = litCR
			} else {
				l.reset(c)
			}
		case litCR:
			if c == '\n' {
				out = append(out, literal{start: off + int64(i) + 1, size: l.n})
				l.skip = l.n
				l.state = litNone
			} else {
				l.reset(c)
			}
		}
	}
	return out
}

// reset abandons a literal syntax at c, which may start a new one.
func (l *literalScanner) reset(c byte) {
	l.state = litNone
	if c == '{' {
		l.state, l.n, l.digits = litDigits, 0, 0
	}
}
