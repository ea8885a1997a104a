package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FailingDisk is an ext4 file system whose writeback fails: it lives on a
// loop device whose backing file sits, sparse, on a tmpfs smaller than the
// file system. Writes are accepted into the page cache as on any disk; once
// the tmpfs is full, writing them back fails, and Linux reports the error
// the way it reports a failing disk: to fsync and syncfs callers, once per
// open file (errseq).
type FailingDisk struct {
	Dir string // the mounted file system
}

// MountFailingDisk makes a FailingDisk of 64 MiB whose writeback fails
// after about backing bytes, and removes it in t.Cleanup. It needs root,
// losetup and mkfs.ext4: without root the test is skipped, or fails when
// the environment has CI=true (CI runs as root).
func MountFailingDisk(t testing.TB, backing int64) *FailingDisk {
	t.Helper()
	small := MountTmpfs(t, backing)
	img := filepath.Join(small.Dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out))
	}
	// No journal: an aborted journal would fail every later syncfs, which
	// hides how the kernel reports each error once per open file.
	run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", img)
	dev := run("losetup", "-f", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	dir := t.TempDir()
	// errors=continue: a failed journal write must not panic the kernel or
	// make the test's cleanup fail; the test only needs the data errors.
	run("mount", "-o", "errors=continue", dev, dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
		}
	})
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatal(fmt.Errorf("failing disk not mounted at %s: %v", dir, err))
	}
	return &FailingDisk{Dir: dir}
}
