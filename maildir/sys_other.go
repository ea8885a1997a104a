//go:build !linux

package maildir

import "os"

// startWriteback: only Linux has sync_file_range(2); elsewhere the fsync
// of the batch writes the file.
func startWriteback(*os.File) {}

// renameNoReplace renames src to dst, failing if dst exists.
func renameNoReplace(src, dst string) error { return linkRename(src, dst) }
