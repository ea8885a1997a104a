package index

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestLockOutboxWithoutFlock: on a file system without flock (lockDir
// goes on without it), two senders of one process still take turns at
// an account's outbox: the second LockOutbox waits for the first's
// release, and gives up with its context.
func TestLockOutboxWithoutFlock(t *testing.T) {
	defer func(f func(int, int) error) { flock = f }(flock)
	flock = func(int, int) error { return syscall.ENOTSUP }
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	release, err := st.LockOutbox(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := st.LockOutbox(ctx, "acct")
		if err != nil {
			t.Error(err)
			r = func() {}
		}
		got <- r
	}()
	select {
	case r := <-got:
		r()
		t.Fatal("a second LockOutbox of the account got the lock while the first held it")
	case <-time.After(300 * time.Millisecond):
	}
	other, err := st.LockOutbox(ctx, "other") // another account does not wait
	if err != nil {
		t.Fatal(err)
	}
	other()
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("the second LockOutbox still waits 10 s after the release")
	}
	release2, err := st.LockOutbox(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := st.LockOutbox(short, "acct"); err == nil {
		t.Error("LockOutbox got a held lock; want its context's error")
	}
	release2()
}
