package index

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/maildir"
)

// The search language of `postfach search` (ParseQuery), parsed into a
// tree of Query nodes that compileQuery turns into one SQL condition.
//
//	query   = or
//	or      = and { "OR" and }
//	and     = unary { ["AND"] unary }          (juxtaposition is AND)
//	unary   = ("NOT" | "-") unary | primary
//	primary = "(" or ")" | [field ":"] value
//	value   = word ["*"] | '"' phrase '"' ["*"]
//
// AND, OR and NOT are operators only in capitals. A word runs to the next
// blank, parenthesis or quote; a phrase's `"` and `\` are escaped with `\`.
// A name before ':' that is no field makes the whole a word ("Re:").

// The open ends of a QDate range.
const (
	minDate = math.MinInt64
	maxDate = math.MaxInt64
)

// QueryKind is the kind of a Query node.
type QueryKind int

// The kinds of Query nodes.
const (
	QAnd        QueryKind = iota // Sub all match
	QOr                          // one of Sub matches
	QNot                         // Sub[0] does not match
	QText                        // Field's words (Text) in this order, the last a prefix if Prefix
	QFolder                      // the folder named Text (INBOX in any case)
	QAccount                     // the account named Text
	QFlag                        // Flag is set
	QTag                         // keyword Text is set (case-insensitive)
	QAttachment                  // has an attachment
	QMimeType                    // has a MIME part of type Text ("image" or "image/*": any image/...)
	QDate                        // the date is in [From, To) (Unix seconds)
	QSize                        // the size on disk compares (Op: < <= > >=) with Size
	QNone                        // matches nothing (a text without words)

	// IMAP SEARCH keys (searchlocal.go imapQuery) without a word in the
	// search language.
	qAll          // matches every message
	qUID          // the local UID is in UIDs
	qInternalDate // the internal date is in [From, To)
	qSentDay      // the Date header's day (days since the epoch in its own zone) is in [From, To)
	qHeader       // a header field named Field contains Text (case-insensitive substring)
	qContains     // the column Field (an SQL expression) contains Text
	qRFC822Size   // RFC822.SIZE compares (Op) with Size
	qModSeq       // the MODSEQ is at least Size
)

// Text fields (Query.Field for QText).
const (
	FieldAny        = ""
	FieldFrom       = "from"
	FieldTo         = "to"
	FieldCc         = "cc"
	FieldSubject    = "subject"
	FieldAttachment = "attachment"
	FieldBody       = "body"
	fieldAll        = "all" // every column, attachment names too (IMAP TEXT)
)

// Query is a node of a parsed search query.
type Query struct {
	Kind   QueryKind
	Sub    []*Query
	Field  string
	Text   string
	Prefix bool
	Flag   maildir.Flags
	From   int64
	To     int64
	Op     string
	Size   int64
	UIDs   imap.UIDSet
}

// QueryError is a syntax error in a search query; Column counts
// characters from 1.
type QueryError struct {
	Column int
	Msg    string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("search: at column %d: %s", e.Column, e.Msg)
}

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

type queryParser struct {
	toks []qtok
	pos  int
	zone *time.Location
}

// ParseQuery parses a search query (see the grammar above); dates are
// days, months and years in zone. An empty query is an error.
func ParseQuery(s string, zone *time.Location) (*Query, error) {
	toks, err := lexQuery(s)
	if err != nil {
		return nil, err
	}
	p := &queryParser{toks: toks, zone: zone}
	if p.peek().kind == tokEOF {
		return nil, &QueryError{1, "empty query"}
	}
	q, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return nil, &QueryError{t.col, `unexpected ")"`}
		}
		return nil, &QueryError{t.col, "unexpected " + describeTok(t)}
	}
	return q, nil
}

func describeTok(t qtok) string {
	switch t.kind {
	case tokLParen:
		return `"("`
	case tokRParen:
		return `")"`
	case tokAnd:
		return "AND"
	case tokOr:
		return "OR"
	case tokNot:
		return "NOT"
	case tokMinus:
		return `"-"`
	case tokEOF:
		return "end of query"
	}
	return strconv.Quote(t.text)
}

func (p *queryParser) peek() qtok { return p.toks[p.pos] }
func (p *queryParser) next() qtok {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *queryParser) or() (*Query, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	subs := []*Query{first}
	for p.peek().kind == tokOr {
		op := p.next()
		if !p.startsTerm() {
			return nil, &QueryError{p.peek().col, "expected a term after OR at column " + strconv.Itoa(op.col) + ", found " + describeTok(p.peek())}
		}
		q, err := p.and()
		if err != nil {
			return nil, err
		}
		subs = append(subs, q)
	}
	if len(subs) == 1 {
		return first, nil
	}
	return &Query{Kind: QOr, Sub: subs}, nil
}

func (p *queryParser) startsTerm() bool {
	switch p.peek().kind {
	case tokWord, tokPhrase, tokLParen, tokNot, tokMinus:
		return true
	}
	return false
}

