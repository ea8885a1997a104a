package index

import (
	"errors"
	"path/filepath"

	"github.com/postfach/postfach/maildir"
)

// OpenStore opens the index of the store rooted at root (the Maildir tree;
// the index is at DefaultPath(root)). A store opened so knows where its
// folders are: Dir finds a folder's Maildir, and the door's methods write
// files as well as rows.
func OpenStore(root string) (*Store, error) {
	// The syncer first: it must see every write of the store's (see
	// maildir.Syncer).
	files, err := maildir.OpenSyncer(root)
	if err != nil {
		return nil, err
	}
	s, err := Open(DefaultPath(root))
	if err != nil {
		files.Close()
		return nil, err
	}
	s.root, s.files = root, files
	return s, nil
}

// Root returns the Maildir root of a store opened with OpenStore ("" for
// one opened with Open).
func (s *Store) Root() string { return s.root }

// errNoRoot is returned by the methods that need the Maildir of a store
// opened with Open.
var errNoRoot = errors.New("index: store opened without its Maildir root (use OpenStore)")

// Dir returns folder f's Maildir. This is the one place a folder's path
// (slash-separated in the row, relative to the root) becomes a directory.
func (s *Store) Dir(f Folder) (*maildir.Dir, error) {
	if s.root == "" {
		return nil, errNoRoot
	}
	return &maildir.Dir{Path: filepath.Join(s.root, filepath.FromSlash(f.Path))}, nil
}
