//go:build linux

package index_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestOpenKeepsOthersLocks: a second Open of an index this process has
// open leaves the first Store's SQLite locks in place. A descriptor of
// the file opened and closed outside SQLite drops them all (POSIX locks
// belong to the process), and with them the WAL-mode SHARED lock that
// tells other processes the WAL is in use (CI, session 18: a `postfach
// status` beside `postfach run` found a hot journal nobody held).
func TestOpenKeepsOthersLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	first, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Read(context.Background(), func(*index.ReadTx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	held := func() []string {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		var mine []string
		me := fmt.Sprintf(" %d ", os.Getpid())
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 5 && strings.Contains(l, me) && strings.HasSuffix(f[5], fmt.Sprintf(":%d", st.Ino)) {
				mine = append(mine, l)
			}
		}
		return mine
	}
	before := held()
	if len(before) == 0 {
		t.Fatal("an open Store holds no lock on its database file (WAL mode holds a SHARED one)")
	}
	second, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if after := held(); len(after) == 0 {
		t.Errorf("after a second Open and Close of the same index the first Store's locks are gone (before: %q)", before)
	}
}