func (p *queryParser) and() (*Query, error) {
	if !p.startsTerm() {
		return nil, &QueryError{p.peek().col, "expected a term, found " + describeTok(p.peek())}
	}
	var subs []*Query
	for {
		q, err := p.unary()
		if err != nil {
			return nil, err
		}
		subs = append(subs, q)
		if p.peek().kind == tokAnd {
			op := p.next()
			if !p.startsTerm() {
				return nil, &QueryError{p.peek().col, "expected a term after AND at column " + strconv.Itoa(op.col) + ", found " + describeTok(p.peek())}
			}
			continue
		}
		if !p.startsTerm() {
			break
		}
	}
	if len(subs) == 1 {
		return subs[0], nil
	}
	return &Query{Kind: QAnd, Sub: subs}, nil
}

func (p *queryParser) unary() (*Query, error) {
	switch t := p.peek(); t.kind {
	case tokNot, tokMinus:
		p.next()
		if !p.startsTerm() {
			return nil, &QueryError{p.peek().col, "expected a term after " + describeTok(t) + " at column " + strconv.Itoa(t.col) + ", found " + describeTok(p.peek())}
		}
		q, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Query{Kind: QNot, Sub: []*Query{q}}, nil
	case tokLParen:
		p.next()
		if p.peek().kind == tokRParen {
			return nil, &QueryError{p.peek().col, "empty parentheses"}
		}
		q, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek().kind != tokRParen {
			return nil, &QueryError{p.peek().col, `missing ")" (for "(" at column ` + strconv.Itoa(t.col) + ")"}
		}
		p.next()
		return q, nil
	}
	return p.term(p.next())
}

// term turns a word or phrase token into a node.
func (p *queryParser) term(t qtok) (*Query, error) {
	valCol := t.col + utf8.RuneCountInString(t.field)
	if t.field != "" {
		valCol++
	}
	bad := func(format string, a ...any) error {
		return &QueryError{valCol, fmt.Sprintf(format, a...)}
	}
	switch t.field {
	case "", FieldFrom, FieldTo, FieldCc, FieldSubject, FieldAttachment, FieldBody:
		if t.field != "" && t.text == "" && !t.quoted {
			return nil, bad("%s: needs a value", t.field)
		}
		return &Query{Kind: QText, Field: t.field, Text: t.text, Prefix: t.prefix}, nil
	}
	val := t.text
	if t.prefix && !t.quoted {
		val += "*"
	}
	switch t.field {
	case "folder", "account", "tag", "keyword", "flag", "is", "has", "mimetype", "size", "before", "after", "date":
		if val == "" {
			return nil, bad("%s: needs a value", t.field)
		}
	}
	switch t.field {
	case "folder":
		return &Query{Kind: QFolder, Text: t.text, Prefix: t.prefix}, nil
	case "account":
		return &Query{Kind: QAccount, Text: val}, nil
	case "tag", "keyword":
		return &Query{Kind: QTag, Text: val}, nil
	case "flag", "is":
		f, ok := queryFlags[strings.ToLower(val)]
		if !ok {
			return nil, bad("unknown flag %q (seen, flagged, answered, draft, deleted)", val)
		}
		return &Query{Kind: QFlag, Flag: f}, nil
	case "has":
		if strings.ToLower(val) != "attachment" {
			return nil, bad("has: knows only has:attachment, not %q", val)
		}
		return &Query{Kind: QAttachment}, nil
	case "mimetype":
		return &Query{Kind: QMimeType, Text: strings.ToLower(val)}, nil
	case "size":
		return parseSize(val, bad)
	case "before", "after", "date":
		return p.parseDate(t.field, val, bad)
	}
	// Not a field: "Re:" or "http://x" are words.
	return &Query{Kind: QText, Text: t.field + ":" + t.text, Prefix: t.prefix}, nil
}

var queryFlags = map[string]maildir.Flags{
	"seen": maildir.FlagSeen, "read": maildir.FlagSeen,
	"flagged": maildir.FlagFlagged, "starred": maildir.FlagFlagged,
	"answered": maildir.FlagAnswered, "replied": maildir.FlagAnswered,
	"draft": maildir.FlagDraft, "deleted": maildir.FlagDeleted,
	"forwarded": maildir.FlagPassed, "passed": maildir.FlagPassed,
}

func parseSize(val string, bad func(string, ...any) error) (*Query, error) {
	op := ""
	for _, o := range []string{">=", "<=", ">", "<"} {
		if strings.HasPrefix(val, o) {
			op = o
			break
		}
	}
	if op == "" {
		return nil, bad("size: needs <, <=, > or >= before the size, as in size:>1M")
	}
	num := strings.TrimSuffix(strings.TrimSuffix(val[len(op):], "B"), "b")
	mult := int64(1)
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			num = num[:n-1]
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 || n > 1<<50 || num == "" || strings.ContainsAny(num, "eEnNxXpP_+-") {
		return nil, bad("size: %q is not a size (a number with k, M or G)", val[len(op):])
	}
	return &Query{Kind: QSize, Op: op, Size: int64(n * float64(mult))}, nil
}

