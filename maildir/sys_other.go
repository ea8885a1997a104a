//go:build !linux

package maildir

// syncHandle is what a Syncer keeps open for syncfs(2), which is Linux
// only: elsewhere there is none, and a Syncer fsyncs each file.
type syncHandle interface {
	syncfs() error
	contains(path string) (bool, error)
	close() error
}

func openSyncHandle(string) (syncHandle, error) { return nil, nil }

// renameNoReplace renames src to dst, failing if dst exists.
func renameNoReplace(src, dst string) error { return linkRename(src, dst) }
