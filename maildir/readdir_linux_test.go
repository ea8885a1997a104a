package maildir

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// dirent is one linux_dirent64 record, padded to 8 bytes as the kernel does.
func dirent(ino uint64, typ uint8, name string) []byte {
	n := (direntHeader + len(name) + 1 + 7) &^ 7
	b := make([]byte, n)
	binary.NativeEndian.PutUint64(b, ino)
	binary.NativeEndian.PutUint16(b[16:], uint16(n))
	b[18] = typ
	copy(b[direntHeader:], name)
	return b
}

func TestEachDirent(t *testing.T) {
	var buf []byte
	for _, r := range [][]byte{
		dirent(1, unix.DT_DIR, "."), dirent(2, unix.DT_DIR, ".."),
		dirent(3, unix.DT_REG, "a:2,S"), dirent(0, unix.DT_REG, "deleted"),
		dirent(4, unix.DT_DIR, "sub"), dirent(5, unix.DT_UNKNOWN, "b"),
	} {
		buf = append(buf, r...)
	}
	var got []string
	if err := eachDirent(buf, func(name []byte, typ uint8) { got = append(got, string(name)) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:2,S", "sub", "b"}; !slices.Equal(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
	for _, bad := range [][]byte{buf[:10], append(slices.Clone(buf[:16]), 0xff, 0xff, 0)} {
		if err := eachDirent(bad, func([]byte, uint8) {}); err == nil {
			t.Errorf("no error for a cut record (%d bytes)", len(bad))
		}
	}
}

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	want := []string{"sub"}
	for i := range 1500 { // two getdents64 calls of 64 KiB
		name := filepath.Join(dir, fmt.Sprintf("%040d", i))
		if err := os.WriteFile(name, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, filepath.Base(name))
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := readDir(dir, func(name string, isDir bool) {
		if isDir != (name == "sub") {
			t.Errorf("%s: isDir %v", name, isDir)
		}
		got = append(got, name)
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read %d names, want %d", len(got), len(want))
	}
	if err := readDir(filepath.Join(dir, "none"), func(string, bool) {}); !os.IsNotExist(err) {
		t.Fatalf("a missing directory: %v", err)
	}
}
