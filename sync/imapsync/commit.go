package imapsync

import (
	"context"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// committer makes delivered messages durable and indexes them, in batches:
// one filesystem sync for the batch's files, renames into cur/, one sync
// per directory, then one transaction for the rows.
type committer struct {
	s  *syncer
	in chan *delivered
}

func newCommitter(s *syncer) *committer {
	// Room for two batches: the fetchers keep streaming while one commits.
	return &committer{s: s, in: make(chan *delivered, 2*s.opts.BatchSize)}
}

// batchDelay bounds how long a delivered message waits for its batch.
const batchDelay = 250 * time.Millisecond

func (c *committer) run(ctx context.Context) {
	batch := make([]*delivered, 0, c.s.opts.BatchSize)
	var timer <-chan time.Time
	for {
		select {
		case d, ok := <-c.in:
			if !ok {
				c.flush(batch)
				return
			}
			batch = append(batch, d)
			if len(batch) == 1 {
				timer = time.After(batchDelay)
			}
			if len(batch) >= c.s.opts.BatchSize {
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

func (c *committer) commit(batch []*delivered) error {
	dlvs := make([]*maildir.Delivery, len(batch))
	var dirs []*maildir.Dir
	seen := map[*maildir.Dir]bool{}
	for i, d := range batch {
		dlvs[i] = d.dlv
		if !seen[d.job.dir] {
			seen[d.job.dir] = true
			dirs = append(dirs, d.job.dir)
		}
	}
	abortAll := func() {
		for _, d := range dlvs {
			if d != nil {
				d.Abort()
			}
		}
	}
	if err := c.s.files.Sync(dlvs); err != nil {
		abortAll()
		return err
	}
	names := make([]string, len(batch))
	for i, d := range batch {
		name, err := d.job.dir.Commit(d.dlv, d.uid, d.flags)
		if err != nil {
			// Files already committed stay: the next run indexes them.
			for _, d := range dlvs[i:] {
				d.Abort()
			}
			return err
		}
		names[i] = name
	}
	for _, dir := range dirs {
		if err := dir.SyncDir(); err != nil {
			return err
		}
	}
	return c.s.opts.Index.Write(context.Background(), func(tx *index.Tx) error {
		ms := make([]*index.NewMessage, len(batch))
		for i, d := range batch {
			m := &index.NewMessage{DeferText: true} // full text: index.IndexPending
			ms[i] = m
			m.Folder = d.job.f.ID
			m.Key = d.dlv.Key()
			m.File = names[i] // cur/ or, unread, new/
			m.UID = d.uid
			m.Flags, m.Keywords = d.flags, d.keywords
			m.SyncedFlags, m.SyncedKeywords = d.flags, d.keywords
			m.Size = d.dlv.Size()
			m.RFC822Size = d.rfcSize
			m.InternalDate = d.idate
			m.Header = d.header
			m.SHA256 = d.dlv.Sum()
		}
		_, err := tx.AddMessages(ms)
		return err
	})
}
