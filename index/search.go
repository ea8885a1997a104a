package index

import (
	"strings"
)

// SearchResult is one full-text hit.
type SearchResult struct {
	Message
	FolderName string
	Account    string
}

// Search runs a full-text query (FTS5 syntax; plain words are ANDed) and
// returns up to limit hits, best first.
func (tx *ReadTx) Search(query string, limit int) ([]SearchResult, error) {
	q := ftsQuery(query)
	rows, err := tx.tx.Query(`SELECT `+prefixed("m.", messageCols)+`, f.name, a.name
		FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
		JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id
		WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?`, q, limit)
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

// ftsQuery quotes each bare word so that user input cannot be an FTS5
// syntax error; words joined by spaces are ANDed.
func ftsQuery(s string) string {
	fields := strings.Fields(s)
	for i, f := range fields {
		fields[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
	}
	return strings.Join(fields, " ")
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
