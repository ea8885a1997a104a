package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Tmpfs is a small tmpfs mounted for one test: a disk that fills up.
type Tmpfs struct {
	Dir string
	t   testing.TB
}

// MountTmpfs mounts a tmpfs of size bytes (rounded up to pages) on a new
// directory below t.TempDir() and unmounts it in t.Cleanup. Mounting needs
// root: without it the test is skipped, or fails when the environment has
// CI=true (CI runs as root).
func MountTmpfs(t testing.TB, size int64) *Tmpfs {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "true" {
			t.Skip("skipping: mounting a tmpfs needs root")
		}
		t.Fatal("mounting a tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
		}
	})
	return &Tmpfs{Dir: dir, t: t}
}

// Resize changes the size of the file system: space returns (or goes).
func (m *Tmpfs) Resize(size int64) {
	m.t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), m.Dir).CombinedOutput(); err != nil {
		m.t.Fatalf("resize tmpfs %s: %v: %s", m.Dir, err, strings.TrimSpace(string(out)))
	}
}
