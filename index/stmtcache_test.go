package index

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestStmtCacheLearns: a query the transactions run again and again is
// prepared on the pool after promoteAfter misses, and later transactions
// use it; a query run once is not kept; the cache stays bounded however
// many distinct queries run.
func TestStmtCacheLearns(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	const recurring = `SELECT count(*) FROM folders WHERE id > ?`
	run := func(q string) {
		t.Helper()
		var n int
		if err := st.Read(ctx, func(tx *ReadTx) error { return tx.queryRow(q, 0).Scan(&n) }); err != nil {
			t.Fatal(err)
		}
		if err := st.Write(ctx, func(tx *Tx) error { return tx.queryRow(q, 0).Scan(&n) }); err != nil {
			t.Fatal(err)
		}
	}
	run(`SELECT count(*) FROM accounts WHERE id > ?`)
	for range promoteAfter + 1 {
		run(recurring)
	}
	for _, c := range []*stmtCache{st.rstmts, st.wstmts} {
		if c.get(recurring) == nil {
			t.Errorf("a query run %d times is not prepared on the pool", promoteAfter+1)
		}
		if c.get(`SELECT count(*) FROM accounts WHERE id > ?`) != nil {
			t.Errorf("a query run once is prepared on the pool")
		}
	}
	// Many distinct queries, each run often: the cache stops at
	// maxCached, and the counts at maxCounted.
	for i := range maxCached + 50 {
		for range promoteAfter + 1 {
			run(fmt.Sprintf(`SELECT count(*) FROM folders WHERE id > ? + %d`, i))
		}
	}
	for _, c := range []*stmtCache{st.rstmts, st.wstmts} {
		c.mu.Lock()
		n, m := len(c.m), len(c.misses)
		c.mu.Unlock()
		if n > maxCached || m > maxCounted {
			t.Errorf("cache holds %d statements and %d counts, want at most %d and %d", n, m, maxCached, maxCounted)
		}
		if n < maxCached {
			t.Errorf("cache holds %d statements, want it full (%d)", n, maxCached)
		}
	}
}
