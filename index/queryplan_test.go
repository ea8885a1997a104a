package index_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestOutboxPassQueriesIndexed: the queries a sender makes on every
// pass (and so on every `postfach send` while the relay is down) read
// through an index what the pass needs, never every row of a queue
// written offline: no full scan of the outbox, and each through the
// index meant for it.
func TestOutboxPassQueriesIndexed(t *testing.T) {
	db := planDB(t)
	want := map[string]string{
		"due":       "USING INDEX outbox_due (account_id=? AND state=? AND next_attempt<?)",
		"followups": "USING INDEX outbox_followups (account_id=?)",
		"waiting":   "USING INDEX outbox_waiting (account_id=? AND next_attempt>?)",
	}
	for name, q := range index.OutboxPassQueries {
		text := queryPlan(t, db, q, "acct", int64(0))
		if strings.Contains(text, "SCAN o") || !strings.Contains(text, want[name]) {
			t.Errorf("%s: plan %q, want a search %s", name, text, want[name])
		}
	}
}

// TestFileRowsQueriesIndexed: the scan's lookups of a folder's rows by
// key or by id (index.ReadTx.FileRowsByKey, FileRowsByID) find each row
// directly, never by reading every entry of the folder: at 40,000 rows
// that was 2 ms per lookup of a few ids.
func TestFileRowsQueriesIndexed(t *testing.T) {
	db := planDB(t)
	for col, want := range map[string]string{
		"key": "(folder_id=? AND key=?)", // an index of both
		"id":  " USING INTEGER PRIMARY KEY (rowid=?)",
	} {
		text := queryPlan(t, db, index.FileRowsQuery(col, 4), int64(1), "a", "b", "c", "d")
		if !strings.HasPrefix(text, "SEARCH messages ") || !strings.HasSuffix(text, want) {
			t.Errorf("by %s: plan %q, want a search ending %s", col, text, want)
		}
	}
}

// planDB returns a new index, opened read-only for EXPLAIN QUERY PLAN.
func planDB(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "index.db")
	st, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// queryPlan returns q's plan, its steps joined by "; ".
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}
