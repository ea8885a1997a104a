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
// and inside one (ExtractText looks at it): the batch under way is not
// written.
func (s *Store) IndexPending(ctx context.Context, root string, done func(n int)) (int, error) {
	total := 0
	for {
		var batch []*pendingText
		err := s.Read(ctx, func(tx *ReadTx) error {
			rows, err := tx.query(`SELECT m.id, f.path, m.key, m.file, m.subject, m.from_addr, m.to_addr, m.cc_addr
				FROM fts_pending p JOIN messages m ON m.id = p.message_id JOIN folders f ON f.id = m.folder_id
				LIMIT 512`)
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
		if err != nil || len(batch) == 0 {
			return total, err
		}
		// Decode in parallel; write in one transaction.
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
		if err := ctx.Err(); err != nil {
			return total, err // texts cut short by the cancel are not stored
		}
		err = s.Write(ctx, func(tx *Tx) error {
			for _, p := range batch {
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
				if _, err := tx.exec(`DELETE FROM fts_pending WHERE message_id=?`, p.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(batch)
		if done != nil {
			done(total)
		}
		if s.dry != nil {
			return total, nil // nothing is ever removed from the queue
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
