package backup

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// fsHandle is a descriptor of a snapshot's directory, opened before the
// snapshot's first write and kept until its files are durable: Linux
// reports a writeback error to each descriptor open when it happened,
// and one syncfs(2) makes every file of the snapshot durable at once.
type fsHandle struct {
	fd   int
	path string
}

func openFS(dir string) (*fsHandle, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &fsHandle{fd: fd, path: dir}, nil
}

// perFile reports whether each copied file must be fsynced on its own.
func (h *fsHandle) perFile() bool { return false }

// sync makes every file written since openFS durable; where the kernel
// lacks syncfs, it falls back to sync(2).
func (h *fsHandle) sync() error {
	err := unix.Syncfs(h.fd)
	if errors.Is(err, unix.ENOSYS) {
		unix.Sync()
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: h.path, Err: err}
	}
	return nil
}

func (h *fsHandle) close() error { return unix.Close(h.fd) }

// fsFree returns the bytes an unprivileged user may still write on the
// filesystem of dir.
func fsFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return st.Bavail * uint64(st.Bsize), nil
}
