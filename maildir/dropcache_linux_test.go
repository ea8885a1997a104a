package maildir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/pagecache"
)

// TestSyncDropsLargeBatch: once a batch of SyncfsMin or more is on disk,
// its files leave the page cache (where the file system lets them: on
// tmpfs they are the files); a smaller batch's stay. Both read back
// whole after their commit.
func TestSyncDropsLargeBatch(t *testing.T) {
	root := t.TempDir()
	s, err := OpenSyncer(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := Open(filepath.Join(root, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	cached := func(w *Delivery) int {
		in, _, err := pagecache.Resident(w.path)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	body := func(i int) string {
		return fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte("0123456789abcdef"), 1024))
	}
	// Can this file system drop a synced file's pages at all?
	probe := deliver(t, d, body(-1))
	if err := probe.syncFile(); err != nil {
		t.Fatal(err)
	}
	dropCached(probe.path)
	drops := cached(probe) == 0
	probe.Abort()
	t.Logf("the file system drops synced pages: %v", drops)

	batch := func(n, from int) []*Delivery {
		var ds []*Delivery
		for i := range n {
			ds = append(ds, deliver(t, d, body(from+i)))
		}
		if err := s.Sync(ds); err != nil {
			t.Fatal(err)
		}
		return ds
	}
	small := batch(3, 0)
	for _, w := range small {
		if cached(w) == 0 {
			t.Errorf("%s: a small batch's file left the cache", w.Key())
		}
	}
	large := batch(SyncfsMin, 100)
	if drops {
		for _, w := range large {
			if n := cached(w); n != 0 {
				t.Errorf("%s: %d pages still cached after a large batch's sync", w.Key(), n)
			}
		}
	}
	for i, w := range append(small, large...) {
		file, err := d.Commit(w, uint32(i+1), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := body(i)
		if i >= len(small) {
			want = body(100 + i - len(small))
		}
		b, err := os.ReadFile(filepath.Join(d.Path, file))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(bytes.ReplaceAll([]byte(want), []byte("\r\n"), []byte("\n"))) {
			t.Errorf("%s: content changed", file)
		}
	}
}

// TestWillNeed: a message file out of the page cache comes back into it
// (where the file system drops pages at all), and a FIFO is never opened
// (an open would wait for a writer that never comes).
func TestWillNeed(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "m")
	if err := os.WriteFile(file, bytes.Repeat([]byte("0123456789abcdef"), 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	f.Sync()
	f.Close()
	dropCached(file)
	in, _, err := pagecache.Resident(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the file system drops synced pages: %v", in == 0)
	WillNeed(file)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		in, all, err := pagecache.Resident(file)
		if err != nil {
			t.Fatal(err)
		}
		if in == all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pages cached 5 s after WillNeed", in, all)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	WillNeed(fifo) // returns: the test would hang otherwise
	WillNeed(filepath.Join(dir, "missing"))
}
