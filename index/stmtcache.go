package index

import (
	"database/sql"
	"errors"
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
type stmtCache struct {
	m map[string]*sql.Stmt // read-only after newStmtCache
}

// hotQueries are the queries run once or more per local client command.
var hotQueries = []string{localMessagesRange, localMessagesList, localFlagsRange, localFlagsList}

// newStmtCache prepares hotQueries on db, which no transaction holds yet.
func newStmtCache(db *sql.DB) (*stmtCache, error) {
	c := &stmtCache{m: make(map[string]*sql.Stmt, len(hotQueries))}
	for _, q := range hotQueries {
		st, err := db.Prepare(q)
		if err != nil {
			c.close()
			return nil, err
		}
		c.m[q] = st
	}
	return c, nil
}

// get returns q prepared on the pool, or nil when q is not a hot query.
func (c *stmtCache) get(q string) *sql.Stmt { return c.m[q] }

// close closes the statements; called before the pool is closed.
func (c *stmtCache) close() error {
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
