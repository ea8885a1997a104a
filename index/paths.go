package index

import (
	"fmt"
	"path/filepath"

	"github.com/postfach/postfach/maildir"
)

// FolderPath returns the path a folder row records for folder of account
// (Folder.Path): its Maildir relative to the store root, '/'-separated,
// as maildir.FolderDir places it. Store.Dir turns it into the directory.
func FolderPath(account, folder string) (string, error) {
	if _, err := maildir.FolderDir(".", account, folder); err != nil {
		return "", err
	}
	return maildir.EncodeName(account) + "/" + maildir.EncodeFolder(folder), nil
}

// CheckRoot fails unless root is the store's Maildir root (OpenStore): an
// engine given a root and a store checks that they agree before it writes.
func (s *Store) CheckRoot(root string) error {
	if s.root == "" {
		return errNoRoot
	}
	if filepath.Clean(root) != filepath.Clean(s.root) {
		return fmt.Errorf("index: the store's Maildir root is %s, not %s", s.root, root)
	}
	return nil
}
