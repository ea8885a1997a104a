package index

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/postfach/postfach/maildir"
)

// ftsTextLimit caps the decoded text indexed per message.
const ftsTextLimit = 128 << 10

// PendingText returns how many messages wait for their full-text entry.
func (tx *ReadTx) PendingText() (int, error) {
	var n int
	err := tx.queryRow(`SELECT count(*) FROM fts_pending`).Scan(&n)
	return n, err
}

type pendingText struct {
	id             MessageID
	dir, key, file string
	h              Header
	txt            string
	parts          []Part
}

// IndexPending fills in the full-text entries (and the parts table) of
// messages stored with NewMessage.DeferText, or queued again by a
// migration (011), reading their files below the store root, in
// batches; done (may be nil) is told after each batch how many are done.
// A file that cannot be read is indexed by its headers only. It returns the
// number of messages indexed. A cancelled ctx stops it between messages
// and inside one (ExtractContent looks at it): the batch under way is not
// written.
//
// The work goes in passes over the queue, in the order of the message
// IDs, each a pipeline (indexPass): while one batch is written (one
// transaction: SQLite's FTS5 tokenizes each text, about 60% of the CPU,
// and only one connection writes), the next one's files are asked into
// the page cache and their texts extracted, GOMAXPROCS at a time. Two
// batches are held at most. A pass ends at the end of the queue; another
// one from its start picks up what was queued meanwhile behind it, until
// one finds nothing.
func (s *Store) IndexPending(ctx context.Context, root string, done func(n int)) (int, error) {
	total := 0
	for {
		n, read, err := s.indexPass(ctx, root, func(n int) {
			if done != nil {
				done(total + n)
			}
		})
		total += n
		if err != nil || read == 0 || s.dry != nil {
			return total, err // (a dry store never empties the queue: one batch)
		}
	}
}

// ftsBatch is how many messages IndexPending reads and writes at once.
const ftsBatch = 256

// indexPass indexes the queued messages once, in ID order (see
// IndexPending): batches are extracted here and written by a second
// goroutine, one batch behind. done is told the running count. It
// returns how many messages it stored and how many it read from the
// queue.
func (s *Store) indexPass(ctx context.Context, root string, done func(n int)) (stored, read int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	extracted := make(chan []*pendingText) // unbuffered: one batch waits while one is written
	written := make(chan error, 1)
	go func() {
		var err error
		for batch := range extracted {
			if err == nil {
				var n int
				if n, err = s.writeText(ctx, batch); err == nil {
					stored += n
					done(stored)
				} else {
					cancel() // stops the extraction; its batches are drained here
				}
			}
		}
		written <- err
	}()
	read, err = s.extractPending(ctx, root, extracted)
	close(extracted)
	if werr := <-written; werr != nil { // (stored is the goroutine's until then)
		err = werr
	}
	return stored, read, err
}

// extractPending reads the queue in ID order, a batch at a time, and sends
// each batch with its texts extracted to out; it returns how many messages
// it read. It stops at the end of the queue (after one batch in a dry
// store) or when ctx ends; a batch whose extraction the cancel cut short
// is not sent.
func (s *Store) extractPending(ctx context.Context, root string, out chan<- []*pendingText) (read int, err error) {
	var after MessageID
	for {
		batch, err := s.pendingBatch(ctx, root, after)
		if err != nil || len(batch) == 0 {
			return read, err
		}
		read += len(batch)
		after = batch[len(batch)-1].id
		prefetched := make(chan struct{})
		go func() { // the files come in while the first ones are read
			defer close(prefetched)
			prefetchTexts(batch)
		}()
		extractTexts(ctx, batch)
		<-prefetched // no goroutine outlives the call
		if err := ctx.Err(); err != nil {
			return read, err // texts cut short by the cancel are not stored
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return read, ctx.Err()
		}
		if s.dry != nil {
			return read, nil
		}
	}
}

// pendingBatch reads the next batch of the queue: its messages after ID
// after, in ID order.
func (s *Store) pendingBatch(ctx context.Context, root string, after MessageID) ([]*pendingText, error) {
	var batch []*pendingText
	err := s.Read(ctx, func(tx *ReadTx) error {
		rows, err := tx.query(`SELECT m.id, f.path, m.key, m.file, m.subject, m.from_addr, m.to_addr, m.cc_addr
			FROM fts_pending p JOIN messages m ON m.id = p.message_id JOIN folders f ON f.id = m.folder_id
			WHERE p.message_id > ? ORDER BY p.message_id LIMIT ?`, after, ftsBatch)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p := &pendingText{}
			var dir string
			if err := rows.Scan(&p.id, &dir, &p.key, &p.file, &p.h.Subject, &p.h.From, &p.h.To, &p.h.Cc); err != nil {
				return err
			}
			p.dir = filepath.Join(root, filepath.FromSlash(dir))
			batch = append(batch, p)
		}
		return rows.Err()
	})
	return batch, err
}

// extractTexts decodes the batch's files, GOMAXPROCS at a time.
func extractTexts(ctx context.Context, batch []*pendingText) {
	var wg sync.WaitGroup
	next := make(chan *pendingText)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				f, err := openFile(&maildir.Dir{Path: p.dir}, p.key, p.file)
				if err == nil {
					p.txt, p.parts = ExtractContent(ctx, f, ftsTextLimit)
					f.Close()
				}
			}
		}()
	}
feed:
	for _, p := range batch {
		select {
		case next <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
}

// writeText stores a batch's texts and parts and takes its messages off
// the queue, in one transaction, and returns how many it stored. A message
// no longer queued is skipped: deleted since the batch was read (its
// parts would break their reference, its entry would be an orphan a new
// message could inherit with its ID), or indexed by another caller.
func (s *Store) writeText(ctx context.Context, batch []*pendingText) (int, error) {
	n := 0
	err := s.Write(ctx, func(tx *Tx) error {
		n = 0
		for _, p := range batch {
			res, err := tx.exec(`DELETE FROM fts_pending WHERE message_id=?`, p.id)
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil || k == 0 {
				continue
			}
			if err := tx.setParts(p.id, p.parts); err != nil {
				return err
			}
			var names []string
			for _, part := range p.parts {
				if part.Name != "" {
					names = append(names, part.Name)
				}
			}
			// (A queued message has no entry: rows are queued when
			// added, and 011 made the table anew. A delete would
			// leave an FTS5 tombstone, slowing every query.)
			if err := tx.insertText(p.id, &p.h, p.txt, names); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// prefetchTexts asks the kernel to read the batch's files into the page
// cache (maildir.WillNeed), in the background of their extraction: with
// the store out of the cache (a first `postfach search` some time after a
// first sync) each worker would otherwise wait for its file's reads, one
// file after the other. A file renamed since is not asked for.
func prefetchTexts(batch []*pendingText) {
	for _, p := range batch {
		if fp, ok := filePath(&maildir.Dir{Path: p.dir}, p.file); ok {
			maildir.WillNeed(fp)
		}
	}
}

// setParts replaces the rows of message id's MIME parts.
func (tx *Tx) setParts(id MessageID, parts []Part) error {
	if _, err := tx.exec(`DELETE FROM parts WHERE message_id=?`, id); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := tx.exec(`INSERT INTO parts(message_id, mime_type, name, attachment) VALUES(?,?,?,?)`,
			id, p.Type, p.Name, p.Attachment); err != nil {
			return err
		}
	}
	return nil
}
