package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestScanMemory: Scan holds a large folder's listing once, as Entries
// (and the names they point into), not also all its fs.DirEntries, nor a
// map of the keys of new/ (most of a folder of unread mail). Allocated per
// file: the Entry (56 bytes) about three times over (the arrays appends
// grow through, and the final one), its name, and its fs.DirEntry (of one
// chunk of the directory at a time): under 450 bytes, where the map of
// the keys took Scan to 540.
func TestScanMemory(t *testing.T) {
	d := openTemp(t)
	n := 4000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		sub, name := "new", fmt.Sprintf("1796475673.%05d_1.7fea813f3ae70851.vm", i)
		if i%4 == 0 {
			sub, name = "cur", name+fmt.Sprintf(",U=%d:2,S", i+1)
		}
		if err := os.WriteFile(filepath.Join(d.Path, sub, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A file in both (moved to cur/ while new/ was read): listed once.
	dup := "1796475673.00001_1.7fea813f3ae70851.vm"
	if err := os.WriteFile(filepath.Join(d.Path, "cur", dup+":2,"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Scan(); err != nil { // warm
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	es, err := d.Scan()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != n {
		t.Fatalf("%d entries, want %d", len(es), n)
	}
	seen := map[string]string{}
	for i, e := range es {
		if prev, ok := seen[e.Key]; ok {
			t.Fatalf("key %s twice: %s and %s/%s", e.Key, prev, e.Sub, e.Name)
		}
		seen[e.Key] = e.Sub + "/" + e.Name
		if i > 0 && es[i-1].Sub == e.Sub && es[i-1].Name >= e.Name || i > 0 && es[i-1].Sub == "new" && e.Sub == "cur" {
			t.Fatalf("entries out of order at %d: %s/%s after %s/%s", i, e.Sub, e.Name, es[i-1].Sub, es[i-1].Name)
		}
	}
	if seen[dup] != "cur/"+dup+":2," {
		t.Errorf("the file in both: %s", seen[dup])
	}
	per := (after.TotalAlloc - before.TotalAlloc) / uint64(n)
	t.Logf("%d bytes allocated per file", per)
	if limit := uint64(450); per > limit {
		t.Errorf("Scan allocates %d bytes per file, want at most %d", per, limit)
	}
}
