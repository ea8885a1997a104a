package index

import (
	"strings"
	"unicode"
)

// The lexer of the search language (query.go).

type qtokKind int

const (
	tokWord qtokKind = iota
	tokPhrase
	tokLParen
	tokRParen
	tokAnd
	tokOr
	tokNot
	tokMinus
	tokEOF
)

type qtok struct {
	kind   qtokKind
	text   string // a word or phrase (unescaped); field:value kept whole for words
	field  string // for a field term: the field name, text is the value
	prefix bool
	col    int // column of the token's first character (1-based, runes)
	quoted bool
}

// lexQuery splits a query into tokens.
func lexQuery(s string) ([]qtok, error) {
	var toks []qtok
	rs := []rune(s)
	i := 0
	for i < len(rs) {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '(':
			toks = append(toks, qtok{kind: tokLParen, col: i + 1})
			i++
		case r == ')':
			toks = append(toks, qtok{kind: tokRParen, col: i + 1})
			i++
		case r == '-' && i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) && rs[i+1] != ')' &&
			(i == 0 || unicode.IsSpace(rs[i-1]) || rs[i-1] == '('):
			toks = append(toks, qtok{kind: tokMinus, col: i + 1})
			i++
		default:
			t, n, err := lexTerm(rs, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = n
		}
	}
	return append(toks, qtok{kind: tokEOF, col: len(rs) + 1}), nil
}

// lexTerm reads a term at rs[i]: [field:]word or [field:]"phrase", with an
// optional trailing '*'.
func lexTerm(rs []rune, i int) (qtok, int, error) {
	t := qtok{kind: tokWord, col: i + 1}
	// A field name: letters then ':'.
	j := i
	for j < len(rs) && (rs[j] >= 'a' && rs[j] <= 'z' || rs[j] >= 'A' && rs[j] <= 'Z') {
		j++
	}
	if j > i && j < len(rs) && rs[j] == ':' {
		t.field = strings.ToLower(string(rs[i:j]))
		i = j + 1
	}
	if i < len(rs) && rs[i] == '"' {
		var b strings.Builder
		k := i + 1
		for ; k < len(rs) && rs[k] != '"'; k++ {
			if rs[k] == '\\' && k+1 < len(rs) {
				k++
			}
			b.WriteRune(rs[k])
		}
		if k >= len(rs) {
			return t, 0, &QueryError{i + 1, `missing closing '"'`}
		}
		k++
		t.kind, t.quoted, t.text = tokPhrase, true, b.String()
		if k < len(rs) && rs[k] == '*' {
			t.prefix = true
			k++
		}
		if k < len(rs) && !unicode.IsSpace(rs[k]) && rs[k] != '(' && rs[k] != ')' {
			return t, 0, &QueryError{k + 1, "expected a blank after the closing '\"'"}
		}
		return t, k, nil
	}
	k := i
	for k < len(rs) && !unicode.IsSpace(rs[k]) && rs[k] != '(' && rs[k] != ')' && rs[k] != '"' {
		k++
	}
	if k < len(rs) && rs[k] == '"' {
		return t, 0, &QueryError{k + 1, `unexpected '"' inside a word`}
	}
	t.text = string(rs[i:k])
	if t.field == "" {
		switch t.text {
		case "AND":
			t.kind = tokAnd
		case "OR":
			t.kind = tokOr
		case "NOT":
			t.kind = tokNot
		}
	}
	if t.kind == tokWord && strings.HasSuffix(t.text, "*") {
		t.text = strings.TrimRight(t.text, "*")
		t.prefix = true
	}
	return t, k, nil
}
