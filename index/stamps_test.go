package index_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestFileRowsByKey: every key asked for that has a row gets its row,
// over more keys than one query takes; keys without a row are left out.
// The same rows by id (FileRowsByID).
func TestFileRowsByKey(t *testing.T) {
	fs := newFileStore(t)
	var keys []string
	want := map[string]string{}
	for i := 1; i <= 300; i++ {
		fs.add(fmt.Sprint(i), []byte(fmt.Sprintf("Subject: %d\n\nx\n", i)), maildir.FlagSeen, nil, time.Time{})
		k := fmt.Sprintf("1700000000.M%dP1.test", i)
		keys = append(keys, k)
		want[k] = "cur/" + k + ":" + maildir.FlagSeen.Info()
	}
	keys = append(keys, "1700000000.M999P1.none")
	var got map[string]index.FileRow
	var byID map[index.MessageID]index.FileRow
	if err := fs.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		if got, err = tx.FileRowsByKey(fs.f.ID, keys); err != nil {
			return err
		}
		var ids []index.MessageID
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		ids = append(ids, 99999)
		byID, err = tx.FileRowsByID(fs.f.ID, ids)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(byID) != len(want) {
		t.Errorf("%d rows by key, %d by id, want %d", len(got), len(byID), len(want))
	}
	for k, f := range want {
		r := got[k]
		if r.File != f || r.Key != k || r.ID == 0 {
			t.Errorf("%s: %+v, want file %q", k, r, f)
		}
		if byID[r.ID] != r {
			t.Errorf("%s by id: %+v, want %+v", k, byID[r.ID], r)
		}
	}
}

// TestFolderCounts: the row and upstream counts the triggers keep
// (RowsStamp, SyncCounts) are the counted ones after rows are added,
// given UIDs, uploaded, moved, removed, their UIDs cleared, and a folder
// removed; a folder without rows has none.
func TestFolderCounts(t *testing.T) {
	ctx := context.Background()
	fs := newFileStore(t)
	for i := 1; i <= 20; i++ {
		fs.add(fmt.Sprint(i), fmt.Appendf(nil, "Subject: %d\n\nx\n", i), 0, nil, time.Time{})
	}
	other := fs.folder("Archive")
	write := fs.write
	check := func(when string) {
		t.Helper()
		for _, f := range []*index.Folder{fs.f, other} {
			if err := fs.st.Read(ctx, func(tx *index.ReadTx) error {
				rs, err := tx.FileRowList(f.ID)
				if err != nil {
					return err
				}
				up := 0
				for _, r := range rs {
					if r.UID != 0 {
						up++
					}
				}
				rows, _, err := tx.RowsStamp(f.ID)
				if err != nil {
					return err
				}
				upstream, _, err := tx.SyncCounts(f.ID)
				if err != nil {
					return err
				}
				if rows != len(rs) || upstream != up {
					t.Errorf("%s, %s: counts %d rows, %d upstream; counted %d, %d", when, f.Name, rows, upstream, len(rs), up)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	check("added")
	rs := fs.rows(fs.f.ID)
	write(func(tx *index.Tx) error {
		for i, r := range rs[:8] {
			if err := tx.SetUID(r.ID, uint32(100+i), 10); err != nil {
				return err
			}
		}
		return tx.SetUploaded(rs[8].ID, 200, 10, rs[8].File, 0, nil)
	})
	check("UIDs given")
	write(func(tx *index.Tx) error {
		if err := tx.SetUID(rs[0].ID, 300, 10); err != nil { // another UID: still upstream
			return err
		}
		if err := tx.MoveMessage(rs[1].ID, other.ID, 7, rs[1].File, 0); err != nil {
			return err
		}
		if err := tx.MoveMessage(rs[9].ID, other.ID, 0, rs[9].File, 0); err != nil {
			return err
		}
		if err := tx.DeleteMessage(rs[2].ID); err != nil {
			return err
		}
		return tx.DeleteMessage(rs[10].ID)
	})
	check("moved and removed")
	write(func(tx *index.Tx) error { return tx.ClearUIDs(fs.f.ID) })
	check("UIDs cleared")
	write(func(tx *index.Tx) error { return tx.DeleteFolder(other.ID) })
	if err := fs.st.Read(ctx, func(tx *index.ReadTx) error {
		_, _, err := tx.RowsStamp(other.ID)
		if !errors.Is(err, index.ErrNotFound) {
			t.Errorf("a removed folder's counts: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
