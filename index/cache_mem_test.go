//go:build linux && !race

// Not under the race detector: the test measures memory, and the
// detector's instrumentation of SQLite's transpiled code makes writing
// its 40 MB take over a minute (the run without -race, which CI makes
// too, runs it).

package index

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
)

// TestCacheMemory: what the page caches cost in memory once full, which
// is about twice their cache_size (see writerCacheKiB), and that
// ReleaseMemory gives the writer's back (issue 14: postfach migrate
// reached 116 MiB at 100,000 messages, of which some 30 MiB was the
// writer's cache, full from the pull of the source, kept through the
// copy, and 30 MiB more the readers' caches at 4,000 KiB each).
func TestCacheMemory(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	start := rssAnon(t)
	// 40 MB, more than either cache holds, in one transaction: the
	// writer's cache fills.
	if _, err := st.w.ExecContext(ctx, `CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 10000)
		INSERT INTO big (v) SELECT randomblob(4000) FROM n`); err != nil {
		t.Fatal(err)
	}
	full := rssAnon(t)

	// A reader reading all of it: its cache fills. (Before ReleaseMemory,
	// which leaves memory that the reader's cache could take again
	// without it showing.)
	var n int64
	if err := st.Read(ctx, func(tx *ReadTx) error {
		return tx.queryRow(`SELECT sum(length(v)) FROM big`).Scan(&n)
	}); err != nil || n != 40000000 {
		t.Fatal(n, err)
	}
	read := rssAnon(t)
	t.Logf("reader: %d KiB with its cache full", read-full)
	// The readers' caches together at most 16 MiB, and a margin.
	if max := int64(16<<10/readers + 1<<10); read-full > max {
		t.Errorf("a reader's full cache costs %d KiB, want at most %d (%d readers)", read-full, max, readers)
	}

	if err := st.ReleaseMemory(ctx); err != nil {
		t.Fatal(err)
	}
	// The reader's cache stays (its connection is idle in the pool).
	released := rssAnon(t) - (read - full)
	t.Logf("writer: %d KiB with its cache full, %d KiB after ReleaseMemory (from %d KiB)", full-start, released-start, start)
	// A full writer's cache is some 30 MiB; ReleaseMemory leaves what
	// modernc's allocator keeps ready for reuse (4 MiB per size class).
	if full-start < 20<<10 {
		t.Errorf("the writer's full cache costs %d KiB; the test no longer fills it", full-start)
	}
	if released-start > 8<<10 {
		t.Errorf("after ReleaseMemory the writer's cache still holds %d KiB, want at most 8 MiB", released-start)
	}
}

// rssAnon returns the process's anonymous resident memory in KiB, with
// Go's heap given back to the OS first (what is left of it is the
// runtime's and the live heap).
func rssAnon(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(l); len(f) == 3 && string(f[0]) == "RssAnon:" {
			n, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssAnon in /proc/self/status")
	return 0
}