// parseDate handles before:, after: and date: (X, X..Y, X.., ..Y).
func (p *queryParser) parseDate(field, val string, bad func(string, ...any) error) (*Query, error) {
	if field != "date" {
		lo, hi, err := p.dateSpan(val)
		if err != nil {
			return nil, bad("%s: %v", field, err)
		}
		_ = hi
		if field == "before" {
			return &Query{Kind: QDate, From: minDate, To: lo}, nil
		}
		return &Query{Kind: QDate, From: lo, To: maxDate}, nil
	}
	a, b, isRange := strings.Cut(val, "..")
	if !isRange {
		lo, hi, err := p.dateSpan(val)
		if err != nil {
			return nil, bad("date: %v", err)
		}
		return &Query{Kind: QDate, From: lo, To: hi}, nil
	}
	q := &Query{Kind: QDate, From: minDate, To: maxDate}
	if a == "" && b == "" {
		return nil, bad("date: a range needs a start or an end")
	}
	if a != "" {
		lo, _, err := p.dateSpan(a)
		if err != nil {
			return nil, bad("date: %v", err)
		}
		q.From = lo
	}
	if b != "" {
		_, hi, err := p.dateSpan(b)
		if err != nil {
			return nil, bad("date: %v", err)
		}
		q.To = hi
	}
	return q, nil
}

// dateSpan returns the start and end (Unix seconds) of a year (2024), a
// month (2024-03) or a day (2024-03-15) in the parser's zone.
func (p *queryParser) dateSpan(s string) (lo, hi int64, err error) {
	parts := strings.Split(s, "-")
	if len(parts) > 3 {
		return 0, 0, fmt.Errorf("%q is not a date (YYYY, YYYY-MM or YYYY-MM-DD)", s)
	}
	nums := make([]int, len(parts))
	for i, x := range parts {
		want := 2
		if i == 0 {
			want = 4
		}
		n, e := strconv.Atoi(x)
		if e != nil || len(x) != want || n < 0 {
			return 0, 0, fmt.Errorf("%q is not a date (YYYY, YYYY-MM or YYYY-MM-DD)", s)
		}
		nums[i] = n
	}
	y, m, d := nums[0], 1, 1
	if len(nums) > 1 {
		m = nums[1]
		if m < 1 || m > 12 {
			return 0, 0, fmt.Errorf("%q: no month %d", s, m)
		}
	}
	if len(nums) > 2 {
		d = nums[2]
		if d < 1 || d > 31 || time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Day() != d {
			return 0, 0, fmt.Errorf("%q: no such day", s)
		}
	}
	start := time.Date(y, time.Month(m), d, 0, 0, 0, 0, p.zone)
	var end time.Time
	switch len(nums) {
	case 1:
		end = start.AddDate(1, 0, 0)
	case 2:
		end = start.AddDate(0, 1, 0)
	default:
		end = start.AddDate(0, 0, 1)
	}
	return start.Unix(), end.Unix(), nil
}

// String shows q in a compact prefix form, for tests and logs:
// (and a (or b c) (not d)), from:"x"*, folder:"INBOX", date:[lo,hi).
func (q *Query) String() string {
	sub := func(op string) string {
		parts := []string{op}
		for _, s := range q.Sub {
			parts = append(parts, s.String())
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	star := ""
	if q.Prefix {
		star = "*"
	}
	switch q.Kind {
	case QAnd:
		return sub("and")
	case QOr:
		return sub("or")
	case QNot:
		return sub("not")
	case QText:
		f := q.Field
		if f == "" {
			f = "text"
		}
		return f + ":" + strconv.Quote(q.Text) + star
	case QFolder:
		return "folder:" + strconv.Quote(q.Text) + star
	case QAccount:
		return "account:" + strconv.Quote(q.Text)
	case QFlag:
		return fmt.Sprintf("flag:%d", q.Flag)
	case QTag:
		return "tag:" + strconv.Quote(q.Text)
	case QAttachment:
		return "has:attachment"
	case QMimeType:
		return "mimetype:" + strconv.Quote(q.Text)
	case QDate:
		lo, hi := "", ""
		if q.From != minDate {
			lo = time.Unix(q.From, 0).UTC().Format(time.RFC3339)
		}
		if q.To != maxDate {
			hi = time.Unix(q.To, 0).UTC().Format(time.RFC3339)
		}
		return "date:[" + lo + "," + hi + ")"
	case QSize:
		return "size:" + q.Op + strconv.FormatInt(q.Size, 10)
	case QNone:
		return "none"
	case qAll:
		return "all"
	}
	return fmt.Sprintf("imap%d:%q:%q:%s:%d:%d:%d", q.Kind, q.Field, q.Text, q.Op, q.Size, q.From, q.To)
}
