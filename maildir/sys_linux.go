package maildir

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS calls syncfs(2) once for each distinct file system among paths.
// It returns errNoSyncfs if the kernel lacks syncfs.
func syncFS(paths []string) error {
	seen := make(map[uint64]bool, 1)
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if seen[st.Dev] {
			continue
		}
		seen[st.Dev] = true
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: p, Err: err}
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if errors.Is(err, unix.ENOSYS) {
			return errNoSyncfs
		} else if err != nil {
			return &os.PathError{Op: "syncfs", Path: p, Err: err}
		}
	}
	return nil
}

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
