package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/maildir"
)

// SearchLocal returns, ascending, the local UIDs of the messages in
// folder that match c. c.SeqNum must be empty (the caller has turned
// sequence numbers into UID sets); c.UID sets are local UIDs.
//
// It is answered by one SQL query over the messages row, the message's
// IMAP view (imap_views) and the full-text table; no file is read: the
// criteria become a search Query (imapQuery), compiled by the search
// language's compiler (querycompile.go). Keys:
//   - UID sets; "*" is the folder's highest local UID.
//   - SINCE, BEFORE (ON is both) compare the internal date's day in the
//     server's time zone (the zone INTERNALDATE is shown in: searchZone);
//     SENTSINCE, SENTBEFORE (SENTON) the Date header's day in the
//     header's own zone, as RFC 3501 says (from the view; a message
//     without one: the day in UTC). A message without a Date header
//     matches neither.
//   - LARGER, SMALLER: RFC822.SIZE, the size with CRLF line ends (the
//     view's; without one the upstream size, else the size on disk).
//   - Flags and keywords, set (KEYWORD) and unset (UNKEYWORD); keywords
//     compare case-insensitively. \Recent is never set: NEW matches
//     nothing, OLD everything. MODSEQ (CONDSTORE) compares the message's
//     local MODSEQ.
//   - FROM, TO, CC, SUBJECT (and HEADER with those names) match the
//     row's decoded fields (encoded words decoded, addresses as
//     "Name <addr>"); BCC and HEADER with any other name match the
//     header's fields of that name, encoded words decoded, and so need
//     the message's view: a message without one (Store.PrepareSearch
//     computes them) does not match them. HEADER name "" matches a message with a
//     field of that name.
//   - BODY and TEXT go through the full-text index: the string's words
//     must appear in that order, the last may be the start of a word
//     (FTS5 phrase with a prefix). So they find words and word
//     beginnings, not any substring ("ell" does not find "hello"),
//     accents folded as by postfach search ("grusse" finds "Grüße"). TEXT
//     also matches a substring of the header (view) or of the row's
//     decoded fields. A message whose full-text entry is still pending
//     (fts_pending, see IndexPending) matches BODY never and TEXT only
//     by its header: the endpoint calls Store.PrepareSearch first.
//   - NOT, OR, nested, and their AND, as RFC 3501.
//
// Substring matching is case-insensitive: ASCII strings through SQLite's
// lower() and LIKE, others by Unicode simple case folding.
func (tx *ReadTx) SearchLocal(folder FolderID, c *imap.SearchCriteria) ([]uint32, error) {
	q, err := imapQuery(c)
	if err != nil {
		return nil, err
	}
	qc := &queryCompiler{tx: tx, folder: folder}
	defer qc.release()
	cond := qc.cond(q)
	if qc.err != nil {
		return nil, qc.err
	}
	from := `messages m`
	if qc.view {
		from += ` LEFT JOIN imap_views v ON v.message_id = m.id`
	}
	// One string of UIDs rather than a result row each (the driver's
	// cost per row is most of the time, see FileRowList).
	var all *string
	err = tx.queryRow(`SELECT group_concat(local_uid, ' ') FROM (SELECT m.local_uid FROM `+from+`
		WHERE m.folder_id=? AND (`+cond+`) ORDER BY m.local_uid)`, append([]any{folder}, qc.args...)...).Scan(&all)
	if err != nil {
		return nil, fmt.Errorf("index: search: %w", err)
	}
	if all == nil {
		return nil, nil
	}
	fields := strings.Fields(*all)
	out := make([]uint32, len(fields))
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("index: search: %w", err)
		}
		out[i] = uint32(n)
	}
	return out, nil
}

// PrepareSearch makes what SearchLocal reads for c complete in folder:
// when c has BODY or TEXT keys (at any depth) and full-text entries are
// pending, it indexes them (IndexPending, all folders'); when c has keys
// that read the IMAP view (BCC, HEADER other than From/To/Cc/Subject,
// SENT*, LARGER, SMALLER, TEXT), it computes the views folder lacks
// (IndexIMAP). The endpoint calls it before the Read that runs
// SearchLocal; each is quick once done.
func (s *Store) PrepareSearch(ctx context.Context, folder FolderID, c *imap.SearchCriteria) error {
	text, view := searchNeeds(c)
	if text {
		var pending bool
		err := s.Read(ctx, func(tx *ReadTx) error {
			return tx.queryRow(`SELECT EXISTS (SELECT 1 FROM fts_pending)`).Scan(&pending)
		})
		if err != nil {
			return err
		}
		if pending {
			if _, err := s.IndexPending(ctx, s.root, nil); err != nil {
				return err
			}
		}
	}
	if view {
		if _, err := s.IndexIMAP(ctx, folder); err != nil {
			return err
		}
	}
	return nil
}

