package maildir

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDeliverSyncBeforeClose: a delivery fsynced on its own descriptor
// before Close (DeliverSync, as Enqueue does for its one file) is durable
// as it is, and a Syncer's Sync leaves it alone (no syncfs of the whole
// file system for it); anything written after it, or the CR Close still
// owes, makes it a delivery to sync again.
func TestDeliverSyncBeforeClose(t *testing.T) {
	root := t.TempDir()
	d, err := Open(filepath.Join(root, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSyncer(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(w *Delivery, p string) {
		t.Helper()
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name        string
		before      string // written before DeliverSync
		after       string // written after it
		wantSynced  bool   // after Close
		wantContent string // on disk
	}{
		{"all before", "Subject: a\r\n\r\nbody\r\n", "", true, "Subject: a\n\nbody\n"},
		{"written after", "Subject: b\r\n\r\n", "more\r\n", false, "Subject: b\n\nmore\n"},
		{"a CR still owed", "Subject: c\r\n\r\nends in CR\r", "", false, "Subject: c\n\nends in CR\r"},
	} {
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		write(w, c.before)
		if err := d.DeliverSync(w); err != nil {
			t.Fatalf("%s: DeliverSync: %v", c.name, err)
		}
		if !w.synced {
			t.Errorf("%s: not marked synced after DeliverSync", c.name)
		}
		if c.after != "" {
			write(w, c.after)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if w.synced != c.wantSynced {
			t.Errorf("%s: synced = %v after Close, want %v", c.name, w.synced, c.wantSynced)
		}
		if err := s.Sync([]*Delivery{w}); err != nil {
			t.Fatalf("%s: Sync: %v", c.name, err)
		}
		name, err := d.Commit(w, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(d.Path, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.wantContent {
			t.Errorf("%s: file holds %q, want %q", c.name, got, c.wantContent)
		}
	}
}

// TestSyncSub: SyncSub takes cur and new only.
func TestSyncSub(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cur", "new"} {
		if err := d.SyncSub(sub); err != nil {
			t.Errorf("SyncSub(%q): %v", sub, err)
		}
	}
	for _, sub := range []string{"tmp", "", "../x"} {
		if err := d.SyncSub(sub); err == nil {
			t.Errorf("SyncSub(%q): no error", sub)
		}
	}
}
