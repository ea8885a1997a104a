package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// DryRun returns a view of the store for a run that must change nothing:
// its Reads and Writes all go through one write transaction, on the write
// connection, that is never committed. Each Write is a savepoint inside it
// (undone alone when fn fails), so the view's later Reads see what its
// earlier Writes did, as a real run's would: a dry run can create the
// account and folder rows it then refers to. Discard rolls everything back
// and must be called when the run is done; until then the view holds the
// store's one write connection (other writers wait). Its calls are
// serialized, and fn must not call the view again.
func (s *Store) DryRun() *Store {
	c := *s
	c.dry = &dryTx{}
	return &c
}

// Discard ends a dry-run view (see DryRun), rolling back all it wrote. It
// does nothing on a store that is not one.
func (s *Store) Discard() error {
	if s.dry == nil {
		return nil
	}
	s.dry.mu.Lock()
	defer s.dry.mu.Unlock()
	if s.dry.tx == nil {
		return nil
	}
	err := s.dry.tx.Rollback()
	s.dry.tx, s.dry.done = nil, true
	return err
}

// dryTx is the open transaction of a dry-run view.
type dryTx struct {
	mu   sync.Mutex
	tx   *sql.Tx
	done bool
	n    int // savepoints taken, for their names
}

// dryBegin returns the view's transaction, beginning it on first use,
// unless ctx has ended. The caller holds mu.
func (s *Store) dryBegin(ctx context.Context) (*sql.Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	d := s.dry
	if d.done {
		return nil, errors.New("index: dry-run view used after Discard")
	}
	if d.tx == nil {
		if s.w == nil {
			return nil, errReadOnly
		}
		// Not the caller's context: the transaction outlives the call.
		tx, err := s.w.BeginTx(context.Background(), nil)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		d.tx = tx
	}
	return d.tx, nil
}

// dryRead runs fn inside the dry-run view's transaction.
func (s *Store) dryRead(ctx context.Context, fn func(*ReadTx) error) error {
	s.dry.mu.Lock()
	defer s.dry.mu.Unlock()
	tx, err := s.dryBegin(ctx)
	if err != nil {
		return err
	}
	rt := &ReadTx{tx: tx, root: s.root}
	defer rt.closeStmts()
	return fn(rt)
}

// dryWrite runs fn in a savepoint of the dry-run view's transaction,
// rolled back to when fn fails.
func (s *Store) dryWrite(ctx context.Context, fn func(*Tx) error) error {
	s.dry.mu.Lock()
	defer s.dry.mu.Unlock()
	tx, err := s.dryBegin(ctx)
	if err != nil {
		return err
	}
	s.dry.n++
	sp := fmt.Sprintf("dry%d", s.dry.n)
	if _, err := tx.Exec("SAVEPOINT " + sp); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	wt := &Tx{ReadTx: ReadTx{tx: tx, root: s.root}}
	err = fn(wt)
	wt.closeStmts()
	if err != nil {
		if _, rerr := tx.Exec("ROLLBACK TO " + sp); rerr != nil {
			return errors.Join(err, fmt.Errorf("index: %w", rerr))
		}
	}
	if _, rerr := tx.Exec("RELEASE " + sp); rerr != nil && err == nil {
		err = fmt.Errorf("index: %w", rerr)
	}
	return diskFull(err)
}
