package localauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// File names in the store's state directory.
const (
	CredentialsFile = "local-credentials"
	CertFile        = "local-cert.pem"
	KeyFile         = "local-key.pem"
	lockFile        = "localauth.lock"
)

// StateDir returns the state directory of the store rooted at root,
// <root>/.postfach.
func StateDir(root string) string { return filepath.Join(root, ".postfach") }

// withLock creates the state directory (0700) and runs fn holding the
// directory's localauth flock.
func withLock(dir string, fn func() error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := private(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// private takes group and other permissions away from path (mode is what
// it should be: 0700 for a directory, 0600 for a file).
func private(path string, mode fs.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(path, mode)
	}
	return nil
}

// readPrivate reads a file of the state directory, made 0600 first;
// (nil, nil) when it does not exist.
func readPrivate(path string) ([]byte, error) {
	if err := private(path, 0o600); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return os.ReadFile(path)
}

// writePrivate writes data to path (0600) through a synced temporary
// file renamed over it, and syncs the directory.
func writePrivate(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