// searchNeeds reports whether c has keys that read the full-text table
// and keys that read the IMAP view.
func searchNeeds(c *imap.SearchCriteria) (text, view bool) {
	text = len(c.Body) > 0 || len(c.Text) > 0
	view = len(c.Text) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() || c.Larger > 0 || c.Smaller > 0
	for _, h := range c.Header {
		if headerCols[strings.ToLower(h.Key)] == "" || h.Value == "" {
			view = true
		}
	}
	sub := func(c *imap.SearchCriteria) {
		t, v := searchNeeds(c)
		text, view = text || t, view || v
	}
	for i := range c.Not {
		sub(&c.Not[i])
	}
	for i := range c.Or {
		sub(&c.Or[i][0])
		sub(&c.Or[i][1])
	}
	return text, view
}

// searchZone is the zone whose days SINCE, BEFORE and ON compare
// internal dates in.
var searchZone = time.Local

// imapQuery translates IMAP SEARCH criteria into a search Query (the
// IMAP kinds of query nodes: UID sets, internal and sent dates,
// substrings of header fields, RFC822.SIZE, MODSEQ), compiled like the
// search language's (querycompile.go).
func imapQuery(c *imap.SearchCriteria) (*Query, error) {
	if len(c.SeqNum) > 0 {
		return nil, errors.New("index: search: sequence numbers must be turned into UIDs first")
	}
	var and []*Query
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			return nil, errors.New("index: search: $ must be turned into UIDs first")
		}
		and = append(and, &Query{Kind: qUID, UIDs: set})
	}
	if !c.Since.IsZero() || !c.Before.IsZero() {
		q := &Query{Kind: qInternalDate, From: minDate, To: maxDate}
		if !c.Since.IsZero() {
			q.From = searchMidnight(c.Since, searchZone)
		}
		if !c.Before.IsZero() {
			q.To = searchMidnight(c.Before, searchZone)
		}
		and = append(and, q)
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		q := &Query{Kind: qSentDay, From: minDate, To: maxDate}
		if !c.SentSince.IsZero() {
			q.From = calendarDay(c.SentSince)
		}
		if !c.SentBefore.IsZero() {
			q.To = calendarDay(c.SentBefore)
		}
		and = append(and, q)
	}
	for _, h := range c.Header {
		and = append(and, &Query{Kind: qHeader, Field: h.Key, Text: h.Value})
	}
	for _, s := range c.Body {
		if strings.TrimSpace(s) == "" {
			continue // every message has it
		}
		and = append(and, &Query{Kind: QText, Field: FieldBody, Text: s, Prefix: true})
	}
	for _, s := range c.Text {
		if strings.TrimSpace(s) == "" {
			continue
		}
		// The words through the full-text index (all of it), or a
		// substring of the header.
		or := []*Query{{Kind: QText, Field: fieldAll, Text: s, Prefix: true}}
		for _, col := range []string{"m.subject", "m.from_addr", "m.to_addr", "m.cc_addr", "v.header"} {
			or = append(or, &Query{Kind: qContains, Field: col, Text: s})
		}
		and = append(and, &Query{Kind: QOr, Sub: or})
	}
	for _, f := range c.Flag {
		and = append(and, imapFlag(f, true))
	}
	for _, f := range c.NotFlag {
		and = append(and, imapFlag(f, false))
	}
	if c.Larger > 0 {
		and = append(and, &Query{Kind: qRFC822Size, Op: ">", Size: c.Larger})
	}
	if c.Smaller > 0 {
		and = append(and, &Query{Kind: qRFC822Size, Op: "<", Size: c.Smaller})
	}
	if c.ModSeq != nil {
		and = append(and, &Query{Kind: qModSeq, Size: int64(min(c.ModSeq.ModSeq, 1<<63-1))})
	}
	for i := range c.Not {
		q, err := imapQuery(&c.Not[i])
		if err != nil {
			return nil, err
		}
		and = append(and, &Query{Kind: QNot, Sub: []*Query{q}})
	}
	for i := range c.Or {
		a, err := imapQuery(&c.Or[i][0])
		if err != nil {
			return nil, err
		}
		b, err := imapQuery(&c.Or[i][1])
		if err != nil {
			return nil, err
		}
		and = append(and, &Query{Kind: QOr, Sub: []*Query{a, b}})
	}
	switch len(and) {
	case 0:
		return &Query{Kind: qAll}, nil
	case 1:
		return and[0], nil
	}
	return &Query{Kind: QAnd, Sub: and}, nil
}

