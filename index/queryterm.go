package index

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/postfach/postfach/maildir"
)

// The terms of the search language (query.go): fields and their values.

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
