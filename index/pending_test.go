package index_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestIndexPendingBatches: the full-text queue is indexed in batches, one
// written while the next is read (IndexPending): every message gets its
// entry exactly once, done counts up to the total, and a message queued
// behind the pass while it runs (queued again, as a migration does, with
// an ID the pass is past) and one queued ahead of it are both indexed
// before IndexPending returns.
func TestIndexPendingBatches(t *testing.T) {
	st, f, dir := doorStore(t)
	root := st.Root()
	ctx := context.Background()
	const n = 600 // three batches
	add := func(i int) index.MessageID {
		key := fmt.Sprintf("k%d", i)
		if err := os.WriteFile(filepath.Join(dir.Path, "cur", key+":2,"), fmt.Appendf(nil, "Subject: m%d\n\nword%d common\n", i, i), 0o600); err != nil {
			t.Fatal(err)
		}
		m := newMsg(f.ID, key, fmt.Sprintf("m%d", i), "")
		m.DeferText = true
		var ids []index.MessageID
		err := st.Write(ctx, func(tx *index.Tx) error {
			var err error
			ids, err = tx.AddMessages([]*index.NewMessage{m})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids[0]
	}
	first := add(0)
	for i := 1; i < n; i++ {
		add(i)
	}
	// The first message leaves the queue, to be queued again behind the
	// pass (raw SQL: only a migration does that).
	db, err := sql.Open("sqlite", "file:"+index.DefaultPath(root)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM fts_pending WHERE message_id=?`, first); err != nil {
		t.Fatal(err)
	}
	var counts []int
	got, err := st.IndexPending(ctx, root, func(k int) {
		if len(counts) == 0 {
			if _, err := db.Exec(`INSERT INTO fts_pending(message_id) VALUES(?)`, first); err != nil {
				t.Error(err)
			}
			add(n) // queued ahead of the pass
		}
		counts = append(counts, k)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := n + 1; got != want {
		t.Errorf("IndexPending indexed %d messages, want %d", got, want)
	}
	for i := 1; i < len(counts); i++ {
		if counts[i] <= counts[i-1] {
			t.Errorf("done was told %v: not increasing", counts)
			break
		}
	}
	if len(counts) < 3 || counts[len(counts)-1] != got {
		t.Errorf("done was told %v, want at least three batches ending at %d", counts, got)
	}
	st.Read(ctx, func(tx *index.ReadTx) error {
		if k, err := tx.PendingText(); err != nil || k != 0 {
			t.Errorf("%d messages still pending (%v)", k, err)
		}
		for q, want := range map[string]int{"common": n + 1, "word0": 1, fmt.Sprint("word", n): 1, "word599": 1} {
			hits, err := tx.Search(q, 2*n)
			if err != nil || len(hits) != want {
				t.Errorf("search %q: %d hits (%v), want %d", q, len(hits), err, want)
			}
		}
		return nil
	})
}

// TestIndexPendingDeletedMeanwhile: messages deleted while their batch is
// read and extracted (a mail client expunging while the agent indexes)
// are skipped, not written: no error (their parts would break the
// reference to their row), no entry left behind for a later message to
// inherit with the ID.
func TestIndexPendingDeletedMeanwhile(t *testing.T) {
	st, f, dir := doorStore(t)
	root := st.Root()
	ctx := context.Background()
	const n = 600
	var ids []index.MessageID
	err := st.Write(ctx, func(tx *index.Tx) error {
		var ms []*index.NewMessage
		for i := range n {
			key := fmt.Sprintf("k%d", i)
			body := fmt.Appendf(nil, "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nword%d common\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=f%d.pdf\n\nx\n--b--\n", i, i)
			if err := os.WriteFile(filepath.Join(dir.Path, "cur", key+":2,"), body, 0o600); err != nil {
				return err
			}
			m := newMsg(f.ID, key, fmt.Sprintf("m%d", i), "")
			m.DeferText = true
			ms = append(ms, m)
		}
		var err error
		ids, err = tx.AddMessages(ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleted once the first batch is written: one of the second batch
	// (read by then, or about to be) and the last one.
	gone := []index.MessageID{ids[300], ids[n-1]}
	deleted := false
	got, err := st.IndexPending(ctx, root, func(int) {
		if deleted {
			return
		}
		deleted = true
		err := st.Write(ctx, func(tx *index.Tx) error {
			for _, id := range gone {
				if err := tx.DeleteMessage(id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("IndexPending: %v", err)
	}
	if want := n - len(gone); got != want {
		t.Errorf("IndexPending stored %d messages, want %d", got, want)
	}
	db, err := sql.Open("sqlite", "file:"+index.DefaultPath(root)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for q, want := range map[string]int{
		`SELECT count(*) FROM fts_pending`:                                                 0,
		`SELECT count(*) FROM parts WHERE message_id NOT IN (SELECT id FROM messages)`:     0,
		`SELECT count(*) FROM messages_fts WHERE rowid NOT IN (SELECT id FROM messages)`:   0,
		`SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'common'`:              n - len(gone),
		`SELECT count(DISTINCT message_id) FROM parts WHERE mime_type = 'application/pdf'`: n - len(gone),
	} {
		var k int
		if err := db.QueryRow(q).Scan(&k); err != nil || k != want {
			t.Errorf("%s: %d (%v), want %d", q, k, err, want)
		}
	}
}
