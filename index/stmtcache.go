package index

import (
	"database/sql"
	"errors"
	"sync"
)

// stmtCache holds the statements one pool (the read pool or the write
// connection) runs again and again, prepared on the pool for the life of
// the store: such a query is parsed once per connection, not once per
// transaction (SQLite's parser was a fifth of the agent's CPU while it
// sent queued mail, each pass preparing the same dozen statements).
// database/sql remembers on which connections each statement is
// prepared; a transaction uses one through Tx.Stmt, which prepares it on
// the transaction's own connection if needed (never waiting for another
// connection, so a transaction on the one write connection cannot
// deadlock on it).
//
// What to keep is learnt, not listed: a query that a transaction had to
// prepare itself is a miss, and a query that missed promoteAfter times is
// prepared on the pool by the next ensure. Read and Write call ensure
// before they begin a transaction, outside any: preparing on the pool
// needs one of its connections, and the write pool's only one is the
// transaction's. So a short-lived process (postfach send, postfach
// search) prepares each of its few queries once, in its transactions,
// and the agent soon runs its steady work on prepared statements.
//
// Bounded: at most maxCached statements per pool, and misses counted for
// at most maxCounted queries at a time (queries built per call, such as a
// search's or one with a list of ids, can be many: when the count is
// full it starts over, and the queries that recur are soon counted
// again).
type stmtCache struct {
	db *sql.DB

	mu     sync.Mutex
	m      map[string]*sql.Stmt
	misses map[string]int
	ready  []string // promoted: for the next ensure to prepare
	closed bool
}

const (
	promoteAfter = 2
	maxCached    = 200
	maxCounted   = 1000
)

// newStmtCache returns db's statement cache, empty.
func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, misses: map[string]int{}}
}

// ensure prepares on the pool the queries promoted since the last call.
// Call it outside any transaction of the pool (it may need a
// connection). A query that fails to prepare is left out: transactions
// prepare it themselves (and it may be promoted again).
func (c *stmtCache) ensure() {
	c.mu.Lock()
	want := c.ready
	c.ready = nil
	c.mu.Unlock()
	for _, q := range want {
		st, err := c.db.Prepare(q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		keep := !c.closed && c.m[q] == nil && len(c.m) < maxCached
		if keep {
			c.m[q] = st
		}
		c.mu.Unlock()
		if !keep {
			st.Close()
		}
	}
}

// get returns q prepared on the pool, or nil.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// miss counts q prepared by a transaction of its own; at promoteAfter it
// is promoted (see stmtCache).
func (c *stmtCache) miss(q string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.m) >= maxCached {
		return
	}
	n, counted := c.misses[q]
	if !counted && len(c.misses) >= maxCounted {
		clear(c.misses) // mostly one-off queries: the recurring ones come back
	}
	if n+1 < promoteAfter {
		c.misses[q] = n + 1
		return
	}
	delete(c.misses, q)
	c.ready = append(c.ready, q)
}

// close closes the statements and prepares none from here on; called
// before the pool is closed.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.ready = nil
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}
