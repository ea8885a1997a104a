package index

import (
	"strings"
	"sync/atomic"
	"time"
)

// SearchResult is one search hit.
type SearchResult struct {
	Message
	FolderName string
	Account    string
}

// Search parses query (ParseQuery, dates in the local zone) and returns
// up to limit hits, newest first (SearchQuery).
func (tx *ReadTx) Search(query string, limit int) ([]SearchResult, error) {
	q, err := ParseQuery(query, time.Local)
	if err != nil {
		return nil, err
	}
	return tx.SearchQuery(q, limit, 0)
}

// searchManyMatches is the number of full-text matches from which
// SearchQuery has SQLite scan by date rather than look the matches up.
var searchManyMatches atomic.Int64

func init() { searchManyMatches.Store(4000) }

// SearchQuery returns the messages matching q, newest first (by their
// Date header, else their internal date; then by id, newest row first),
// skipping offset and returning at most limit (all when limit < 0). It
// is one SQL query
// (compileQuery); a message whose full-text entry is still pending
// (fts_pending, IndexPending) matches no text term yet.
func (tx *ReadTx) SearchQuery(q *Query, limit, offset int) ([]SearchResult, error) {
	cond, args, d := compileQuery(q)
	switch {
	case d.attach:
		// has:attachment alone: the parts_attachment index counts the
		// messages with one.
		var n, total int64
		if err := tx.queryRow(`SELECT (SELECT count(*) FROM (SELECT 1 FROM parts WHERE attachment = 1 LIMIT ?)),
			(SELECT ifnull(max(id), 0) FROM messages)`, searchManyMatches.Load()).Scan(&n, &total); err != nil {
			return nil, err
		}
		cond = strings.ReplaceAll(cond, driveMark, byDateMark(n, total, limit, offset, d.alone))
	case d.match != "":
		// The matches (up to searchManyMatches) are asked first: FTS5
		// finds them quickly, and when that is all of them their ids go
		// into the query as they are, so that FTS5 does not match them
		// twice (a phrase, such as an address's, walks the whole lists
		// of its words).
		// A phrase's matches are all asked for: matching it again would
		// cost more than carrying its ids, however many (a phrase of
		// 4,600 matches on 50,000 messages: 8.3 ms counted to 4,000 and
		// matched again, 5.6 ms with its ids; a word of 45,000: 13.9 and
		// 21.7 ms).
		countTo := searchManyMatches.Load()
		if d.phrase {
			countTo = -1 // no LIMIT
		}
		var n, total int64
		var ids string
		err := tx.queryRow(`SELECT count(*), json_group_array(rowid), (SELECT ifnull(max(id), 0) FROM messages)
			FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? LIMIT ?)`,
			d.match, countTo).Scan(&n, &ids, &total)
		if err != nil {
			return nil, err
		}
		set, arg := driveIDs, any(ids)
		if countTo >= 0 && n >= countTo {
			set, arg = driveLookup, d.match
		}
		cond = strings.ReplaceAll(cond, driveMark, byDateMark(n, total, limit, offset, d.alone))
		cond = strings.Replace(cond, driveSetMark, set, 1)
		for i := range args {
			if _, ok := args[i].(driveArg); ok {
				args[i] = arg
			}
		}
	}
	rows, err := tx.query(`SELECT `+prefixed("m.", messageCols)+`, f.name, a.name
		FROM messages m JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id
		WHERE `+cond+` ORDER BY `+sortDate+` DESC, m.id DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SearchResult
	for rows.Next() {
		var r SearchResult
		var fname, aname string
		m, err := scanMessage(scanTail{rows, []any{&fname, &aname}})
		if err != nil {
			return nil, err
		}
		r.Message, r.FolderName, r.Account = *m, fname, aname
		out = append(out, r)
	}
	return out, rows.Err()
}

// byDateMark chooses how SQLite finds a page of the n messages (of
// about total) a condition's set holds: "" looks them up and sorts them,
// "+" (which keeps SQLite from looking the set up first) reads the date
// index newest first and tests each row against the set, until the page
// is full. From searchManyMatches on, it reads by date. For a set alone
// (no other condition to meet), reading by date finds the page after
// about page*total/n rows, looking up reads n: reading by date wins once
// n*n > page*total (at 50,000 messages and a page of 50, from about
// 1,600; of 5,000 messages with attachments, the page took 8.2 ms looked
// up and sorted, 1.7 ms by date). With other conditions, which the rows
// read by date must meet too, only from searchManyMatches. A query for
// every match (limit < 0) looks them up below searchManyMatches.
func byDateMark(n, total int64, limit, offset int, alone bool) string {
	page := int64(limit + offset)
	if n >= searchManyMatches.Load() || (alone && limit >= 0 && n*n > page*total) {
		return "+"
	}
	return ""
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

type scanTail struct {
	row  interface{ Scan(...any) error }
	tail []any
}

func (s scanTail) Scan(dst ...any) error { return s.row.Scan(append(dst, s.tail...)...) }
