package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// PLACEHOLDER: backup.Materialize (agent/backup/materialize.go, from the
// formats work) replaces this when merging: delete this file and call
// backup.Materialize in agent/cmd/postfach/restore_cmd.go.
//
// Materialize returns a snapshot directory for path: path itself when it
// is a directory. Exports (.tar.zst, mbox) are not read yet.
func Materialize(ctx context.Context, path, tmp string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s: only snapshot directories can be restored by this build", path)
	}
	return filepath.Abs(path)
}
