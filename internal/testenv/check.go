package testenv

import (
	"bytes"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"sync"
	"testing"

	"github.com/postfach/postfach/index"
)

// CheckIndex runs SQLite's PRAGMA integrity_check on the index of the store
// at root, read-only (it also works on a full disk), and fails the test
// unless it says "ok". A store without an index yet passes.
func CheckIndex(t testing.TB, root string) {
	t.Helper()
	path := index.DefaultPath(root)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("index integrity_check: %v", err)
	}
	if res != "ok" {
		t.Errorf("index integrity_check: %s", res)
	}
}

// Buffer is a bytes.Buffer safe for concurrent writes and reads: a log or
// protocol trace written by several goroutines and read by the test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
