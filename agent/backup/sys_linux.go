package backup

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

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

// linker makes hard links through descriptors of their directories,
// opened once each: a backup links thousands of files between a few
// directories, and linkat(2) from a directory's descriptor spares the
// kernel the walk of both long paths for each.
type linker struct {
	mu  sync.Mutex
	fds map[string]int
}

func newLinker() *linker { return &linker{fds: map[string]int{}} }

// dir returns a descriptor of the directory dir.
func (l *linker) dir(dir string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if fd, ok := l.fds[dir]; ok {
		return fd, nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	l.fds[dir] = fd
	return fd, nil
}

// link makes newname a hard link to oldname, as os.Link does.
func (l *linker) link(oldname, newname string) error {
	od, of := filepath.Split(oldname)
	nd, nf := filepath.Split(newname)
	ofd, err := l.dir(od)
	if err != nil {
		return err
	}
	nfd, err := l.dir(nd)
	if err != nil {
		return err
	}
	for {
		err = unix.Linkat(ofd, of, nfd, nf, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func (l *linker) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, fd := range l.fds {
		unix.Close(fd)
	}
	l.fds = nil
}
