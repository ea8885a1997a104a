package index

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

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

// Bounds of a query, which keep its SQL within SQLite's (an expression
// at most 1,000 deep; AND chains count one level per operand).
const (
	maxQueryTerms = 200 // terms (words, phrases, field:value)
	maxQueryDepth = 50  // parentheses and NOTs inside each other
)

type queryParser struct {
	toks  []qtok
	pos   int
	zone  *time.Location
	terms int
	depth int
}

// deeper enters a parenthesis or NOT at column col.
func (p *queryParser) deeper(col int) error {
	p.depth++
	if p.depth > maxQueryDepth {
		return &QueryError{col, fmt.Sprintf("parentheses and NOTs nested more than %d deep", maxQueryDepth)}
	}
	return nil
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
		if err := p.deeper(t.col); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
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
		if err := p.deeper(t.col); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
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
	t := p.next()
	if p.terms++; p.terms > maxQueryTerms {
		return nil, &QueryError{t.col, fmt.Sprintf("more than %d terms", maxQueryTerms)}
	}
	return p.term(t)
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
