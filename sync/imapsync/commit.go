package imapsync

import (
	"context"
	"time"

	"github.com/postfach/postfach/index"
)

// committer makes delivered messages durable and indexes them, in batches
// (see commit).
type committer struct {
	s  *syncer
	in chan *delivered
}

func newCommitter(s *syncer) *committer {
	// Room for two batches: the fetchers keep streaming while one commits.
	return &committer{s: s, in: make(chan *delivered, 2*s.opts.BatchSize)}
}

// run commits as a group commit does: it takes what is waiting (up to
// BatchSize) as soon as it is idle, so a batch holds whatever arrived
// during the commit before it. A few messages wait one commit, not a
// timer; a stream of them fills batches while each commits.
func (c *committer) run(ctx context.Context) {
	batch := make([]*delivered, 0, c.s.opts.BatchSize)
	for {
		d, ok := <-c.in
		if !ok {
			return
		}
		batch = append(batch, d)
	more:
		for len(batch) < c.s.opts.BatchSize {
			select {
			case d, ok := <-c.in:
				if !ok {
					break more
				}
				batch = append(batch, d)
			default:
				break more
			}
		}
		c.flush(batch)
		batch = batch[:0]
	}
}

func (c *committer) flush(batch []*delivered) {
	if len(batch) == 0 {
		return
	}
	// The two lines bracket the commit: the kill tests aim at them and
	// tell from them whether a kill landed inside one.
	c.s.log.Debug("committing", "messages", len(batch))
	begin := time.Now()
	err := c.commit(batch)
	c.s.log.Debug("committed", "messages", len(batch), "took", time.Since(begin).Round(time.Millisecond), "err", err)
	var bytes int64
	for _, d := range batch {
		if err != nil {
			d.job.fail(err)
		} else {
			d.job.update(func(r *FolderResult) {
				r.New++
				r.Bytes += d.rfcSize
			})
			d.job.recordUIDs(OpDownload, []uint32{d.uid})
			bytes += d.rfcSize
		}
	}
	if err == nil {
		c.s.opts.Progress.Done(len(batch), bytes)
	}
	for _, d := range batch {
		d.job.release()
	}
}

// commit stores a batch through the store's door (index.Store.Deliver):
// one file sync, renames into cur/ or (unread) new/, one sync per folder,
// one transaction for the rows.
func (c *committer) commit(batch []*delivered) error {
	as := make([]*index.Arrival, len(batch))
	for i, d := range batch {
		a := &index.Arrival{Folder: d.job.f, File: d.dlv}
		m := &a.Row
		m.DeferText = true // full text: index.IndexPending
		m.UID = d.uid
		m.Flags, m.Keywords = d.flags, d.keywords
		m.SyncedFlags, m.SyncedKeywords = d.flags, d.keywords
		m.RFC822Size = d.rfcSize
		m.InternalDate = d.idate
		m.Header = d.header
		as[i] = a
	}
	return c.s.opts.Index.Deliver(context.Background(), &index.Batch{Arrivals: as})
}
