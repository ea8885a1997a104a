package index

import (
	"fmt"
	"slices"
	"strings"
)

// The compiler of a Query into one SQL condition over "messages m".
//
// Text nodes become FTS5 MATCH expressions over messages_fts (rowid =
// messages.id), each word quoted (ftsPhrase) so that no input is FTS5
// syntax; the largest subtrees made only of text (AND, OR, and "x AND NOT
// y") go into one MATCH, so `a b OR c` is one full-text look-up. The
// other nodes compare indexed columns: the folder (messages_folder_uid),
// the date (messages_sort_date, messages_folder_sort_date), the parts
// table (has:attachment, mimetype:); flags, keywords and size are tests
// of the row. Every value is a bound parameter.

// sortDate is a message's date for search: its Date header, else (none
// or unparsable) its internal date. The expression is the one the
// indexes of 011_search.sql are built on: keep them equal.
const sortDate = `(CASE WHEN m.date != 0 THEN m.date ELSE m.internal_date END)`

// ftsColumns are the FTS columns a field's words are looked for in.
var ftsColumns = map[string]string{
	FieldAny:        "{subject from_addr to_addr cc_addr body}",
	FieldFrom:       "{from_addr}",
	FieldTo:         "{to_addr}",
	FieldCc:         "{cc_addr}",
	FieldSubject:    "{subject}",
	FieldBody:       "{body}",
	FieldAttachment: "{attachments}",
}

type queryCompiler struct {
	args []any
	// For IMAP SEARCH (SearchLocal): the folder searched, whether the
	// condition reads the IMAP view (imap_views v), the folder's highest
	// UID once looked up, the UID sets registered (release them), the
	// first error.
	tx     *ReadTx
	folder FolderID
	view   bool
	maxUID *uint32
	sets   []string
	err    error
	// drive is the MATCH expression of the query's top-level text
	// conjunct (the query itself, or a text operand of its AND), and
	// driveMark stands before it in the condition: the caller replaces it
	// by "" (SQLite looks the matches up first) or "+" (it scans the date
	// index instead, testing each row against the matches), see
	// SearchQuery. Its set of matches is driveSetMark in the condition,
	// with a driveArg among the arguments: the caller puts in the look-up
	// (driveLookup, the expression its argument) or, when it has them
	// already, the matches' ids (driveIDs, a JSON array).
	drive string
}

const (
	driveMark    = "{drive}"
	driveSetMark = "{driveset}"
	driveLookup  = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"
	driveIDs     = "SELECT value FROM json_each(?)"
)

// driveArg stands for the argument of the drive's set (see drive).
type driveArg struct{}

func (c *queryCompiler) arg(v any) string {
	c.args = append(c.args, v)
	return "?"
}

// searchDrive says what a compiled condition's driveMark stands before (see
// SearchQuery, which chooses the plan by it).
type searchDrive struct {
	match  string // the MATCH expression of the drive's set ("": none)
	attach bool   // the condition is has:attachment alone
	alone  bool   // the condition is the drive's set alone (no other conjunct)
	// phrase: the query has a phrase of several words (an address is
	// one too), which FTS5 matches by walking its words' position lists:
	// much dearer per match than a word's.
	phrase bool
}

// compileQuery returns q as an SQL condition over messages m and its
// arguments, and its searchDrive: the MATCH expression whose driveMark the
// condition holds, or has:attachment alone, with driveMark before its
// condition (the zero searchDrive and no mark when neither).
func compileQuery(q *Query) (cond string, args []any, d searchDrive) {
	c := &queryCompiler{}
	if e, ok := fts(q); ok {
		return c.driving(e), c.args, searchDrive{match: c.drive, alone: true, phrase: hasPhrase(q)}
	}
	if q.Kind == QAttachment {
		return driveMark + c.cond(q), c.args, searchDrive{attach: true, alone: true}
	}
	if q.Kind == QAnd {
		if pos, neg, rest := splitAnd(q.Sub); len(pos) > 0 {
			and := []string{c.driving(ftsAnd(pos, neg))}
			for _, s := range rest {
				cond := c.cond(s)
				if s.Kind == QAttachment || s.Kind == QMimeType {
					cond = driveMark + cond // not looked up first either
				}
				and = append(and, cond)
			}
			return "(" + strings.Join(and, " AND ") + ")", c.args, searchDrive{match: c.drive, phrase: hasPhrase(q)}
		}
	}
	return c.cond(q), c.args, searchDrive{}
}

