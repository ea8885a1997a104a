package agent

import (
	"context"
	"errors"
	"time"

	"github.com/postfach/postfach/index"
)

// PurgeOptions select what Purge removes from the archive view.
type PurgeOptions struct {
	Accounts []string // account names; all when empty
	// Folder, when set, limits it to the archive view of that folder
	// (.Archive-Deleted/<Folder>, and the folders below it).
	Folder string
	// Before, when set, limits it to messages moved into the view
	// before that time (--older-than). A message there without that
	// time (copied there by a mail program, restored) is taken as moved
	// there when Purge first sees it, and marked so.
	Before time.Time
	DryRun bool // list them, remove nothing
}

// Purged is one message Purge removed (or, in a dry run, would remove).
type Purged struct {
	Account  string
	Folder   string // the archive view folder
	Archived time.Time
	index.Header
	Size int64
}

// Purge removes messages from the archive view of archive accounts for
// good (index.Store.Purge: files, then rows): the only way out of it.
// It returns what it removed, by account and folder.
func (a *Agent) Purge(ctx context.Context, o PurgeOptions) ([]Purged, error) {
	accts, err := a.pick(o.Accounts)
	if err != nil {
		return nil, err
	}
	var out []Purged
	for _, acct := range accts {
		// A message in the view without the time it went there is
		// first seen now: marked so (not in a dry run, which counts it
		// as now all the same), its age counted from today.
		if !o.DryRun {
			if err := a.store.Write(ctx, func(tx *index.Tx) error {
				id, err := tx.Account(acct.Name)
				if errors.Is(err, index.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				_, err = tx.MarkUnarchived(id, time.Now())
				return err
			}); err != nil {
				return nil, err
			}
		}
		var msgs []*index.Message
		done := len(out)
		err := a.store.Read(ctx, func(tx *index.ReadTx) error {
			id, err := tx.Account(acct.Name)
			if errors.Is(err, index.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			all, err := tx.ArchivedMessages(id, o.Before)
			if err != nil {
				return err
			}
			view := index.ArchiveFolder(o.Folder)
			for _, m := range all {
				if o.Folder != "" && m.Folder.Name != view && !hasFolderPrefix(m.Folder.Name, view) {
					continue
				}
				msgs = append(msgs, m.Message)
				out = append(out, Purged{Account: acct.Name, Folder: m.Folder.Name, Archived: m.At, Header: m.Header, Size: m.Size})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if o.DryRun || len(msgs) == 0 {
			continue
		}
		if err := a.store.Purge(ctx, msgs); err != nil {
			return out[:done], err
		}
	}
	return out, nil
}

func hasFolderPrefix(name, parent string) bool {
	return len(name) > len(parent) && name[:len(parent)] == parent && name[len(parent)] == '/'
}
