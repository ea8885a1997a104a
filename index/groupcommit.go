package index

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Group commit. A Write that comes while another commits waits for it and
// is then committed with the others that came meanwhile, each in a
// savepoint of one transaction: a sync's workers, its committer and its
// uploads' bookkeeping write side by side, and one commit (its fsync, and
// the pages the writes share: interior pages, the folder's counts, the
// journal) serves them all. Alone, a Write is one transaction, as it
// always was.
//
// Each write keeps its own outcome. An error of its fn rolls back its
// savepoint alone; only an error of the transaction itself (its begin, a
// savepoint that cannot be rolled back, the commit) fails every write in
// it, each as it would have failed alone. A Write returns once the
// transaction that holds it committed, so what a caller did before its
// Write (a file renamed, a directory synced) still comes before its
// commit; writes are published to the change feed in the order they ran.
//
// One caller at a time leads: it commits what is queued, itself among it,
// then hands the lead to the first that queued meanwhile, so no caller
// waits for more than the batch before it and its own.

// groupWrite is one Write waiting for, or in, a group commit.
type groupWrite struct {
	ctx     context.Context
	fn      func(*Tx) error
	changes []Change
	err     error
	lead    chan struct{} // closed: this one leads the next batch
	done    chan struct{} // closed: err is its outcome
}

// writeQueue is the Writes waiting for the one committing.
type writeQueue struct {
	mu      sync.Mutex
	waiting []*groupWrite
	leading bool // a caller is committing a batch
}

// groupSavepoint names each write's savepoint in a batch.
const groupSavepoint = "group_write"

// groupWrite runs fn in the next group commit (see above).
func (s *Store) groupWrite(ctx context.Context, fn func(*Tx) error) error {
	g := &groupWrite{ctx: ctx, fn: fn, lead: make(chan struct{}), done: make(chan struct{})}
	q := s.wq
	q.mu.Lock()
	q.waiting = append(q.waiting, g)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !lead {
		select {
		case <-g.done:
			return g.err
		case <-g.lead:
		}
	}
	q.mu.Lock()
	batch := q.waiting
	q.waiting = nil
	q.mu.Unlock()
	s.commitGroup(batch)
	q.mu.Lock()
	if len(q.waiting) > 0 {
		close(q.waiting[0].lead)
	} else {
		q.leading = false
	}
	q.mu.Unlock()
	<-g.done
	return g.err
}

// commitGroup runs batch's writes in one transaction and commits it,
// giving each its outcome.
func (s *Store) commitGroup(batch []*groupWrite) {
	defer func() {
		for _, g := range batch {
			close(g.done)
		}
	}()
	fail := func(gs []*groupWrite, err error) {
		for _, g := range gs {
			g.err = err
		}
	}
	s.wstmts.ensure()
	// Not a caller's context: one caller's end must not roll back the
	// others' writes. Each caller's is looked at before its fn runs.
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		fail(batch, fmt.Errorf("index: %w", err))
		return
	}
	alone := len(batch) == 1
	var ran []*groupWrite // fn returned nil
	for i, g := range batch {
		if err := g.ctx.Err(); err != nil {
			g.err = fmt.Errorf("index: %w", err)
			continue
		}
		if !alone {
			if _, err := tx.Exec("SAVEPOINT " + groupSavepoint); err != nil {
				tx.Rollback()
				fail(append(ran, batch[i:]...), fmt.Errorf("index: %w", diskFull(err)))
				return
			}
		}
		wt := &Tx{ReadTx: ReadTx{tx: tx, root: s.root, cache: s.wstmts}}
		err := g.fn(wt)
		switch {
		case err != nil && alone:
			tx.Rollback()
			g.err = diskFull(err)
			return
		case err != nil:
			g.err = diskFull(err)
			if rerr := undoSavepoint(tx); rerr != nil {
				// The transaction is gone with it (SQLite rolls back
				// the whole of it on some errors): nothing it held
				// is written.
				tx.Rollback()
				fail(append(ran, batch[i+1:]...), fmt.Errorf("index: %w", diskFull(rerr)))
				return
			}
			continue
		case !alone:
			if _, rerr := tx.Exec("RELEASE " + groupSavepoint); rerr != nil {
				tx.Rollback()
				fail(append(ran, batch[i:]...), fmt.Errorf("index: %w", diskFull(rerr)))
				return
			}
		}
		g.changes = wt.changes
		ran = append(ran, g)
	}
	if len(ran) == 0 {
		tx.Rollback()
		return
	}
	for _, g := range ran {
		if len(g.changes) > 0 {
			// Held until published, so that the changes of the next
			// commit of this store are published after these.
			s.feed.commit.Lock()
			defer s.feed.commit.Unlock()
			break
		}
	}
	if err := tx.Commit(); err != nil {
		fail(ran, diskFull(fmt.Errorf("index: commit: %w", err)))
		return
	}
	if testHookCommitted != nil {
		testHookCommitted()
	}
	for _, g := range ran {
		s.feed.publish(g.changes)
	}
}

// undoSavepoint rolls back the batch's current savepoint and ends it.
func undoSavepoint(tx *sql.Tx) error {
	if _, err := tx.Exec("ROLLBACK TO " + groupSavepoint); err != nil {
		return err
	}
	_, err := tx.Exec("RELEASE " + groupSavepoint)
	return err
}
