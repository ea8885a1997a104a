package index

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Accent folding for the full-text index. The FTS5 tokenizer (unicode61
// remove_diacritics 2) folds case and strips the diacritics of letters
// that decompose into a base letter and marks (ü, é, ó, ñ); letters that
// do not decompose (ß, æ, ø, ł, đ, þ, ligatures) it keeps. foldIndexText
// spells those out in plain Latin letters, and is applied alike to every
// text written into messages_fts and to every query word: "Grüße" and
// "grusse" both become the token "grusse".

var indexFolds = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe",
	'ø': "o", 'Ø': "o", 'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'ð': "d", 'Ð': "d",
	'þ': "th", 'Þ': "th", 'ı': "i", 'ħ': "h", 'Ħ': "h", 'ŧ': "t", 'Ŧ': "t",
	'ŀ': "l", 'Ŀ': "l", 'ĸ': "k", 'ŋ': "n", 'Ŋ': "n", 'ﬀ': "ff", 'ﬁ': "fi",
	'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "st", 'ﬆ': "st", 'Ĳ': "ij", 'ĳ': "ij",
}

// foldLead marks the first bytes of the UTF-8 encodings of indexFolds'
// letters: text without them (ASCII, most of any text) is passed over a
// byte at a time.
var foldLead = func() (lead [256]bool) {
	for r := range indexFolds {
		lead[string(r)[0]] = true
	}
	return lead
}()

// foldIndexText returns s with the letters unicode61 does not fold
// spelled out (see indexFolds); s itself when it has none.
func foldIndexText(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if foldLead[s[i]] {
			r, _ := utf8.DecodeRuneInString(s[i:])
			if _, ok := indexFolds[r]; ok {
				break
			}
		}
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if f, ok := indexFolds[r]; ok {
			b.WriteString(f)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// insertText writes message id's full-text entry, which it has not got:
// its decoded header fields, body text and attachment names, folded.
func (tx *Tx) insertText(id MessageID, h *Header, body string, attachments []string) error {
	_, err := tx.exec(`INSERT INTO messages_fts(rowid, subject, from_addr, to_addr, cc_addr, body, attachments) VALUES(?,?,?,?,?,?,?)`,
		id, foldIndexText(h.Subject), foldIndexText(h.From), foldIndexText(h.To), foldIndexText(h.Cc),
		foldIndexText(body), foldIndexText(strings.Join(attachments, "\n")))
	return err
}

// hasWordChar reports whether s has a character the full-text tokenizer
// (unicode61) keeps: a letter or a digit.
func hasWordChar(s string) bool {
	for _, r := range s {
		if isWordChar(r) {
			return true
		}
	}
	return false
}

func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
}

// wordCount is the number of words in s, as the index's tokenizer
// separates them (runs of word characters; see hasWordChar).
func wordCount(s string) int {
	n, in := 0, false
	for _, r := range s {
		w := isWordChar(r)
		if w && !in {
			n++
		}
		in = w
	}
	return n
}

// ftsPhrase is s as an FTS5 phrase (a string, so that nothing in it is
// FTS5 syntax; a NUL, which would end it, becomes a blank: it separates
// words as any control character does), folded, with the prefix mark when
// prefix.
func ftsPhrase(s string, prefix bool) string {
	s = strings.ReplaceAll(s, "\x00", " ")
	p := `"` + strings.ReplaceAll(foldIndexText(s), `"`, `""`) + `"`
	if prefix {
		p += " *"
	}
	return p
}
