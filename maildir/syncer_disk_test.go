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
// The other run's sync may make the kernel write it back, or fail on its
// own message. The first run's batch must fail all the same (it would
// commit a message whose bytes never reached the disk): Linux reports a
// writeback error to the next descriptor of the file opened when no one
// has reported it yet, and only the first run fsyncs its file. (With one
// syncfs per batch, as before, the other run could hear of the error first;
// a descriptor of the store root kept open for the run was then needed.)
func TestSyncerWritebackError(t *testing.T) {
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
	big := deliver(firstDir, 24<<20) // more than the disk can write back
	small := deliver(secondDir, 1<<10)
	if err := second.Sync([]*maildir.Delivery{small}); err == nil {
		t.Log("the second run's sync did not see the writeback error (the kernel wrote back later)")
	} else {
		t.Logf("the second run's sync: %v", err)
	}
	err := first.Sync([]*maildir.Delivery{big})
	if err == nil {
		t.Fatal("the first run's batch synced without an error, although its message was never written back")
	}
	t.Logf("the first run's sync: %v", err)
	big.Abort()
	small.Abort()
}
