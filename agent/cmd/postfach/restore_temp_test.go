package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRestoreTemp: a run's temporary directory carries its process id in
// its name from the moment it exists, so one left by a run killed right
// after making it (before writing anything into it) is removed by the
// next run; those of live processes and directories restore did not make
// stay.
func TestRestoreTemp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(tmp, fmt.Sprintf("postfach-restore-%d-123", gone.Process.Pid))
	live := filepath.Join(tmp, fmt.Sprintf("postfach-restore-%d-456", os.Getpid()))
	other := filepath.Join(tmp, "postfach-restore-notes")
	for _, d := range []string{dead, live, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	d, err := restoreTemp()
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := restoreTempPID(filepath.Base(d)); !ok || pid != os.Getpid() || filepath.Dir(d) != tmp {
		t.Errorf("restoreTemp made %s: want %s/postfach-restore-%d-*", d, tmp, os.Getpid())
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s, of a process that is gone, is still there (%v)", dead, err)
	}
	for _, keep := range []string{live, other, d} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
}
