package maildir

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

type linuxSync struct {
	fd   int
	path string
	dev  uint64
}

// openSyncHandle opens dir for syncfs.
func openSyncHandle(dir string) (syncHandle, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	return &linuxSync{fd: fd, path: dir, dev: st.Dev}, nil
}

func (h *linuxSync) syncfs() error {
	err := unix.Syncfs(h.fd)
	if errors.Is(err, unix.ENOSYS) {
		return errNoSyncfs
	}
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: h.path, Err: err}
	}
	return nil
}

func (h *linuxSync) contains(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Dev == h.dev, nil
}

func (h *linuxSync) close() error { return unix.Close(h.fd) }

// renameNoReplace renames src to dst, failing if dst exists, with renameat2
// RENAME_NOREPLACE, or with link and unlink where the file system or kernel
// lacks it.
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return linkRename(src, dst)
	}
	return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
}

// dropCached asks the kernel to drop the file's pages from the page cache
// (posix_fadvise DONTNEED): those of a file synced to disk go at once. It
// is a hint; errors are ignored.
func dropCached(path string) { advise(path, unix.FADV_DONTNEED) }

// WillNeed asks the kernel to read the message file at path into the page
// cache in the background (posix_fadvise WILLNEED), for a reader that will
// soon open it. Only a regular file is asked for: anything else is never
// opened (the open of a FIFO would wait for its writer). It is a hint;
// errors are ignored.
func WillNeed(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		advise(path, unix.FADV_WILLNEED)
	}
}

// advise gives the kernel advice about the whole file at path.
func advise(path string, advice int) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Fadvise(fd, 0, 0, advice)
	unix.Close(fd)
}
