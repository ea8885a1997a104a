package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// The formats of a snapshot (Options.Format, Snapshot.Format).
const (
	FormatDir    = "dir"     // a directory: <name>/
	FormatTarZst = "tar.zst" // one file: <name>.tar.zst
	FormatMbox   = "mbox"    // a directory of mbox files: <name>.mbox/
)

// Suffixes of the names of the snapshots of each format, and of the
// names a tar.zst has while it is written (removed by the next backup).
const (
	tarSuffix     = ".tar.zst"
	tarPartSuffix = ".tar.zst.part" // the archive being written
	tarWorkSuffix = ".tar.zst.work" // a directory: its index copy
	mboxSuffix    = ".mbox"
)

// Snapshot is a snapshot in a backup directory.
type Snapshot struct {
	Name     string // its file or directory name
	Path     string
	Format   string // FormatDir, FormatTarZst or FormatMbox
	Complete bool   // it has its manifest (a tar.zst: it has its final name)
}

// List returns the snapshots in the backup directory dir, of every
// format, oldest first. A missing dir has none.
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
		s, ok := parseSnapshotName(e.Name(), e.IsDir())
		if !ok {
			continue
		}
		s.Path = filepath.Join(dir, e.Name())
		if s.Format != FormatTarZst {
			if st, err := os.Lstat(filepath.Join(s.Path, ManifestName)); err == nil && st.Mode().IsRegular() {
				s.Complete = true
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return lessName(stem(out[i].Name), stem(out[j].Name)) })
	return out, nil
}

// parseSnapshotName tells what a name in a backup directory is: a
// snapshot of some format (a complete tar.zst by its name alone), a
// tar.zst cut short (incomplete), or nothing of ours.
func parseSnapshotName(n string, isDir bool) (Snapshot, bool) {
	s := Snapshot{Name: n}
	switch {
	case isDir && isSnapshotName(n):
		s.Format = FormatDir
	case isDir && strings.HasSuffix(n, mboxSuffix) && isSnapshotName(strings.TrimSuffix(n, mboxSuffix)):
		s.Format = FormatMbox
	case !isDir && strings.HasSuffix(n, tarSuffix) && isSnapshotName(strings.TrimSuffix(n, tarSuffix)):
		s.Format, s.Complete = FormatTarZst, true
	case !isDir && strings.HasSuffix(n, tarPartSuffix) && isSnapshotName(strings.TrimSuffix(n, tarPartSuffix)),
		isDir && strings.HasSuffix(n, tarWorkSuffix) && isSnapshotName(strings.TrimSuffix(n, tarWorkSuffix)):
		s.Format = FormatTarZst
	default:
		return s, false
	}
	return s, true
}

// stem is a snapshot's name without its format's suffix: its time.
func stem(n string) string {
	if i := strings.IndexByte(n, '.'); i >= 0 {
		return n[:i]
	}
	return n
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

// newName returns a name (without a format's suffix) for a snapshot
// started at t that no snapshot in dir, of any format, has taken.
func newName(dir string, t time.Time) string {
	base := t.UTC().Format(nameLayout)
	n := base
	for i := 2; ; i++ {
		free := true
		for _, suffix := range []string{"", mboxSuffix, tarSuffix, tarPartSuffix, tarWorkSuffix} {
			if _, err := os.Lstat(filepath.Join(dir, n+suffix)); !errors.Is(err, os.ErrNotExist) {
				free = false
			}
		}
		if free {
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
// short is incomplete, and removed by the next backup), then the rest. A
// tar.zst is one file: one unlink.
func removeSnapshot(path string) error {
	if strings.HasSuffix(path, tarSuffix) {
		return os.Remove(path)
	}
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
