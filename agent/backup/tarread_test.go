package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// rawZstd wraps data in one zstd frame of raw (stored) blocks whose
// header declares a window of 1<<windowLog bytes.
func rawZstd(data []byte, windowLog uint) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	for {
		n := min(len(data), 128<<10)
		last := 0
		if n == len(data) {
			last = 1
		}
		h := uint32(n)<<3 | uint32(last) // raw block
		out = append(out, byte(h), byte(h>>8), byte(h>>16))
		out = append(out, data[:n]...)
		data = data[n:]
		if last == 1 {
			return out
		}
	}
}

// TestTarZstWindowBound: an archive whose zstd frame declares a window
// over maxWindow is refused before the decoder allocates it, with one
// line saying so; the same tar declaring the writer's 8 MiB unpacks.
func TestTarZstWindowBound(t *testing.T) {
	s := newTestStore(t, 5)
	res, err := Backup(context.Background(), Options{Store: s.st, To: t.TempDir(), Format: FormatTarZst})
	if err != nil {
		t.Fatal(err)
	}
	z, err := os.ReadFile(res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(bytes.NewReader(z))
	plain, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		log uint
		ok  bool
	}{{23, true}, {26, true}, {28, false}, {31, false}} {
		p := filepath.Join(dir, "w.tar.zst")
		if err := os.WriteFile(p, rawZstd(plain, c.log), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Materialize(context.Background(), p, filepath.Join(dir, "tmp"))
		if c.ok && err != nil {
			t.Errorf("window 2^%d: %v", c.log, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "zstd window is larger than the 64 MiB")) {
			t.Errorf("window 2^%d: %v", c.log, err)
		}
		if _, err := VerifyArchive(context.Background(), p, nil); c.ok != (err == nil) {
			t.Errorf("verify, window 2^%d: %v", c.log, err)
		}
		os.RemoveAll(filepath.Join(dir, "tmp"))
	}
}

// TestTarZstManifestBound: a manifest larger than maxManifest is
// refused from its tar header, never read into memory.
func TestTarZstManifestBound(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o600, Size: 300 << 20})
	tw.Write(make([]byte, 1<<20)) // cut short: the header is enough
	tw.Flush()
	p := filepath.Join(t.TempDir(), "m.tar.zst")
	if err := os.WriteFile(p, rawZstd(b.Bytes(), 20), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := VerifyArchive(context.Background(), p, nil)
	if err == nil || !strings.Contains(err.Error(), "MANIFEST is too large (314572800 bytes; at most 256 MiB") {
		t.Errorf("verify of an archive with a 300 MiB manifest: %v", err)
	}
}

// TestMaterializeChecksRoom: a tar.zst or an mbox export larger than
// the free space where it would be unpacked is refused before anything
// is written there, in one line naming the directory and both sizes.
func TestMaterializeChecksRoom(t *testing.T) {
	s := newTestStore(t, 20)
	tz, err := Backup(context.Background(), Options{Store: s.st, To: t.TempDir(), Format: FormatTarZst})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := Backup(context.Background(), Options{Store: s.st, To: t.TempDir(), Format: FormatMbox})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := fsFree(t.TempDir()); runtime.GOOS == "linux" && (err != nil || f == 0) {
		t.Errorf("fsFree: %d, %v", f, err)
	}
	defer func(f func(string) (uint64, error)) { freeSpace = f }(freeSpace)
	var free uint64
	var asked []string
	freeSpace = func(dir string) (uint64, error) {
		asked = append(asked, dir)
		return free, nil
	}
	for _, p := range []string{tz.Snapshot, mb.Snapshot} {
		tmp := filepath.Join(t.TempDir(), "tmp")
		free, asked = 10<<10, nil
		_, err := Materialize(context.Background(), p, tmp)
		t.Logf("%s: %v", filepath.Base(p), err)
		if err == nil || !strings.Contains(err.Error(), "not enough room in "+tmp+" to unpack it: it needs ") ||
			!strings.Contains(err.Error(), " KiB, 10 KiB free there (point TMPDIR at a filesystem with room)") ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("Materialize of %s with 10 KiB free: %v", filepath.Base(p), err)
		}
		if len(asked) != 1 || asked[0] != tmp {
			t.Errorf("free space asked of %q, want %q", asked, tmp)
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Errorf("Materialize left %v in tmp", ents)
		}
		free = 1 << 40
		if _, err := Materialize(context.Background(), p, tmp); err != nil {
			t.Errorf("Materialize of %s with room: %v", filepath.Base(p), err)
		}
	}
}
