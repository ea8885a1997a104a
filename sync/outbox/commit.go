package outbox

import (
	"context"
	"time"

	"github.com/postfach/postfach/index"
)

// testHookCommit, when set (by tests), runs before each commit of
// outcomes and claims; an error it returns is the commit's.
var testHookCommit func(outcomes []index.OutboxOutcome, claim index.OutboxID) error

// commitRetries are the waits between the tries of commitRetry.
var commitRetries = []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, time.Second}

// batch is one pass's report and the outcomes not committed yet (each
// is committed with the next claim, or at the end of the pass). The
// outcomes live in the Sender (pending points at Sender.unsaved): an
// outcome the relay has answered is never dropped, and one whose commit
// failed (the index busy past its timeout, a full disk) is committed by
// the next pass before anything else, so its message is not sent again.
type batch struct {
	rep     FlushReport
	pending []index.OutboxOutcome
}

// commit commits the pending outcomes and claims claim (0: none), in one
// commit; the outcomes committed are counted in the report.
func (s *Sender) commit(ctx context.Context, b *batch, claim index.OutboxID) error {
	return s.commitAfter(ctx, b, claim, nil)
}

// commitAfter is commit with before (if not nil) run first inside the
// transaction, with the store's write lock held (see endData): what it
// adds to the pending outcomes is committed with them. Its error rolls
// the transaction back and is returned.
func (s *Sender) commitAfter(ctx context.Context, b *batch, claim index.OutboxID, before func() error) error {
	err := s.o.Store.OutboxCommitAfter(context.WithoutCancel(ctx), func() ([]index.OutboxOutcome, error) {
		if before != nil {
			if err := before(); err != nil {
				return nil, err
			}
		}
		if testHookCommit != nil {
			if err := testHookCommit(b.pending, claim); err != nil {
				return nil, err
			}
		}
		return b.pending, nil
	}, claim)
	if err != nil {
		return err
	}
	for _, o := range b.pending {
		switch o.State {
		case index.OutboxQueuedState:
			b.rep.Deferred++
		case index.OutboxFailedState:
			b.rep.Failed++
		default:
			b.rep.Sent++
		}
	}
	b.pending = nil
	return nil
}

// commitRetry commits the pending outcomes (no claim), trying again
// after each of commitRetries (not after ctx is done).
func (s *Sender) commitRetry(ctx context.Context, b *batch) error {
	if len(b.pending) == 0 {
		return nil
	}
	err := s.commit(ctx, b, 0)
	for _, d := range commitRetries {
		if err == nil || len(b.pending) == 0 {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		err = s.commit(ctx, b, 0)
	}
	return err
}
