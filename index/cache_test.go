package index

import (
	"context"
	"path/filepath"
	"testing"
)

// TestConnectionCacheSizes: each reader connection's page cache is
// small (readerCacheKiB), the writer's large: SQLite allocates up to
// cache_size per connection, and the readers' caches were most of the
// agent's memory beyond Go's heap while it served a large store. (A full
// cache holds about twice its cache_size: TestCacheMemory.)
func TestConnectionCacheSizes(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var rd, wr int
	if err := st.Read(ctx, func(tx *ReadTx) error {
		return tx.queryRow(`PRAGMA cache_size`).Scan(&rd)
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, func(tx *Tx) error {
		return tx.queryRow(`PRAGMA cache_size`).Scan(&wr)
	}); err != nil {
		t.Fatal(err)
	}
	if rd != -readerCacheKiB || wr != -writerCacheKiB {
		t.Errorf("cache_size: reader %d, writer %d; want %d and %d (KiB)", rd, wr, -readerCacheKiB, -writerCacheKiB)
	}
	if readers*readerCacheKiB > 8000 {
		t.Errorf("the readers' caches add up to %d KiB (twice that in memory), want at most 8000", readers*readerCacheKiB)
	}
}
