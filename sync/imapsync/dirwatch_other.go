//go:build !linux

package imapsync

import "errors"

// newDirWatch: end stamps need inotify's guarantee (an event queued within
// the system call that made it, read in order); elsewhere a run records
// none and the next run reads the folders it changed.
func newDirWatch() (dirWatch, error) { return nil, errors.New("no directory watch on this system") }
