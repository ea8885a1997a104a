package maildir_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestSyncerWritebackError: two accounts' runs store into one file system
// at once, and the disk fails while writing back the first run's message.
// The other run's sync happens to make the kernel write it back, and hears
// of the error first. The first run's batch must fail all the same (it
// would commit a message whose bytes never reached the disk), whichever
// way each batch is synced (maildir.Syncer):
//
//   - full batches, synced by syncfs: Linux reports a writeback error once
//     per open file, so a descriptor of the root opened just before the
//     first run's sync (as each batch did once) sees nothing, because the
//     other run saw the error already; the Syncer's descriptor, open since
//     the run began, sees it;
//   - small batches, synced file by file: the first run's file, opened
//     again for its fsync, hears of its own error, which no one else has
//     taken (the other run's syncfs reports the file system's error, not
//     the file's).
func TestSyncerWritebackError(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra int // small deliveries beside each run's message: syncfs from SyncfsMin
	}{
		{"syncfs", maildir.SyncfsMin},
		{"fsync each", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			writebackError(t, c.extra)
		})
	}
}

func writebackError(t *testing.T, extra int) {
	disk := testenv.MountFailingDisk(t, 8<<20)
	open := func(name string) (*maildir.Syncer, *maildir.Dir) {
		t.Helper()
		s, err := maildir.OpenSyncer(disk.Dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		d, err := maildir.Open(filepath.Join(disk.Dir, name, "INBOX"))
		if err != nil {
			t.Fatal(err)
		}
		return s, d
	}
	first, firstDir := open("first")
	second, secondDir := open("second")
	deliver := func(d *maildir.Dir, size int) *maildir.Delivery {
		t.Helper()
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		body := bytes.Repeat([]byte("All work and no play makes Jack a dull boy.\r\n"), size/46)
		if _, err := w.Write(append([]byte("Subject: big\r\n\r\n"), body...)); err != nil {
			t.Fatalf("write (the page cache takes it): %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		return w
	}
	batch := func(d *maildir.Dir, size int) []*maildir.Delivery {
		ws := []*maildir.Delivery{deliver(d, size)}
		for range extra {
			ws = append(ws, deliver(d, 100))
		}
		return ws
	}
	big := batch(firstDir, 24<<20) // more than the disk can write back
	small := batch(secondDir, 1<<10)
	if err := second.Sync(small); err == nil {
		t.Log("the second run's sync did not see the writeback error (the kernel wrote back later)")
	} else {
		t.Logf("the second run's sync: %v", err)
	}
	err := first.Sync(big)
	if err == nil {
		t.Fatal("the first run's batch synced without an error, although its message was never written back")
	}
	t.Logf("the first run's sync: %v", err)
	for _, w := range append(big, small...) {
		w.Abort()
	}
}
