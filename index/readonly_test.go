package index_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// OpenStoreReadOnly opens a current index and reads it; it answers
// ErrNeedsWrite for an index that OpenStore must create, migrate or make
// private first, refuses one a newer postfach migrated in one line, and
// its store refuses writes.
func TestOpenStoreReadOnly(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	path := index.DefaultPath(root)
	if _, err := index.OpenStoreReadOnly(root); !errors.Is(err, index.ErrNeedsWrite) {
		t.Fatalf("no index yet: %v, want ErrNeedsWrite", err)
	}
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, func(tx *index.Tx) error {
		_, err := tx.EnsureAccount("acct")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	ro, err := index.OpenStoreReadOnly(root)
	if err != nil {
		t.Fatal(err)
	}
	var accts []index.AccountState
	if err := ro.Read(ctx, func(tx *index.ReadTx) error {
		accts, err = tx.Accounts()
		return err
	}); err != nil || len(accts) != 1 || accts[0].Name != "acct" {
		t.Errorf("read-only store reads accounts %+v (%v), want acct", accts, err)
	}
	if err := ro.Write(ctx, func(tx *index.Tx) error {
		_, err := tx.EnsureAccount("other")
		return err
	}); err == nil {
		t.Error("a read-only store's Write succeeded")
	}
	if err := ro.WriteRelaxed(ctx, func(tx *index.Tx) error { return nil }); err == nil {
		t.Error("a read-only store's WriteRelaxed succeeded")
	}
	dry := ro.DryRun()
	if err := dry.Read(ctx, func(tx *index.ReadTx) error { return nil }); err == nil {
		t.Error("a read-only store's dry-run view began a transaction on a write connection it has not")
	}
	dry.Discard()
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	version := func() int {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v int
		if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	setVersion := func(v int) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec("PRAGMA user_version = " + strconv.Itoa(v)); err != nil {
			t.Fatal(err)
		}
	}
	current := version()
	setVersion(current - 1)
	if _, err := index.OpenStoreReadOnly(root); !errors.Is(err, index.ErrNeedsWrite) {
		t.Errorf("older schema: %v, want ErrNeedsWrite", err)
	}
	setVersion(current + 1)
	_, err = index.OpenStoreReadOnly(root)
	if err == nil || errors.Is(err, index.ErrNeedsWrite) || !strings.Contains(err.Error(), "newer postfach") || strings.Contains(err.Error(), "\n") {
		t.Errorf("newer schema: %v, want a one-line error naming a newer postfach", err)
	}
	setVersion(current)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := index.OpenStoreReadOnly(root); !errors.Is(err, index.ErrNeedsWrite) {
		t.Errorf("index readable by others: %v, want ErrNeedsWrite (OpenStore makes it private)", err)
	}
}

// A read-only store writes nothing to the index, not even the checkpoint
// of a WAL that a killed writer left (a store's last connection to close
// otherwise copies the WAL into the database file and removes it): it
// reads what the WAL holds, and leaves the database file and the WAL as
// they were.
func TestOpenStoreReadOnlyLeavesWAL(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	path := index.DefaultPath(root)
	db, wal := killedWriter(t, root, "written before the kill")
	st, err := index.OpenStoreReadOnly(root)
	if err != nil {
		t.Fatal(err)
	}
	var accts []index.AccountState
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		accts, err = tx.Accounts()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(accts) != 1 || accts[0].LastError != "written before the kill" {
		t.Errorf("accounts %+v, want acct with the error committed to the WAL", accts)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		want []byte
	}{{path, db}, {path + "-wal", wal}} {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.want) {
			t.Errorf("%s changed by a read-only store (%d bytes before, %d after)", filepath.Base(f.path), len(f.want), len(got))
		}
	}
}

// killedWriter leaves the index of the store at root as a writer killed
// after a commit does: the commit (account "acct" with errMsg as its
// last error) in the WAL only, not checkpointed, no shared-memory file.
// It returns the database file's and the WAL's bytes.
func killedWriter(t *testing.T, root, errMsg string) (db, wal []byte) {
	t.Helper()
	path := index.DefaultPath(root)
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		id, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		return tx.SetAccountResult(id, time.Now(), errMsg)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The files as they are now, the writer idle and open: what a
	// kill -9 leaves.
	if db, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if wal, err = os.ReadFile(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if len(wal) == 0 {
		t.Fatal("the commit left nothing in the WAL")
	}
	st.Close() // checkpoints: put back what the kill leaves
	if err := os.WriteFile(path, db, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + "-shm")
	return db, wal
}
