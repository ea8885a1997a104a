package index_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestGroupCommit: Writes that come while another commits are committed
// together, each keeping its own outcome: one whose fn fails leaves
// nothing, the others are committed and published in the order they ran,
// and one whose caller gave up before its turn does not run.
func TestGroupCommit(t *testing.T) {
	st := open(t)
	_, fs := setup(t, st, "f")
	f := fs[0].ID
	sub := st.Subscribe(64)
	defer sub.Close()
	var commits atomic.Int32
	index.SetTestHookCommitted(func() { commits.Add(1) })
	defer index.SetTestHookCommitted(nil)

	add := func(key string) func(*index.Tx) error {
		return func(tx *index.Tx) error {
			_, err := tx.AddMessage(newMsg(f, key, "s", ""))
			return err
		}
	}
	release := make(chan struct{})
	type outcome struct {
		key string
		err error
	}
	out := make(chan outcome, 5)
	write := func(ctx context.Context, key string, fn func(*index.Tx) error) {
		go func() { out <- outcome{key, st.Write(ctx, fn)} }()
	}
	// a leads: its fn waits until the others queued behind it.
	write(context.Background(), "a", func(tx *index.Tx) error {
		<-release
		return add("a")(tx)
	})
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); index.WritesWaiting(st) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d writes waiting, want %d", index.WritesWaiting(st), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(0)
	time.Sleep(20 * time.Millisecond) // a is in its fn
	gone, cancel := context.WithCancel(context.Background())
	errC := errors.New("c fails")
	var ranGone atomic.Bool
	write(context.Background(), "b", add("b"))
	waitFor(1)
	write(context.Background(), "c", func(tx *index.Tx) error {
		if err := add("c")(tx); err != nil {
			return err
		}
		return errC
	})
	waitFor(2)
	write(gone, "e", func(tx *index.Tx) error { ranGone.Store(true); return add("e")(tx) })
	waitFor(3)
	write(context.Background(), "d", add("d"))
	waitFor(4)
	cancel()
	close(release)

	got := map[string]error{}
	for range 5 {
		o := <-out
		got[o.key] = o.err
	}
	for _, k := range []string{"a", "b", "d"} {
		if got[k] != nil {
			t.Errorf("write %s: %v", k, got[k])
		}
	}
	if !errors.Is(got["c"], errC) {
		t.Errorf("write c: %v, want its own error", got["c"])
	}
	if !errors.Is(got["e"], context.Canceled) || ranGone.Load() {
		t.Errorf("write e (caller gone): %v, ran %v", got["e"], ranGone.Load())
	}
	if n := commits.Load(); n != 2 {
		t.Errorf("%d commits, want 2 (a alone, then b, c, e and d together)", n)
	}
	var keys []string
	if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		rows, err := tx.FileRowsByKey(f, []string{"a", "b", "c", "d", "e"})
		for k := range rows {
			keys = append(keys, k)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"a", "b", "d"}; !slices.Equal(keys, want) {
		t.Errorf("rows %q, want %q", keys, want)
	}
	var published []string
	var commitNos []uint64
	for len(published) < 3 {
		select {
		case c := <-sub.C():
			published = append(published, c.Key)
			commitNos = append(commitNos, c.Commit)
		case <-time.After(5 * time.Second):
			t.Fatalf("published %q, want 3 changes", published)
		}
	}
	if want := []string{"a", "b", "d"}; !slices.Equal(published, want) {
		t.Errorf("published %q, want %q", published, want)
	}
	if !slices.IsSorted(commitNos) || commitNos[1] == commitNos[2] {
		t.Errorf("commit numbers %v: each write is its own", commitNos)
	}
}
