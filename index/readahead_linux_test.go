//go:build linux

package index

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	xunix "golang.org/x/sys/unix"
)

// TestReadAhead: a database file out of the kernel's cache is read into
// it by readAhead, in the background; one past its bound is left.
func TestReadAhead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	data := make([]byte, 4<<20)
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
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	cached := func() int {
		m, err := xunix.Mmap(int(f.Fd()), 0, len(data), xunix.PROT_READ, xunix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer xunix.Munmap(m)
		vec := make([]byte, (len(data)+os.Getpagesize()-1)/os.Getpagesize())
		if _, _, errno := xunix.Syscall(xunix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatal(errno)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n * os.Getpagesize()
	}
	evict := func() {
		if err := xunix.Fadvise(int(f.Fd()), 0, 0, xunix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		if n := cached(); n > len(data)/2 {
			t.Fatalf("the kernel keeps %d of %d bytes cached after FADV_DONTNEED (a tmpfs TMPDIR?): cannot tell", n, len(data))
		}
	}

	evict()
	readAhead(path, readAheadMax)
	deadline := time.Now().Add(5 * time.Second)
	for cached() < len(data) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := cached(); n < len(data) {
		t.Errorf("after readAhead %d of %d bytes are cached", n, len(data))
	}

	evict()
	readAhead(path, 1<<20)
	time.Sleep(200 * time.Millisecond)
	if n := cached(); n > len(data)/2 {
		t.Errorf("a file past readAheadMax: %d of %d bytes cached after readAhead", n, len(data))
	}
}
