package index

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// addressList parses an address header (RFC 5322 3.4, obsolete forms
// included) into ENVELOPE addresses, with group markers; see
// imapview_parse.go for the rules. Display names and groups' names are
// kept as sent (quotes and escapes removed, encoded words kept). It never
// fails: what cannot be read is skipped, and junk after an address ends
// the list.
func addressList(v string) []imap.Address {
	toks := addrTokens(v)
	var out []imap.Address
	inGroup := false
	for i := 0; i < len(toks); {
		if i > 0 && len(out) > 0 && !toks[i-1].special(',') && !toks[i-1].special(';') &&
			!toks[i-1].special(':') && !toks[i].special(',') && !toks[i].special(';') {
			if toks[i].kind == '(' { // a comment after an address
				i++
				continue
			}
			break // junk after an address: the rest is not read (as Dovecot)
		}
		t := toks[i]
		if t.special(',') {
			i++
			continue
		}
		if t.special(';') {
			if inGroup {
				out = append(out, imap.Address{})
				inGroup = false
			}
			i++
			continue
		}
		// Up to the token that says what this is.
		j := i
		for j < len(toks) && !toks[j].special('<') && !toks[j].special(':') && !toks[j].special('@') &&
			!toks[j].special(',') && !toks[j].special(';') && !toks[j].special('>') {
			j++
		}
		stop := byte(0)
		if j < len(toks) {
			stop = toks[j].kind
		}
		switch stop {
		case ':':
			if inGroup { // no nested groups: skip the stray colon
				i = j + 1
				continue
			}
			out = append(out, imap.Address{Mailbox: addrPhrase(toks[i:j])})
			if out[len(out)-1].Mailbox == "" {
				out[len(out)-1].Mailbox = "MISSING_MAILBOX"
			}
			inGroup = true
			i = j + 1
		case '<':
			name := addrPhrase(toks[i:j])
			k := j + 1
			for k < len(toks) && !toks[k].special('>') {
				k++
			}
			a := addrSpecOf(toks[j+1 : min(k, len(toks))])
			if name == "" {
				name = addrComment(toks[i:min(k+1, len(toks))])
			}
			a.Name = name
			out = append(out, a)
			i = k + 1
		case '>':
			i = j + 1 // a stray '>'
		default: // '@', ',', ';' or the end: an addr-spec
			k := j
			for k < len(toks) && !toks[k].special(',') && !toks[k].special(';') && !toks[k].special('<') {
				k++
			}
			if k > i {
				a := addrSpecOf(toks[i:k])
				a.Name = addrComment(toks[i:k])
				out = append(out, a)
			}
			i = k
		}
	}
	if inGroup {
		out = append(out, imap.Address{})
	}
	return out
}

// addrSpecOf reads [route ":"] local-part "@" domain.
func addrSpecOf(toks []addrToken) imap.Address {
	if len(toks) > 0 && toks[0].special('@') { // obs-route: dropped
		for i, t := range toks {
			if t.special(':') {
				toks = toks[i+1:]
				break
			}
		}
	}
	at := len(toks)
	for i, t := range toks {
		if t.special('@') {
			at = i
			break
		}
	}
	a := imap.Address{Mailbox: addrJoin(toks[:at]), Host: ""}
	if at < len(toks) {
		a.Host = addrJoin(toks[at+1:])
	}
	if a.Mailbox == "" {
		a.Mailbox = "MISSING_MAILBOX"
	}
	if a.Host == "" {
		a.Host = "MISSING_DOMAIN"
	}
	return a
}

// addrJoin joins a local part's or domain's words and dots without
// blanks (comments already left out).
func addrJoin(toks []addrToken) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == '(' {
			continue
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// addrPhrase joins a display name's words with single blanks; a '.' (obsolete
// phrase) sticks to the word before it.
func addrPhrase(toks []addrToken) string {
	var b strings.Builder
	for _, t := range toks {
		switch t.kind {
		case '(':
			continue
		case '.':
			b.WriteByte('.')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

func addrComment(toks []addrToken) string {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].kind == '(' {
			return strings.TrimSpace(toks[i].text)
		}
	}
	return ""
}

// addrToken is a word (kind 'a': atom, quoted string or domain literal),
// a comment (kind '(', its text) or a special character (kind: itself).
type addrToken struct {
	kind byte
	text string
}

func (t addrToken) special(c byte) bool { return t.kind == c }

const addrSpecials = "()<>[]:;@\\,.\""

func addrTokens(s string) []addrToken {
	var out []addrToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '"':
			var b strings.Builder
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
			i++ // the closing quote (or the end)
			out = append(out, addrToken{'a', b.String()})
		case c == '(':
			var b strings.Builder
			depth := 0
			for i < len(s) {
				switch s[i] {
				case '\\':
					if i+1 < len(s) {
						i++
					}
				case '(':
					depth++
					if depth == 1 {
						i++
						continue
					}
				case ')':
					depth--
				}
				if depth == 0 {
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, addrToken{'(', b.String()})
		case c == '[' && strings.IndexByte(s[i:], ']') > 0:
			j := strings.IndexByte(s[i:], ']')
			out = append(out, addrToken{'a', s[i : i+j+1]})
			i += j + 1
		case strings.IndexByte(addrSpecials, c) >= 0:
			out = append(out, addrToken{c, string(c)})
			i++
		default:
			j := i
			for j < len(s) && s[j] > ' ' && strings.IndexByte(addrSpecials, s[j]) < 0 {
				j++
			}
			if j == i { // a control character
				j++
			} else {
				out = append(out, addrToken{'a', s[i:j]})
			}
			i = j
		}
	}
	return out
}
