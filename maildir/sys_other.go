//go:build !linux

package maildir

// openSyncHandle: syncfs(2) is Linux only; elsewhere there is no handle,
// and a Syncer fsyncs each file.
func openSyncHandle(string) (syncHandle, error) { return nil, nil }

// renameNoReplace renames src to dst, failing if dst exists.
func renameNoReplace(src, dst string) error { return linkRename(src, dst) }

// dropCached: where a file's cached pages cannot be dropped on request,
// the kernel keeps them as it likes.
func dropCached(string) {}

// WillNeed: where the kernel cannot be asked to read a file ahead, the
// reader reads it when it opens it.
func WillNeed(string) {}