// imapFlag is a flag or keyword set (or unset). \Recent is never set.
func imapFlag(f imap.Flag, set bool) *Query {
	q := &Query{Kind: QNone}
	bits, kws := maildir.FlagsFromIMAP([]imap.Flag{f})
	switch {
	case strings.EqualFold(string(f), `\Recent`):
	case bits != 0:
		q = &Query{Kind: QFlag, Flag: bits}
	case len(kws) == 1:
		q = &Query{Kind: QTag, Text: kws[0]}
	}
	if set {
		return q
	}
	if q.Kind == QNone {
		return &Query{Kind: qAll}
	}
	return &Query{Kind: QNot, Sub: []*Query{q}}
}

// searchMidnight returns the start of date's day (its year, month and day, as
// go-imap gives a search date) in zone, in Unix seconds.
func searchMidnight(date time.Time, zone *time.Location) int64 {
	y, m, d := date.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, zone).Unix()
}

// uidSet is a condition for a UID set: a few ranges in SQL, a longer set
// through postfach_inset.
func (q *queryCompiler) uidSet(set imap.UIDSet) (string, error) {
	ranges := make([][2]uint32, 0, len(set))
	for _, r := range set {
		a, b := uint32(r.Start), uint32(r.Stop)
		if a == 0 || b == 0 {
			top, err := q.max()
			if err != nil {
				return "", err
			}
			if a == 0 {
				a = top
			}
			if b == 0 {
				b = top
			}
		}
		if a > b {
			a, b = b, a
		}
		ranges = append(ranges, [2]uint32{a, b})
	}
	if len(ranges) == 0 {
		return "0", nil
	}
	if len(ranges) <= 16 {
		or := make([]string, len(ranges))
		for i, r := range ranges {
			or[i] = fmt.Sprintf("m.local_uid BETWEEN %d AND %d", r[0], r[1])
		}
		return strings.Join(or, " OR "), nil
	}
	slices.SortFunc(ranges, func(x, y [2]uint32) int { return int(int64(x[0]) - int64(y[0])) })
	merged := ranges[:1]
	for _, r := range ranges[1:] {
		last := &merged[len(merged)-1]
		if uint64(r[0]) <= uint64(last[1])+1 {
			last[1] = max(last[1], r[1])
		} else {
			merged = append(merged, r)
		}
	}
	ranges = merged
	key := "s" + strconv.FormatUint(setSeq.Add(1), 10)
	uidSets.Store(key, ranges)
	q.sets = append(q.sets, key)
	return "postfach_inset(m.local_uid, " + q.arg(key) + ")", nil
}

// max returns the folder's highest local UID (0 when it is empty), what
// "*" stands for.
func (q *queryCompiler) max() (uint32, error) {
	if q.maxUID == nil {
		var n uint32
		if err := q.tx.queryRow(`SELECT coalesce(max(local_uid), 0) FROM messages WHERE folder_id=?`, q.folder).Scan(&n); err != nil {
			return 0, err
		}
		q.maxUID = &n
	}
	return *q.maxUID, nil
}

func (q *queryCompiler) release() {
	for _, k := range q.sets {
		uidSets.Delete(k)
	}
}

// uidSets holds the UID sets of running searches for postfach_inset,
// sorted by start, overlaps merged.
var (
	uidSets sync.Map // string -> [][2]uint32
	setSeq  atomic.Uint64
)

// headerCols are the header keys the messages row holds decoded.
var headerCols = map[string]string{"from": "m.from_addr", "to": "m.to_addr", "cc": "m.cc_addr", "subject": "m.subject"}

func (q *queryCompiler) header(key, value string) string {
	col := headerCols[strings.ToLower(key)]
	switch {
	case col != "" && value != "":
		return q.contains(col, value)
	case col != "":
		q.view = true
		return "CASE WHEN v.message_id IS NULL THEN " + col + " != '' ELSE postfach_header(v.header, " +
			q.arg(key) + ", '') END"
	}
	q.view = true
	// (A LIKE on the field's name first makes it slower: headerContains
	// looks only at the start of each line.)
	return "coalesce(postfach_header(v.header, " + q.arg(key) + ", " + q.arg(value) + "), 0)"
}

// likeEscape escapes s for a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// contains is a case-insensitive substring test of a text column.
func (q *queryCompiler) contains(col, needle string) string {
	if needle == "" {
		return "1"
	}
	if asciiOnly(needle) && !strings.HasPrefix(col, "v.") {
		return "instr(lower(" + col + "), " + q.arg(strings.ToLower(needle)) + ") > 0"
	}
	if asciiOnly(needle) { // a header blob (NULL without a view): LIKE folds ASCII
		return "coalesce(CAST(" + col + " AS TEXT) LIKE " + q.arg("%"+likeEscape(needle)+"%") + ` ESCAPE '\', 0)`
	}
	return "coalesce(postfach_contains(" + col + ", " + q.arg(needle) + "), 0)"
}
