package imapsync

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// committer makes delivered messages durable and indexes them, in batches
// (see commit).
type committer struct {
	s  *syncer
	in chan *delivered

	fetching atomic.Int32  // FETCH commands streaming bodies (fetchSome)
	idle     chan struct{} // nudged when fetching drops to zero
	queued   atomic.Int64  // messages handed over (give) and not yet committed
}

func newCommitter(s *syncer) *committer {
	// Room for two batches: the fetchers keep streaming while one commits.
	return &committer{s: s, in: make(chan *delivered, 2*s.opts.BatchSize), idle: make(chan struct{}, 1)}
}

// batchDelay bounds how long a delivered message waits for its batch.
const batchDelay = 250 * time.Millisecond

// aheadMax is the most messages waiting to be committed whose files give
// syncs ahead when no chunk of downloads waits: two batches. At 100,000
// messages an incremental run (1,000 downloads, 250 a folder: no chunks)
// took 1.16 s with it against 1.32 s with maildir.SyncfsMin, the bound
// before (means of four alternating runs).
const aheadMax = 512

// fetchStarted and fetchDone bracket a FETCH of bodies. When no FETCH is
// left, nothing more is on its way for a while: the committer commits what
// it holds at once instead of waiting for batchDelay (an incremental run's
// few downloads are then durable while the rest of its work goes on, not
// at its end). A stream of FETCHes keeps batches full.
func (c *committer) fetchStarted() { c.fetching.Add(1) }

func (c *committer) fetchDone() {
	if c.fetching.Add(-1) == 0 {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
}

// give hands d over to be committed, unless ctx ends first (false: d is
// the caller's still). While fewer messages wait than a batch that
// maildir.Syncer makes durable with one syncfs, or, unless chunks of
// downloads wait in the queue, fewer than aheadMax, each file's fsync
// starts now (maildir.Delivery.SyncAhead), in the background: an
// incremental run's downloads are on the disk by the time their batch
// commits, which then needs no syncfs (it writes back every dirty page of
// the file system, other programs' too: next to a busy Dovecot, a batch of
// 256 waited 150 to 200 ms for it). A stream of chunks (a first sync)
// leaves its files to its batches' syncfs.
func (c *committer) give(ctx context.Context, d *delivered) bool {
	if n := c.queued.Add(1); n <= maildir.SyncfsMin || (n <= aheadMax && !c.s.q.streaming()) {
		d.dlv.SyncAhead()
	}
	select {
	case c.in <- d:
		return true
	case <-ctx.Done():
		c.queued.Add(-1)
		return false
	}
}

func (c *committer) run(ctx context.Context) {
	batch := make([]*delivered, 0, c.s.opts.BatchSize)
	var timer <-chan time.Time
	// take adds a message from c.in to the batch (committing a full one);
	// at the end of c.in it commits the rest and says to stop.
	take := func(d *delivered, ok bool) bool {
		if !ok {
			c.flush(batch)
			return false
		}
		batch = append(batch, d)
		if len(batch) == 1 {
			timer = time.After(batchDelay)
		}
		// Once the task streaming is the run's last, nothing is left to
		// overlap with the commits: what is batched is committed as soon
		// as nothing more waits, not at that task's end (an incremental
		// run at 100,000 messages ended with a commit of its last
		// folder's 250 new messages, 50 to 60 ms). The batches size
		// themselves by what comes in meanwhile.
		if len(batch) >= c.s.opts.BatchSize || (len(c.in) == 0 && c.s.q.last()) {
			c.flush(batch)
			batch, timer = batch[:0], nil
		}
		return true
	}
	for {
		select {
		case d, ok := <-c.in:
			if !take(d, ok) {
				return
			}
		case <-c.idle:
			// What the last FETCH handed over before it ended is in
			// c.in already.
			for queued := true; queued; {
				select {
				case d, ok := <-c.in:
					if !take(d, ok) {
						return
					}
				default:
					queued = false
				}
			}
			if c.fetching.Load() == 0 && len(batch) > 0 {
				c.flush(batch)
				batch, timer = batch[:0], nil
			}
		case <-timer:
			c.flush(batch)
			batch, timer = batch[:0], nil
		}
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
	c.queued.Add(-int64(len(batch)))
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
