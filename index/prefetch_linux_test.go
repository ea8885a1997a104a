package index

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	sysunix "golang.org/x/sys/unix"

	"github.com/postfach/postfach/internal/pagecache"
)

// resident counts the pages of the file at path in the page cache.
func resident(t *testing.T, path string) (in, all int) {
	t.Helper()
	in, all, err := pagecache.Resident(path)
	if err != nil {
		t.Fatal(err)
	}
	return in, all
}

// TestPrefetchFile: the whole file, beyond the first chunk, comes into
// the page cache after prefetchFile (where the file system lets the test
// drop its pages first; on tmpfs they never leave).
func TestPrefetchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	data := make([]byte, 3*prefetchChunk+12345)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // clean pages can be dropped
		t.Fatal(err)
	}
	if err := sysunix.Fadvise(int(f.Fd()), 0, 0, sysunix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	f.Close()
	in, all := resident(t, path)
	t.Logf("before: %d of %d pages cached", in, all)
	prefetchFile(path)
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, all = resident(t, path)
		if in == all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after prefetchFile: %d of %d pages cached", in, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPrefetchStore: Prefetch returns at once, also when called again
// while its reading is under way, and reads the index file in; a Store
// made without its flag, and a missing file, are nothing to it.
func TestPrefetchStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Prefetch()
	st.Prefetch()
	deadline := time.Now().Add(10 * time.Second)
	for st.prefetching.Load() {
		if time.Now().After(deadline) {
			t.Fatal("Prefetch's reading never ended")
		}
		time.Sleep(time.Millisecond)
	}
	st.Prefetch() // again, once the last one is over
	if in, all := resident(t, path); in != all {
		t.Errorf("%d of %d pages of the index cached", in, all)
	}
	(&Store{path: filepath.Join(t.TempDir(), "missing")}).Prefetch()
	prefetchFile(filepath.Join(t.TempDir(), "missing"))
}