// hasPhrase reports whether q has a text term of more than one word.
func hasPhrase(q *Query) bool {
	if q.Kind == QText {
		return wordCount(q.Text) > 1
	}
	return slices.ContainsFunc(q.Sub, hasPhrase)
}

func (c *queryCompiler) driving(expr string) string {
	c.drive = expr
	c.args = append(c.args, driveArg{})
	return driveMark + "m.id IN (" + driveSetMark + ")"
}

func (c *queryCompiler) match(expr string) string {
	return "m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH " + c.arg(expr) + ")"
}

// fts returns q as one FTS5 expression, if it is made only of text.
func fts(q *Query) (string, bool) {
	switch q.Kind {
	case QText:
		if !hasWordChar(q.Text) {
			return "", false
		}
		if q.Field == fieldAll {
			return ftsPhrase(q.Text, q.Prefix), true
		}
		return ftsColumns[q.Field] + " : " + ftsPhrase(q.Text, q.Prefix), true
	case QOr:
		parts := make([]string, len(q.Sub))
		for i, s := range q.Sub {
			e, ok := fts(s)
			if !ok {
				return "", false
			}
			parts[i] = "(" + e + ")"
		}
		return strings.Join(parts, " OR "), true
	case QAnd:
		pos, neg, rest := splitAnd(q.Sub)
		if len(rest) > 0 || len(pos) == 0 {
			return "", false
		}
		return ftsAnd(pos, neg), true
	}
	return "", false
}

// splitAnd sorts the operands of an AND into text expressions (pos),
// negated text expressions (neg) and the others.
func splitAnd(subs []*Query) (pos, neg []string, rest []*Query) {
	for _, s := range subs {
		if e, ok := fts(s); ok {
			pos = append(pos, e)
			continue
		}
		if s.Kind == QNot {
			if e, ok := fts(s.Sub[0]); ok {
				neg = append(neg, e)
				continue
			}
		}
		rest = append(rest, s)
	}
	return pos, neg, rest
}

// ftsAnd is ((p1) AND (p2) ...) NOT ((n1) OR (n2) ...) (len(pos) > 0):
// flat, where one NOT after another would nest as deep as there are
// negations (FTS5's parser stack is small).
func ftsAnd(pos, neg []string) string {
	e := "(" + strings.Join(pos, ") AND (") + ")"
	if len(neg) > 0 {
		e = "(" + e + ") NOT ((" + strings.Join(neg, ") OR (") + "))"
	}
	return e
}

func (c *queryCompiler) cond(q *Query) string {
	if e, ok := fts(q); ok {
		return c.match(e)
	}
	switch q.Kind {
	case QAnd:
		pos, neg, rest := splitAnd(q.Sub)
		var and []string
		switch {
		case len(pos) > 0:
			and = append(and, c.match(ftsAnd(pos, neg)))
		case len(neg) > 0:
			// Only negated text: one look-up for all of them.
			and = append(and, "NOT "+c.match("("+strings.Join(neg, ") OR (")+")"))
		}
		for _, s := range rest {
			and = append(and, c.cond(s))
		}
		return "(" + strings.Join(and, " AND ") + ")"
	case QOr:
		var text []string
		var or []string
		for _, s := range q.Sub {
			if e, ok := fts(s); ok {
				text = append(text, "("+e+")")
			} else {
				or = append(or, c.cond(s))
			}
		}
		if len(text) > 0 { // (last: the arguments are in the order of the text)
			or = append(or, c.match(strings.Join(text, " OR ")))
		}
		return "(" + strings.Join(or, " OR ") + ")"
	case QNot:
		return "NOT (" + c.cond(q.Sub[0]) + ")"
	}
	if q.Kind >= qAll {
		return c.imapCond(q)
	}
	return c.leaf(q)
}

