package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockStore takes the store's sync lock (<store>/.postfach/sync.lock), so
// that two runs never write the same Maildir at once; the lock dies with the
// process, also on kill -9. what names the holder ("postfach sync",
// "postfach run"): it is written into the lock file with the process id,
// so that a run refused the lock can say who holds it. It returns the
// unlock function.
func lockStore(root, what string) (func(), error) {
	path := filepath.Join(root, ".postfach", "sync.lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid, cmd, ok := lockHolder(path); ok {
				return nil, fmt.Errorf("another postfach is syncing %s: %s, process %d, holds the lock %s", root, cmd, pid, path)
			}
			return nil, fmt.Errorf("another postfach is syncing %s (lock %s)", root, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// Who holds it, for the runs it keeps out (best effort: the lock is
	// the flock, not this text).
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), what)), 0)
	}
	return func() {
		f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// lockHolder reads the process id and command a lock holder wrote into
// the lock file; ok is false when there is none or that process is gone
// (a holder that did not write, such as an older version).
func lockHolder(path string) (pid int, cmd string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	p, rest, _ := strings.Cut(first, " ")
	pid, err = strconv.Atoi(p)
	if err != nil || pid <= 0 || rest == "" || len(rest) > 64 || strings.ContainsFunc(rest, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return 0, "", false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, "", false
	}
	return pid, rest, true
}
