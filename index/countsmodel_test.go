package index_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestFolderCountsModel: random changes of every kind (rows added in
// batches over folders, UIDs given, changed and cleared, uploads, file
// renames, moves with and without a UID, removals, a folder removed and
// one made in its place, which may take its id; the index set back and
// migrated again): after each, every folder's kept counts are the counted
// ones, and a change to a folder's rows always gives its stamp's rows part
// (count, local MODSEQ) another value than it had before.
func TestFolderCountsModel(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	st, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	seed := int64(1)
	if s := os.Getenv("COUNTS_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	rnd := rand.New(rand.NewSource(seed))
	var acct index.AccountID
	folders := map[string]*index.Folder{}
	write := func(fn func(tx *index.Tx) error) {
		t.Helper()
		if err := st.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	ensure := func(name string) {
		write(func(tx *index.Tx) error {
			var err error
			if acct, err = tx.EnsureAccount("a"); err != nil {
				return err
			}
			rel, err := index.FolderPath("a", name)
			if err != nil {
				return err
			}
			folders[name], err = tx.EnsureFolder(acct, name, rel)
			return err
		})
	}
	names := []string{"A", "B", "C"}
	for _, n := range names {
		ensure(n)
	}
	type rowsPart struct {
		rows   int
		modseq uint64
	}
	// The rows' state per folder (id -> key, file, uid), as counted.
	state := func() map[index.FolderID]string {
		out := map[index.FolderID]string{}
		st.Read(ctx, func(tx *index.ReadTx) error {
			for _, f := range folders {
				rs, err := tx.FileRowList(f.ID)
				if err != nil {
					t.Fatal(err)
				}
				s := ""
				for _, r := range rs {
					s += fmt.Sprintf("%d:%s:%s:%d;", r.ID, r.Key, r.File, r.UID)
				}
				out[f.ID] = s
			}
			return nil
		})
		return out
	}
	parts := func() map[index.FolderID]rowsPart {
		out := map[index.FolderID]rowsPart{}
		st.Read(ctx, func(tx *index.ReadTx) error {
			for name, f := range folders {
				rs, err := tx.FileRowList(f.ID)
				if err != nil {
					t.Fatal(err)
				}
				up := 0
				for _, r := range rs {
					if r.UID != 0 {
						up++
					}
				}
				rows, modseq, err := tx.RowsStamp(f.ID)
				if err != nil {
					t.Fatal(err)
				}
				upstream, _, err := tx.SyncCounts(f.ID)
				if err != nil {
					t.Fatal(err)
				}
				if rows != len(rs) || upstream != up {
					t.Fatalf("%s: counts %d rows, %d upstream; counted %d, %d", name, rows, upstream, len(rs), up)
				}
				out[f.ID] = rowsPart{rows, modseq}
			}
			return nil
		})
		return out
	}
	rowsOf := func(f *index.Folder) []index.FileRow {
		var rs []index.FileRow
		st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			rs, err = tx.FileRowList(f.ID)
			return err
		})
		return rs
	}
	n, uid := 0, uint32(0)
	nextUID := func() uint32 { uid++; return uid }
	before, beforeState := parts(), state()
	for step := 0; step < 600; step++ {
		f := folders[names[rnd.Intn(len(names))]]
		rs := rowsOf(f)
		var r index.FileRow
		if len(rs) > 0 {
			r = rs[rnd.Intn(len(rs))]
		}
		op := rnd.Intn(11)
		if len(rs) == 0 && op > 1 {
			op = 0
		}
		switch op {
		case 0: // rows added, over two folders
			g := folders[names[rnd.Intn(len(names))]]
			write(func(tx *index.Tx) error {
				var ms []*index.NewMessage
				for i := rnd.Intn(3) + 1; i > 0; i-- {
					n++
					to := f
					if i%2 == 0 {
						to = g
					}
					m := newMsg(to.ID, fmt.Sprintf("k%d", n), "s", "b")
					if rnd.Intn(2) == 0 {
						m.UID = nextUID()
					}
					ms = append(ms, m)
				}
				_, err := tx.AddMessages(ms)
				return err
			})
		case 1: // the folder removed, another made (maybe with its id)
			if rnd.Intn(4) != 0 {
				continue
			}
			var name string
			for k, v := range folders {
				if v == f {
					name = k
				}
			}
			write(func(tx *index.Tx) error { return tx.DeleteFolder(f.ID) })
			delete(folders, name)
			ensure(name)
		case 2:
			write(func(tx *index.Tx) error { return tx.SetUID(r.ID, nextUID(), 10) })
		case 3:
			write(func(tx *index.Tx) error { return tx.SetUID(r.ID, 0, 10) })
		case 4:
			write(func(tx *index.Tx) error {
				return tx.SetUploaded(r.ID, nextUID(), 10, r.File, 0, nil)
			})
		case 5:
			write(func(tx *index.Tx) error { return tx.SetFile(r.ID, "cur/"+r.Key+",U=1:2,S") })
		case 6, 7: // moved, with or without a UID
			g := folders[names[rnd.Intn(len(names))]]
			u := uint32(0)
			if op == 6 {
				u = nextUID()
			}
			if err := st.Write(ctx, func(tx *index.Tx) error { return tx.MoveMessage(r.ID, g.ID, u, r.File, 0) }); err != nil {
				continue // (the key is in g already)
			}
		case 8:
			write(func(tx *index.Tx) error { return tx.DeleteMessage(r.ID) })
		case 9:
			write(func(tx *index.Tx) error { return tx.ClearUIDs(f.ID) })
		case 10: // set back and migrated again
			if rnd.Intn(8) != 0 {
				continue
			}
			st.Close()
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			back := 8 + rnd.Intn(8) // (007 cannot run twice)
			t.Logf("step %d: set back to %d", step, back)
			if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", back)); err != nil {
				t.Fatal(err)
			}
			db.Close()
			if st, err = index.Open(path); err != nil {
				t.Fatalf("step %d: reopened: %v", step, err)
			}
		}
		after, afterState := parts(), state()
		for id, s := range afterState {
			if old, ok := beforeState[id]; ok && old != s && before[id] == after[id] {
				t.Fatalf("step %d (op %d): folder %d's rows changed, its rows part (%d, %d) did not", step, op, id, after[id].rows, after[id].modseq)
			}
		}
		before, beforeState = after, afterState
	}
}