// leaf is a condition of the search language other than text.
func (c *queryCompiler) leaf(q *Query) string {
	switch q.Kind {
	case QText, QNone:
		return "0" // text without a word: nothing has it
	case QFolder:
		if strings.EqualFold(q.Text, "INBOX") && !q.Prefix {
			return "m.folder_id IN (SELECT id FROM folders WHERE name = 'INBOX' COLLATE NOCASE)"
		}
		if q.Prefix {
			return "m.folder_id IN (SELECT id FROM folders WHERE substr(name, 1, " + c.arg(len(q.Text)) + ") = " + c.arg(q.Text) + ")"
		}
		return "m.folder_id IN (SELECT id FROM folders WHERE name = " + c.arg(q.Text) + ")"
	case QAccount:
		return "m.folder_id IN (SELECT f.id FROM folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = " + c.arg(q.Text) + ")"
	case QFlag:
		return fmt.Sprintf("(m.flags & %d) != 0", q.Flag)
	case QTag:
		return "instr(' ' || lower(m.keywords) || ' ', " + c.arg(" "+strings.ToLower(q.Text)+" ") + ") > 0"
	case QAttachment:
		return "m.id IN (SELECT message_id FROM parts WHERE attachment = 1)"
	case QMimeType:
		t := strings.TrimSuffix(q.Text, "/*")
		if !strings.Contains(t, "/") {
			return "m.id IN (SELECT message_id FROM parts WHERE mime_type >= " + c.arg(t+"/") + " AND mime_type < " + c.arg(t+"0") + ")"
		}
		return "m.id IN (SELECT message_id FROM parts WHERE mime_type = " + c.arg(t) + ")"
	case QDate:
		var and []string
		if q.From != minDate {
			and = append(and, sortDate+" >= "+c.arg(q.From))
		}
		if q.To != maxDate {
			and = append(and, sortDate+" < "+c.arg(q.To))
		}
		if len(and) == 0 {
			return "1"
		}
		return "(" + strings.Join(and, " AND ") + ")"
	case QSize:
		return "m.size " + q.Op + " " + c.arg(q.Size)
	}
	panic(fmt.Sprintf("index: query kind %d", q.Kind))
}

// imapCond is the condition of an IMAP SEARCH key (imapQuery).
func (c *queryCompiler) imapCond(q *Query) string {
	switch q.Kind {
	case qAll:
		return "1"
	case qUID:
		s, err := c.uidSet(q.UIDs)
		if err != nil && c.err == nil {
			c.err = err
		}
		return "(" + s + ")"
	case qInternalDate:
		var and []string
		if q.From != minDate {
			and = append(and, "m.internal_date >= "+c.arg(q.From))
		}
		if q.To != maxDate {
			and = append(and, "m.internal_date < "+c.arg(q.To))
		}
		return "(" + strings.Join(and, " AND ") + ")"
	case qSentDay:
		// The view's day; without a view the day in UTC; without a
		// Date header none (matches neither).
		c.view = true
		day := `coalesce(v.sent_day, CASE WHEN m.date > 0 THEN m.date / 86400 END)`
		var and []string
		if q.From != minDate {
			and = append(and, "coalesce("+day+" >= "+c.arg(q.From)+", 0)")
		}
		if q.To != maxDate {
			and = append(and, "coalesce("+day+" < "+c.arg(q.To)+", 0)")
		}
		return "(" + strings.Join(and, " AND ") + ")"
	case qHeader:
		return c.header(q.Field, q.Text)
	case qContains:
		if strings.HasPrefix(q.Field, "v.") {
			c.view = true
		}
		return c.contains(q.Field, q.Text)
	case qRFC822Size:
		c.view = true
		return `coalesce(v.size, CASE WHEN m.rfc822_size > 0 THEN m.rfc822_size ELSE m.size END) ` + q.Op + " " + c.arg(q.Size)
	case qModSeq:
		return "m.modseq >= " + c.arg(q.Size)
	}
	panic(fmt.Sprintf("index: query kind %d", q.Kind))
}
