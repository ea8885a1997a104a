package index

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/postfach/postfach/maildir"
)

// Knows reports whether the index already reflects the state of the
// message file at path (absolute, <root>/<folder>/cur|new/<name>): the
// file exists and its folder's row for that Maildir key records exactly
// this name, or it does not exist and no row records that name. The
// store's own writes (a delivery, a flag rename, a move, a removal through
// the door) leave paths it knows; a change by another program (a mail
// client renaming a file for a flag, deleting or moving it) leaves one it
// does not, until a sync takes it in. The local watcher asks it to tell
// the two apart. Errors count as not known (the caller syncs).
func (s *Store) Knows(ctx context.Context, path string) bool {
	if s.root == "" {
		return false
	}
	rel, err := filepath.Rel(s.root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	dir, name := filepath.Split(rel)
	dir = filepath.Clean(dir)
	sub := filepath.Base(dir)
	if sub != "cur" && sub != "new" {
		return false
	}
	e, ok := maildir.ParseName(name)
	if !ok {
		return false
	}
	file := sub + "/" + name
	_, statErr := os.Lstat(path)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		return false
	}
	known := false
	err = s.Read(ctx, func(tx *ReadTx) error {
		f, err := tx.FolderByPath(filepath.ToSlash(filepath.Dir(dir)))
		if err != nil {
			return err
		}
		m, err := tx.MessageByKey(f.ID, e.Key)
		switch {
		case errors.Is(err, ErrNotFound):
			known = !exists
			return nil
		case err != nil:
			return err
		}
		known = (m.File == file) == exists
		return nil
	})
	return err == nil && known
}
