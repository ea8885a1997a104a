package index_test

import (
	"context"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestTurns: a local change of an account waits while a run holds the
// account's turn, and goes on when it ends; another account's does not
// wait; LocalChanges counts the changes begun.
func TestTurns(t *testing.T) {
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var a, b index.AccountID
	if err := st.Write(ctx, func(tx *index.Tx) error {
		var err error
		if a, err = tx.EnsureAccount("a"); err != nil {
			return err
		}
		b, err = tx.EnsureAccount("b")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n0 := st.LocalChanges()
	release := st.SyncTurn(a)
	st.LocalChangeOf(b)() // another account: no wait
	done := make(chan struct{})
	go func() {
		st.LocalChangeOf(a)()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a local change of the account went on during its run's turn")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	release() // once only
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the local change still waits after the run's turn ended")
	}
	if n := st.LocalChanges() - n0; n != 4 {
		t.Errorf("LocalChanges grew by %d, want 4 (two begun, two ended)", n)
	}
}
