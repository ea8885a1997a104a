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
