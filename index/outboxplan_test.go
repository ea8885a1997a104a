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
	defer db.Close()
	want := map[string]string{
		"due":       "USING INDEX outbox_due (account_id=? AND state=? AND next_attempt<?)",
		"followups": "USING INDEX outbox_followups (account_id=?)",
		"waiting":   "USING INDEX outbox_waiting (account_id=? AND next_attempt>?)",
	}
	for name, q := range index.OutboxPassQueries {
		rows, err := db.Query("EXPLAIN QUERY PLAN "+q, "acct", int64(0))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		if strings.Contains(text, "SCAN o") || !strings.Contains(text, want[name]) {
			t.Errorf("%s: plan %q, want a search %s", name, text, want[name])
		}
	}
}
