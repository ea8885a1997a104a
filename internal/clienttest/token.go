package clienttest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// tokKind is the kind of one token of an IMAP response.
type tokKind int

const (
	tokAtom   tokKind = iota // an atom, a number, NIL, or a FETCH item name with its [section]<origin>
	tokString                // a quoted string or a literal: the content
	tokList                  // a parenthesized list
)

// token is one parsed element of an IMAP response line.
type token struct {
	kind tokKind
	s    string  // atom text or string content
	list []token // list items
}

// tokenizer reads the tokens of one response (literals inline: "{n}\r\n"
// followed by n bytes).
type tokenizer struct {
	b   []byte
	pos int
}

func (z *tokenizer) skipSpace() {
	for z.pos < len(z.b) && (z.b[z.pos] == ' ' || z.b[z.pos] == '\r' || z.b[z.pos] == '\n') {
		z.pos++
	}
}

func (z *tokenizer) eof() bool { z.skipSpace(); return z.pos >= len(z.b) }

// next reads one token. Errors describe where the syntax broke.
func (z *tokenizer) next() (token, error) {
	z.skipSpace()
	if z.pos >= len(z.b) {
		return token{}, fmt.Errorf("unexpected end at %d", z.pos)
	}
	switch c := z.b[z.pos]; {
	case c == '(':
		return z.list()
	case c == ')':
		return token{}, fmt.Errorf("unexpected ) at %d", z.pos)
	case c == '"':
		return z.quoted()
	case c == '{' || c == '~' && z.pos+1 < len(z.b) && z.b[z.pos+1] == '{':
		return z.literal()
	}
	return z.atom()
}

// list reads a parenthesized list.
func (z *tokenizer) list() (token, error) {
	z.pos++
	var items []token
	for {
		z.skipSpace()
		if z.pos >= len(z.b) {
			return token{}, fmt.Errorf("unclosed list")
		}
		if z.b[z.pos] == ')' {
			z.pos++
			return token{kind: tokList, list: items}, nil
		}
		t, err := z.next()
		if err != nil {
			return token{}, err
		}
		items = append(items, t)
	}
}

// quoted reads a quoted string.
func (z *tokenizer) quoted() (token, error) {
	z.pos++
	var sb strings.Builder
	for {
		if z.pos >= len(z.b) {
			return token{}, fmt.Errorf("unterminated quoted string")
		}
		c := z.b[z.pos]
		z.pos++
		switch c {
		case '\\':
			if z.pos >= len(z.b) {
				return token{}, fmt.Errorf("unterminated quoted string")
			}
			sb.WriteByte(z.b[z.pos])
			z.pos++
		case '"':
			return token{kind: tokString, s: sb.String()}, nil
		case '\r', '\n':
			return token{}, fmt.Errorf("line break in quoted string")
		default:
			sb.WriteByte(c)
		}
	}
}

// literal reads a literal ({n} or ~{n} for literal8) and its content.
func (z *tokenizer) literal() (token, error) {
	start := z.pos
	if z.b[z.pos] == '~' {
		z.pos++
	}
	end := strings.IndexByte(string(z.b[z.pos:]), '}')
	if end < 0 {
		return token{}, fmt.Errorf("bad literal at %d", start)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(string(z.b[z.pos+1:z.pos+end]), "+"))
	if err != nil || n < 0 {
		return token{}, fmt.Errorf("bad literal size at %d", start)
	}
	z.pos += end + 1
	if !strings.HasPrefix(string(z.b[z.pos:min(z.pos+2, len(z.b))]), "\r\n") {
		return token{}, fmt.Errorf("literal size not followed by CRLF at %d", z.pos)
	}
	z.pos += 2
	if z.pos+n > len(z.b) {
		return token{}, fmt.Errorf("literal of %d bytes cut short", n)
	}
	s := string(z.b[z.pos : z.pos+n])
	z.pos += n
	return token{kind: tokString, s: s}, nil
}

// atom reads an atom; a [section] in it may hold spaces and parens
// (BODY[HEADER.FIELDS (A B)]).
func (z *tokenizer) atom() (token, error) {
	start := z.pos
	for z.pos < len(z.b) {
		c := z.b[z.pos]
		if c == '[' {
			depth := 0
			for z.pos < len(z.b) {
				switch z.b[z.pos] {
				case '[':
					depth++
				case ']':
					depth--
				}
				z.pos++
				if depth == 0 {
					break
				}
			}
			continue
		}
		if c == ' ' || c == '(' || c == ')' || c == '"' || c == '{' || c < ' ' || c == 0x7f {
			break
		}
		z.pos++
	}
	if z.pos == start {
		return token{}, fmt.Errorf("unexpected byte %q at %d", z.b[z.pos], z.pos)
	}
	return token{kind: tokAtom, s: string(z.b[start:z.pos])}, nil
}

// tokenizeAll reads tokens to the end.
func tokenizeAll(b []byte) ([]token, error) {
	z := &tokenizer{b: b}
	var out []token
	for !z.eof() {
		t, err := z.next()
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	return out, nil
}

// isAtomText reports whether s can be written as an atom with the same
// meaning as the string s (and is not NIL, which would change it).
func isAtomText(s string) bool {
	if s == "" || strings.EqualFold(s, "NIL") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// longString is the length from which strings are shown shortened (with
// their length and a hash, so that any difference still shows).
const longString = 160

// render writes t canonically: a string whose content is atom-safe is
// written as that atom (a server may send "INBOX" or INBOX), any other
// string quoted with Go escapes; a long string shortened with its length
// and hash.
func (t token) render() string {
	switch t.kind {
	case tokAtom:
		return t.s
	case tokString:
		if isAtomText(t.s) {
			return t.s
		}
		if len(t.s) > longString {
			sum := sha256.Sum256([]byte(t.s))
			return fmt.Sprintf("%s...<%d bytes sha256:%s>", strconv.Quote(t.s[:60]), len(t.s), hex.EncodeToString(sum[:6]))
		}
		return strconv.Quote(t.s)
	}
	parts := make([]string, len(t.list))
	for i, it := range t.list {
		parts[i] = it.render()
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func renderAll(ts []token) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.render()
	}
	return strings.Join(parts, " ")
}

func isNIL(t token) bool { return t.kind == tokAtom && strings.EqualFold(t.s, "NIL") }
