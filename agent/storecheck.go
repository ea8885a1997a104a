package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// The store's place on disk. A store is a directory holding .postfach/
// (the index and the sync lock) and one folder per account. Three layouts
// would mix one store's mail into another's, and every run (and config
// check) refuses them:
//
//   - the store inside another store: the outer store's account would take
//     this store's files for its own folders (and upload them);
//   - another store below one of this store's account folders: the same,
//     the other way round;
//   - an account folder holding mail that postfach did not store there:
//     another program's Maildir (mbsync's ~/Mail/work, say), whose files
//     the first sync would upload as new messages. The folder is postfach's
//     when the index knows the account (a row in accounts, which every
//     version of the index has) or, after the index was lost, when it holds
//     the maildir.AccountMarker the sync engines write before they store
//     anything (or, in stores older than the marker, one of its folders
//     holds the .postfach-uidvalidity file IMAP sync writes).
//
// Symbolic links are resolved for the first check, so that a store reached
// through a link is judged where it really is.

// stateDir is the directory of a store's index and lock (index.DefaultPath).
const stateDir = ".postfach"

// CheckStore checks the store the config names without creating anything:
// the store's place (see above) and, where the index exists, which
// accounts it knows. Each problem is one line of the error.
func CheckStore(cfg *configs.Config) error {
	st, err := openChecked(cfg, false)
	if st != nil {
		st.Close()
	}
	return err
}

// openChecked checks the store and opens its index; it creates the store
// and the index only with create, and only once the checks passed. Without
// create and without an index yet it returns nil and the checks' error.
func openChecked(cfg *configs.Config, create bool) (*index.Store, error) {
	root := cfg.Store.Path
	if err := checkPlace(root); err != nil {
		return nil, err
	}
	path := index.DefaultPath(root)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := checkAccounts(cfg, nil); err != nil || !create {
			return nil, err
		}
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return index.OpenStore(root)
	}
	st, err := index.OpenStore(root)
	if err != nil {
		return nil, err
	}
	if err := checkAccounts(cfg, st); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// checkPlace refuses a store inside another store.
func checkPlace(root string) error {
	real := resolve(root)
	for _, p := range []string{root, real} {
		for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
			if resolve(dir) != real && isStore(dir) {
				return fmt.Errorf("store.path %s is inside another postfach store, %s (it holds %s/): "+
					"each would take the other's files for its own mail; choose a store.path outside %s",
					root, dir, stateDir, dir)
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	return nil
}

// isStore reports whether dir holds a .postfach directory.
func isStore(dir string) bool {
	st, err := os.Lstat(filepath.Join(dir, stateDir))
	return err == nil && st.IsDir()
}

// resolve returns path with the symbolic links of its existing part
// resolved; the part that does not exist yet is appended as it is.
func resolve(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if filepath.Dir(p) == p {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// checkAccounts checks each account's folder: no store below it, and mail
// in it only if it is postfach's. st is the open index, nil when the store
// has none yet.
func checkAccounts(cfg *configs.Config, st *index.Store) error {
	var errs []error
	for _, acct := range cfg.Accounts {
		dir := filepath.Join(cfg.Store.Path, maildir.EncodeName(acct.Name))
		var tree accountTree
		if err := tree.walk(dir); err != nil {
			errs = append(errs, fmt.Errorf("account %q: %w", acct.Name, err))
			continue
		}
		if tree.store != "" {
			errs = append(errs, fmt.Errorf("account %q: its folder %s holds another postfach store, %s (it holds %s/): "+
				"this account would upload that store's mail as its own folders; move that store out of %s",
				acct.Name, dir, tree.store, stateDir, dir))
			continue
		}
		if tree.mail == "" || tree.marked || exists(filepath.Join(dir, maildir.AccountMarker)) {
			continue
		}
		known := false
		if st != nil {
			err := st.Read(context.Background(), func(tx *index.ReadTx) error {
				_, err := tx.Account(acct.Name)
				return err
			})
			switch {
			case err == nil:
				known = true
			case !errors.Is(err, index.ErrNotFound):
				return err
			}
		}
		if !known {
			errs = append(errs, fmt.Errorf("account %q: its folder %s holds mail postfach did not store there (%s; "+
				"another program's Maildir?): the first sync would upload it all; move %s away or give the account another name",
				acct.Name, dir, tree.mail, dir))
		}
	}
	return errors.Join(errs...)
}

// accountTree is what walking an account's folder found.
type accountTree struct {
	store  string // a directory holding .postfach/, the first found
	mail   string // a cur/ or new/ directory holding a file, the first found
	marked bool   // some folder holds .postfach-uidvalidity
}

// walk visits every directory below dir (not following symbolic links),
// except the contents of cur/, new/ and tmp/: a Maildir tree has few of
// them, whatever its number of messages. A missing dir is empty.
func (t *accountTree) walk(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		name, path := e.Name(), filepath.Join(dir, e.Name())
		switch {
		case name == maildir.UIDValidityFile:
			t.marked = true
		case !e.IsDir():
		case name == stateDir:
			if t.store == "" {
				t.store = dir
			}
		case name == "cur" || name == "new":
			if t.mail == "" && nonEmpty(path) {
				t.mail = path + " is not empty"
			}
		case name == "tmp":
		default:
			if err := t.walk(path); err != nil {
				return err
			}
		}
	}
	return nil
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// nonEmpty reports whether the directory holds an entry.
func nonEmpty(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) > 0
}
