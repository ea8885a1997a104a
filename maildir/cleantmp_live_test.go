package maildir

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestCleanOwnTmpLeavesLiveDeliveries: CleanOwnTmp (a sync's start)
// removes the tmp/ leftovers of killed processes, but not a delivery of
// this process that is in flight (a local endpoint's APPEND while the
// agent syncs), nor a UIDVALIDITY temp file being written; the delivery
// then commits. It used to remove the delivery's file: the APPEND failed.
func TestCleanOwnTmpLeavesLiveDeliveries(t *testing.T) {
	d := openTemp(t)
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: live\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(d.Path, "tmp")
	dead := filepath.Join(tmp, "1700000000.999999999_1.0123456789abcdef.host") // a killed process's
	writeFile(t, dead, "left over")
	writing := filepath.Join(tmp, UIDValidityFile+".123") // an older version's name
	writeFile(t, writing, "7")
	mine := filepath.Join(tmp, UIDValidityFile+"."+strconv.Itoa(os.Getpid())+".77")
	writeFile(t, mine, "9")
	// A killed process's, just written: the kill that left it may have
	// been a second ago. It used to stay a minute, and a sync after the
	// kill left it in tmp/.
	killed := filepath.Join(tmp, UIDValidityFile+".1.88")
	writeFile(t, killed, "10")
	stale := filepath.Join(tmp, UIDValidityFile+".456")
	writeFile(t, stale, "8")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	if n, err := d.CleanOwnTmp(); err != nil || n != 3 {
		t.Errorf("CleanOwnTmp: %d removed, %v; want the three leftovers", n, err)
	}
	for path, want := range map[string]bool{dead: false, stale: false, killed: false, writing: true, mine: true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: there %v after CleanOwnTmp, want %v", filepath.Base(path), err == nil, want)
		}
	}
	if _, err := d.Commit(w, 0, 0); err != nil {
		t.Errorf("the delivery in flight cannot commit after CleanOwnTmp: %v", err)
	}
}

// TestCleanLeftovers: one reading of tmp/ removes what CleanOwnTmp and
// CleanTmp would: a killed process's delivery, another program's file
// older than the age given; it keeps this process's delivery in flight,
// another program's young file and a directory.
func TestCleanLeftovers(t *testing.T) {
	d := openTemp(t)
	w, err := d.NewDelivery() // in flight
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	tmp := filepath.Join(d.Path, "tmp")
	dead := filepath.Join(tmp, "1700000000.999999999_1.0123456789abcdef.host")
	writeFile(t, dead, "left over")
	foreignOld := filepath.Join(tmp, "other-program.1")
	writeFile(t, foreignOld, "x")
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(foreignOld, old, old); err != nil {
		t.Fatal(err)
	}
	foreignYoung := filepath.Join(tmp, "other-program.2")
	writeFile(t, foreignYoung, "y")
	if err := os.Mkdir(filepath.Join(tmp, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if n, err := d.CleanLeftovers(36 * time.Hour); err != nil || n != 2 {
		t.Errorf("CleanLeftovers: %d removed, %v; want 2", n, err)
	}
	for path, want := range map[string]bool{dead: false, foreignOld: false, foreignYoung: true, filepath.Join(tmp, "dir"): true, filepath.Join(tmp, w.Key()): true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: there %v after CleanLeftovers, want %v", filepath.Base(path), err == nil, want)
		}
	}
}
