package index

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// WriteRelaxed is Write for bookkeeping that a later run recomputes (a
// folder's last sync time, its server position after a run that changed
// nothing): its commit does not wait for the disk. The index is in WAL
// mode, and this commit alone runs with synchronous=NORMAL: its frames
// reach the log without an fsync of their own and become durable with the
// next ordinary commit or checkpoint, which syncs the whole log first. So
// the durable state is always a prefix of the commit order: a crash of
// the process loses no commit, and a power loss can lose this one only
// together with every commit after it. Never use it for anything the
// Maildir or a server depends on (a delivered message's row, an intent).
func (s *Store) WriteRelaxed(ctx context.Context, fn func(*Tx) error) error {
	if s.dry != nil {
		return s.dryWrite(ctx, fn)
	}
	if s.w == nil {
		return errReadOnly
	}
	s.wstmts.ensure()
	// The write connection (there is one) for the whole transaction: the
	// setting is the connection's.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.Background(), "PRAGMA synchronous=FULL"); err != nil {
			// Never hand on a connection whose commits would not be
			// durable: it is closed, the next Write opens another
			// (with synchronous=FULL from its DSN).
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return s.write(ctx, conn.BeginTx, fn)
}
