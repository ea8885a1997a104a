package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// nameLayout names a snapshot by its start time (UTC); names sort in time
// order. A second snapshot in the same second gets "-2", "-3"...
const nameLayout = "2006-01-02T150405Z"

// isSnapshotName reports whether a directory name is a snapshot's.
func isSnapshotName(n string) bool {
	t, k := splitName(n)
	if _, err := time.Parse(nameLayout, t); err != nil {
		return false
	}
	return n == t || (k >= 2 && n == fmt.Sprintf("%s-%d", t, k))
}

// Snapshot is a snapshot directory in a backup directory.
type Snapshot struct {
	Name     string
	Path     string
	Complete bool // it has its manifest
}

// List returns the snapshots in the backup directory dir, oldest first.
// A missing dir has none.
func List(dir string) ([]Snapshot, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, e := range ents {
		if !e.IsDir() || !isSnapshotName(e.Name()) {
			continue
		}
		s := Snapshot{Name: e.Name(), Path: filepath.Join(dir, e.Name())}
		if st, err := os.Lstat(filepath.Join(s.Path, ManifestName)); err == nil && st.Mode().IsRegular() {
			s.Complete = true
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return lessName(out[i].Name, out[j].Name) })
	return out, nil
}

// lessName orders snapshot names by time, then by their "-N" suffix.
func lessName(a, b string) bool {
	ta, na := splitName(a)
	tb, nb := splitName(b)
	if ta != tb {
		return ta < tb
	}
	return na < nb
}

func splitName(n string) (string, int) {
	if len(n) > len(nameLayout) && n[len(nameLayout)] == '-' {
		var k int
		fmt.Sscanf(n[len(nameLayout)+1:], "%d", &k)
		return n[:len(nameLayout)], k
	}
	return n, 1
}

// newName returns a name for a snapshot started at t not taken in dir.
func newName(dir string, t time.Time) string {
	base := t.UTC().Format(nameLayout)
	n := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, n)); errors.Is(err, os.ErrNotExist) {
			return n
		}
		n = fmt.Sprintf("%s-%d", base, i)
	}
}

// lockDir takes the backup directory's lock (an flock on
// <dir>/.lock): one backup at a time writes there. It fails at once when
// another holds it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("another backup is writing to %s", dir)
	}
	if err != nil && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.ENOLCK) && !errors.Is(err, syscall.EINVAL) {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// removeSnapshot removes a snapshot: its manifest first (so that one cut
// short is incomplete, and removed by the next backup), then the rest.
func removeSnapshot(path string) error {
	if err := os.Remove(filepath.Join(path, ManifestName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(path)
}

// syncDir fsyncs a directory, making the names in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
