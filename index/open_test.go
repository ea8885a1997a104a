package index_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/postfach/postfach/index"
)

// The index and its WAL and shared-memory files hold every subject and
// address of the mail: they are the owner's only, whatever the umask.
func TestOpenCreatesPrivateFiles(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "index.db")
	st, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Write(context.Background(), func(tx *index.Tx) error {
		_, err := tx.EnsureAccount("a")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", filepath.Base(p), m)
		}
	}
}

// An index that an older postfach created world-readable is made private
// when it is opened.
func TestOpenMakesOldIndexPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	st, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %#o after reopening, want 0600", fi.Mode().Perm())
	}
}

// A store path holding characters that mean something in a URI ("?"
// starts the query, "#" the fragment, "%" an escape) opens exactly the
// file it names.
func TestOpenPathWithURICharacters(t *testing.T) {
	for _, name := range []string{"a?b", "a#b", "a%3Fb", "a%b", "a b&c=d", "ü;x"} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "index.db")
		st, err := index.Open(path)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if err := st.Write(context.Background(), func(tx *index.Tx) error {
			_, err := tx.EnsureAccount("acct")
			return err
		}); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		st.Close()
		entries, _ := os.ReadDir(filepath.Dir(dir))
		if len(entries) != 1 || entries[0].Name() != name {
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			t.Errorf("%q: the parent holds %q, want only %q", name, got, name)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("%q: %s not written (%v)", name, path, err)
		}
		st, err = index.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var accts []index.AccountState
		st.Read(context.Background(), func(tx *index.ReadTx) error {
			accts, err = tx.Accounts()
			return err
		})
		st.Close()
		if len(accts) != 1 || accts[0].Name != "acct" {
			t.Errorf("%q: reopened index has accounts %+v, want acct", name, accts)
		}
	}
}

// Two first runs at once: both find the schema created, neither fails
// with "table accounts already exists".
func TestConcurrentFirstOpens(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	for range rounds {
		path := filepath.Join(t.TempDir(), "index.db")
		const n = 4
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				st, err := index.Open(path)
				if err == nil {
					err = st.Close()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("open %d of %d at once: %v", i+1, n, err)
			}
		}
	}
}
