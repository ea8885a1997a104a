package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/postfach/postfach/maildir"
)

// The door's folder mutations: a folder's Maildir and its row (see
// mutate.go). Directory first, then row, as a mail program's change to
// the Maildir followed by the scan that records it: a crash in between
// leaves the directory as the next sync expects to find a change made by
// another program (a new Maildir, a Maildir under a new name, a Maildir
// gone), and it carries it out as such.

// folderPath returns the Maildir directory of an account's folder and its
// path relative to the root ('/'-separated, as rows hold it).
func (s *Store) folderPath(ctx context.Context, acct AccountID, name string) (dir, rel string, err error) {
	if s.root == "" {
		return "", "", errNoRoot
	}
	if s.dry != nil {
		return "", "", errDryDoor
	}
	var acctName string
	err = s.Read(ctx, func(tx *ReadTx) error {
		return tx.queryRow(`SELECT name FROM accounts WHERE id=?`, acct).Scan(&acctName)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("index: account %d: %w", acct, ErrNotFound)
	} else if err != nil {
		return "", "", err
	}
	dir, err = maildir.FolderDir(s.root, acctName, name)
	if err != nil {
		return "", "", err
	}
	r, err := filepath.Rel(s.root, dir)
	if err != nil {
		return "", "", err
	}
	return dir, filepath.ToSlash(r), nil
}

// CreateFolder creates an account's folder: its Maildir (durably), then
// its row (a FolderCreated change) in one transaction with also. A folder
// that exists is returned as it is.
func (s *Store) CreateFolder(ctx context.Context, acct AccountID, name string, also func(*Tx) error) (*Folder, error) {
	dir, rel, err := s.folderPath(ctx, acct, name)
	if err != nil {
		return nil, err
	}
	if _, err := maildir.Open(dir); err != nil {
		return nil, err
	}
	var f *Folder
	err = s.Write(ctx, func(tx *Tx) error {
		var err error
		if f, err = tx.EnsureFolder(acct, name, rel); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	return f, err
}

// ErrArchiveFolder is RemoveFolder's and RenameFolder's error for a
// folder of the archive view (index.ArchivePrefix and below), or a rename
// into it: it holds the only copies of what was deleted, and only Purge
// (`postfach purge`) takes messages out of it.
var ErrArchiveFolder = errors.New("folders in " + ArchivePrefix + " are neither deleted nor renamed, nor renamed into; " +
	"postfach purge removes messages from them")

// ErrArchiveNotEmpty is RemoveFolder's error for a folder with messages
// in an account that keeps an archive (ArchiveOn): removing it would
// remove them for good. Expunged first, they are kept in the archive
// view (Expunge archives them); the empty folder can then be removed.
var ErrArchiveNotEmpty = errors.New("this account keeps an archive: a folder is deleted once empty; " +
	"expunge its messages first (they are kept in " + ArchivePrefix + ")")

// RenameFolder renames folder f, and the folders below it, to name to:
// the Maildir directory moves (and those below with it), the parent
// directories are synced, then the rows are renamed (a FolderRenamed
// change each) in one transaction with also. A Maildir that another
// program already moved to the new name is taken where it is; an
// existing Maildir under the new name is an error. A folder of the
// archive view, or a name in it, is ErrArchiveFolder.
func (s *Store) RenameFolder(ctx context.Context, f *Folder, to string, also func(*Tx) error) error {
	if IsArchiveFolder(f.Name) || IsArchiveFolder(to) {
		return ErrArchiveFolder
	}
	toDir, _, err := s.folderPath(ctx, f.Account, to)
	if err != nil {
		return err
	}
	from, err := s.Dir(*f)
	if err != nil {
		return err
	}
	if from.Path != toDir {
		_, errFrom := os.Lstat(from.Path)
		_, errTo := os.Stat(filepath.Join(toDir, "cur"))
		switch {
		case errFrom == nil && errTo == nil:
			return fmt.Errorf("cannot rename folder %q to %q: the target exists locally", f.Name, to)
		case errFrom == nil:
			if err := os.MkdirAll(filepath.Dir(toDir), 0o700); err != nil {
				return err
			}
			if err := os.Rename(from.Path, toDir); err != nil {
				return fmt.Errorf("index: rename folder %q: %w", f.Name, err)
			}
			for _, d := range []string{filepath.Dir(toDir), filepath.Dir(from.Path)} {
				if err := maildir.SyncPath(d); err != nil {
					return err
				}
			}
		case !errors.Is(errFrom, fs.ErrNotExist):
			return errFrom
		case errTo != nil:
			return fmt.Errorf("cannot rename folder %q to %q: its Maildir %s is missing", f.Name, to, from.Path)
		}
	}
	return s.renameRows(ctx, f.Account, f.Name, to, also)
}

// renameRows renames the rows of folder from and those below it to to.
func (s *Store) renameRows(ctx context.Context, acct AccountID, from, to string, also func(*Tx) error) error {
	var acctName string
	return s.Write(ctx, func(tx *Tx) error {
		if err := tx.queryRow(`SELECT name FROM accounts WHERE id=?`, acct).Scan(&acctName); err != nil {
			return err
		}
		folders, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for _, g := range folders {
			name := to
			if g.Name != from {
				rest, ok := strings.CutPrefix(g.Name, from+"/")
				if !ok {
					continue
				}
				name = to + "/" + rest
			}
			dir, err := maildir.FolderDir(s.root, acctName, name)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(s.root, dir)
			if err != nil {
				return err
			}
			if err := tx.RenameFolder(g.ID, name, filepath.ToSlash(rel)); err != nil {
				return err
			}
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
}

// RemoveFolder removes folder f: the message files its rows name, then its
// Maildir (tmp/, cur/, new/, the UIDVALIDITY file, and the directory
// itself unless subfolders remain), then its row and its messages' rows (a
// FolderRemoved change) in one transaction with also. A file in cur/ or
// new/ that no row names (mail that arrived since the caller looked) is
// never deleted: the call fails, leaving the folder and its row. A crash
// before the commit leaves the row of a folder whose files are gone
// (partly or all): the next sync reads that as messages, or the folder,
// deleted locally, which is what was asked.
//
// The archive policy: a folder of the archive view is ErrArchiveFolder
// (only Purge takes messages out of it); in an account that keeps an
// archive, a folder with messages is ErrArchiveNotEmpty (its messages
// are expunged first, which archives them). Neither removes anything.
func (s *Store) RemoveFolder(ctx context.Context, f *Folder, also func(*Tx) error) error {
	if IsArchiveFolder(f.Name) {
		return ErrArchiveFolder
	}
	dirs, err := s.folderDirs(ctx, f.ID)
	if err != nil {
		return err
	}
	d := dirs[f.ID]
	var known map[string]bool
	err = s.Read(ctx, func(tx *ReadTx) error {
		rows, err := tx.FileRows(f.ID)
		if err != nil {
			return err
		}
		known = make(map[string]bool, len(rows))
		for _, m := range rows {
			known[m.Key] = true
		}
		if on, err := tx.ArchiveOn(f.Account); err != nil || !on {
			return err
		}
		if len(rows) > 0 {
			return ErrArchiveNotEmpty
		}
		return nil
	})
	if err != nil {
		return err
	}
	entries, err := d.Scan()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if !known[e.Key] {
			return fmt.Errorf("cannot remove folder %q: it holds a message the index does not know (%s/%s)", f.Name, e.Sub, e.Name)
		}
	}
	for _, e := range entries {
		if err := os.Remove(d.FilePath(e)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := maildir.RemoveFolder(d.Path); err != nil {
		return err
	}
	return s.Write(ctx, func(tx *Tx) error {
		if err := tx.DeleteFolder(f.ID); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
}
