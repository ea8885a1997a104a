package index

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteRelaxed: a relaxed write commits like Write (its rows are
// there for readers and for the next Write), runs with synchronous=NORMAL,
// and leaves the write connection at synchronous=FULL afterwards, also
// when it fails: a durable commit after it must stay durable.
func TestWriteRelaxed(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	synchronous := func(tx *Tx) int {
		var n int
		if err := tx.queryRow(`PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var inside int
	at := time.Unix(1700000000, 0)
	err = st.WriteRelaxed(ctx, func(tx *Tx) error {
		inside = synchronous(tx)
		id, err := tx.EnsureAccount("a")
		if err != nil {
			return err
		}
		return tx.SetAccountResult(id, at, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != 1 {
		t.Errorf("synchronous inside WriteRelaxed = %d, want 1 (NORMAL)", inside)
	}
	if err := st.Read(ctx, func(tx *ReadTx) error {
		_, err := tx.Account("a")
		return err
	}); err != nil {
		t.Errorf("the relaxed write's account: %v", err)
	}
	boom := errors.New("boom")
	if err := st.WriteRelaxed(ctx, func(tx *Tx) error {
		if _, err := tx.EnsureAccount("b"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("failing WriteRelaxed: %v", err)
	}
	var after int
	var b error
	if err := st.Write(ctx, func(tx *Tx) error {
		after = synchronous(tx)
		_, b = tx.Account("b")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if after != 2 {
		t.Errorf("synchronous of the next Write = %d, want 2 (FULL)", after)
	}
	if !errors.Is(b, ErrNotFound) {
		t.Errorf("the failed relaxed write's account: %v, want it rolled back", b)
	}
}
