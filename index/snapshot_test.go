package index

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestSnapshotIntoSelfContained: the copy holds the index's rows, is one
// file in rollback-journal mode (its header's read and write versions
// 1, not WAL's 2), owner-only, with no -wal or -shm file beside it, and
// opens as an index again.
func TestSnapshotIntoSelfContained(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Write(context.Background(), func(tx *Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		_, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy.db")
	if err := st.SnapshotInto(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || b[18] != 1 || b[19] != 1 {
		t.Errorf("copy's header: %d bytes, versions %v, want 1 1", len(b), b[18:20])
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copy: %v, %v", fi, err)
	}
	for _, p := range []string{dst + "-wal", dst + "-shm", dst + "-journal"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left beside the copy", filepath.Base(p))
		}
	}
	cp, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	err = cp.Read(context.Background(), func(tx *ReadTx) error {
		as, err := tx.Accounts()
		if err != nil {
			return err
		}
		if len(as) != 1 || as[0].Name != "acct" {
			t.Errorf("copy's accounts: %+v", as)
			return nil
		}
		fs, err := tx.Folders(as[0].ID)
		if len(fs) != 1 || fs[0].Path != "acct/INBOX" {
			t.Errorf("copy's folders: %+v", fs)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
