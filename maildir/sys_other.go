//go:build !linux

package maildir

// syncFS is Linux only; elsewhere SyncBatch fsyncs each file.
func syncFS([]string) error { return errNoSyncfs }

// renameNoReplace renames src to dst, failing if dst exists.
func renameNoReplace(src, dst string) error { return linkRename(src, dst) }
