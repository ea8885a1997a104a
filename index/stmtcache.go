package index

import (
	"database/sql"
	"errors"
	"sync"
)

// stmtCache holds the hot queries (hotQueries) prepared on one pool (the
// read pool or the write connection) for the life of the store: a query
// that every command of a local client runs (a FETCH's rows, say) is
// parsed once per connection, not once per transaction. database/sql
// remembers on which connections each statement is prepared; a
// transaction uses one through Tx.Stmt, which prepares it on the
// transaction's own connection if needed (never waiting for another
// connection, so a transaction on the one write connection cannot
// deadlock on it).
//
// The statements are prepared on the first transaction of the pool
// (ensure, called by Read and Write before they begin one), not when the
// store opens: a short-lived process (postfach send) that never reads
// does not open a read connection nor parse queries it never runs.
type stmtCache struct {
	db   *sql.DB
	once sync.Once
	m    map[string]*sql.Stmt // read-only once ensure has run
}

// hotQueries are the queries run once or more per local client command.
var hotQueries = []string{localMessagesRange, localMessagesList, localFlagsRange, localFlagsList}

// newStmtCache returns the cache of db's hot queries, none prepared yet.
func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db}
}

// ensure prepares hotQueries on the pool, once. Call it outside any
// transaction of the pool (it may need a connection). A query that fails
// to prepare is left out: transactions prepare it themselves.
func (c *stmtCache) ensure() {
	c.once.Do(func() {
		m := make(map[string]*sql.Stmt, len(hotQueries))
		for _, q := range hotQueries {
			if st, err := c.db.Prepare(q); err == nil {
				m[q] = st
			}
		}
		c.m = m
	})
}

// get returns q prepared on the pool, or nil when q is not a hot query
// (or ensure has not run).
func (c *stmtCache) get(q string) *sql.Stmt { return c.m[q] }

// close closes the statements; called before the pool is closed.
func (c *stmtCache) close() error {
	c.once.Do(func() {}) // none prepared from here on
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
