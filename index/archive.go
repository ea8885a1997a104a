package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/postfach/postfach/maildir"
)

// The archive view of an account with `archive = true` (configs): a
// message expunged upstream, or deleted locally, is not removed but moved
// (Store.Archive, through Move: file first, then row) into the local-only
// folder ArchiveFolder(<folder>) of its account, its row marked with the
// time it went (table archived, ArchivedAt). There it is an
// ordinary message row: indexed, searchable, backed up and restored like
// any other. It has no upstream UID, and the sync never looks at the
// archive folders (sync/imapsync excludes them: never created upstream,
// never uploaded, their absence upstream never a deletion). Only Purge
// (`postfach purge`) removes messages from the view.

// ArchivePrefix is the folder below which an archive account keeps its
// deleted messages: message of folder F go to ArchivePrefix + "/" + F.
const ArchivePrefix = ".Archive-Deleted"

// ArchiveFolder returns the archive view of folder.
func ArchiveFolder(folder string) string { return ArchivePrefix + "/" + folder }

// IsArchiveFolder reports whether name is an archive view folder (or the
// prefix itself).
func IsArchiveFolder(name string) bool {
	return name == ArchivePrefix || strings.HasPrefix(name, ArchivePrefix+"/")
}

// SetArchive records account acct's archive setting, which Expunge reads
// (the agent and each sync run record the configured one).
func (tx *Tx) SetArchive(acct AccountID, on bool) error {
	q := `DELETE FROM archive_accounts WHERE account_id=?`
	if on {
		q = `INSERT OR IGNORE INTO archive_accounts(account_id) VALUES(?)`
	}
	_, err := tx.exec(q, acct)
	return err
}

// ArchiveOn reports account acct's recorded archive setting.
func (tx *ReadTx) ArchiveOn(acct AccountID) (bool, error) {
	var on bool
	err := tx.queryRow(`SELECT EXISTS (SELECT 1 FROM archive_accounts WHERE account_id=?)`, acct).Scan(&on)
	return on, err
}

// ArchivedAt returns when message id moved into the archive view (zero:
// it is an ordinary message).
func (tx *ReadTx) ArchivedAt(id MessageID) (time.Time, error) {
	var at int64
	err := tx.queryRow(`SELECT at FROM archived WHERE message_id=?`, id).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(at, 0), nil
}

// Archived is one message of the archive view.
type Archived struct {
	*Message
	Folder *Folder   // the archive folder it is in
	At     time.Time // when it moved there
}

// ArchivedMessages returns the messages of account acct's archive view
// that moved there before `before` (zero: all), by folder then UID. A
// message without an ArchivedAt counts as moved there now (see
// MarkUnarchived): never older than an age limit.
func (tx *ReadTx) ArchivedMessages(acct AccountID, before time.Time) ([]Archived, error) {
	now := time.Now()
	fs, err := tx.Folders(acct)
	if err != nil {
		return nil, err
	}
	var out []Archived
	for _, f := range fs {
		if !IsArchiveFolder(f.Name) {
			continue
		}
		ms, err := tx.Messages(f.ID)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			at, err := tx.ArchivedAt(m.ID)
			if err != nil {
				return nil, err
			}
			if at.IsZero() {
				at = now
			}
			if before.IsZero() || at.Before(before) {
				out = append(out, Archived{Message: m, Folder: f, At: at})
			}
		}
	}
	return out, nil
}

// Archive moves messages into the archive view of their account
// (ArchiveFolder of their folder, created if need be), each through Move:
// its file renamed there (",U=" tag and \Deleted dropped: an archived
// message is kept, not marked for removal, so a restore or an export
// does not carry the mark), both directories synced,
// then its row moved (UID 0, a tombstone in the old folder) and marked
// with the time (ArchivedAt) in one transaction. With expunge, a message
// that had an upstream UID gets an "expunge" intent in that transaction
// (a local endpoint's EXPUNGE: the sync deletes the server copy). A
// message already in the archive view stays as it is.
//
// A crash between the rename and the commit leaves the file in the
// archive folder and the row in the old one: Archive called again for
// that row finds the file there (Move takes a file where it is) and
// commits the row, so the message is neither lost nor copied. The sync
// does so for a row whose file is gone while its server copy is gone too.
func (s *Store) Archive(ctx context.Context, msgs []*Message, expunge bool) error {
	if len(msgs) == 0 {
		return nil
	}
	var folders map[FolderID]*Folder
	if err := s.Read(ctx, func(tx *ReadTx) (err error) {
		folders, err = tx.foldersByID(folderIDs(msgs)...)
		return err
	}); err != nil {
		return err
	}
	views := map[FolderID]*Folder{}
	for _, m := range msgs {
		from := folders[m.Folder]
		if from == nil {
			return fmt.Errorf("index: archive message %s: folder %d: %w", m.Key, m.Folder, ErrNotFound)
		}
		if IsArchiveFolder(from.Name) {
			continue
		}
		view := views[from.ID]
		if view == nil {
			var err error
			if view, err = s.CreateFolder(ctx, from.Account, ArchiveFolder(from.Name), nil); err != nil {
				return fmt.Errorf("index: archive of folder %q: %w", from.Name, err)
			}
			views[from.ID] = view
		}
		var before func(tx *Tx) error
		if expunge {
			before = func(tx *Tx) error {
				in, err := tx.upstreamIntent(m.ID, IntentExpunge)
				if err != nil || in == nil {
					return err
				}
				in.Message = 0
				_, err = tx.AddIntent(*in)
				return err
			}
		}
		// The view holds the key already: the sync delivered a copy
		// there (a local deletion, archived from the server's copy) and
		// a crash kept this row. It is that message: this row goes, and
		// its file if it has one (a crash, or a file back in place),
		// first (or the next sync would index and upload it again).
		var held bool
		if err := s.Read(ctx, func(tx *ReadTx) error {
			_, err := tx.MessageIDByKey(view.ID, m.Key)
			held = err == nil
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
			return err
		}); err != nil {
			return err
		}
		if held {
			if err := s.removeHeld(ctx, m); err != nil {
				return err
			}
			if err := s.Write(ctx, func(tx *Tx) error {
				if before != nil {
					if err := before(tx); err != nil {
						return err
					}
				}
				return tx.DeleteMessage(m.ID)
			}); err != nil {
				return err
			}
			continue
		}
		mark := func(tx *Tx) error { return tx.MarkArchived([]MessageID{m.ID}, time.Now()) }
		if err := s.move(ctx, m, view.ID, 0, maildir.FlagDeleted, before, mark); err != nil {
			return err
		}
	}
	return nil
}

// removeHeld removes the file of m in its folder, if it has one there
// (found by key if renamed), for Archive: the archive view holds a copy
// under the same key.
func (s *Store) removeHeld(ctx context.Context, m *Message) error {
	dirs, err := s.folderDirs(ctx, m.Folder)
	if err != nil {
		return err
	}
	e, err := entryOf(m)
	if err != nil {
		return err
	}
	if err := dirs[m.Folder].Remove(e); err != nil && !errors.Is(err, fs.ErrNotExist) { // no folder: no file
		return fmt.Errorf("index: archive message %s: %w", m.Key, err)
	}
	return nil
}

// Purge removes messages of the archive view for good (files, then rows:
// Store.Remove). It refuses a message that is not in the archive view.
func (s *Store) Purge(ctx context.Context, msgs []*Message) error {
	var folders map[FolderID]*Folder
	if err := s.Read(ctx, func(tx *ReadTx) (err error) {
		folders, err = tx.foldersByID(folderIDs(msgs)...)
		return err
	}); err != nil {
		return err
	}
	for _, m := range msgs {
		if f := folders[m.Folder]; f == nil || !IsArchiveFolder(f.Name) {
			return fmt.Errorf("index: purge: message %s is not in an archive folder", m.Key)
		}
	}
	return s.Remove(ctx, msgs, nil)
}

// ErrArchiveView is Expunge's error for messages in the archive view of
// an account that keeps an archive: only Purge removes them.
var ErrArchiveView = errors.New("messages in " + ArchivePrefix + " are removed by postfach purge only")

// archiveSplit returns the messages of msgs whose account keeps an
// archive (ArchiveOn), and the others. A message in such an account's
// archive view is ErrArchiveView.
func (s *Store) archiveSplit(ctx context.Context, msgs []*Message) (archived, rest []*Message, err error) {
	err = s.Read(ctx, func(tx *ReadTx) error {
		folders, err := tx.foldersByID(folderIDs(msgs)...)
		if err != nil {
			return err
		}
		on := map[AccountID]bool{}
		for _, f := range folders {
			if _, ok := on[f.Account]; !ok {
				if on[f.Account], err = tx.ArchiveOn(f.Account); err != nil {
					return err
				}
			}
		}
		for _, m := range msgs {
			f := folders[m.Folder]
			switch {
			case f != nil && on[f.Account] && IsArchiveFolder(f.Name):
				return ErrArchiveView
			case f != nil && on[f.Account]:
				archived = append(archived, m)
			default:
				rest = append(rest, m)
			}
		}
		return nil
	})
	return archived, rest, err
}

// MarkArchived marks messages as moved into the archive view at `at`
// (ArchivedAt): a copy the sync delivered there of a message deleted
// locally.
func (tx *Tx) MarkArchived(ids []MessageID, at time.Time) error {
	for _, id := range ids {
		if _, err := tx.exec(`INSERT OR REPLACE INTO archived(message_id, at) VALUES(?, ?)`, id, at.Unix()); err != nil {
			return err
		}
	}
	return nil
}

// MarkUnarchived marks the messages of account acct's archive view that
// have no ArchivedAt (a mail program copied them there through the local
// endpoint, a restore delivered them, or an older index) as moved there
// at `at`: first seen now, so that an age limit (purge --older-than)
// counts from then instead of taking them for the oldest of all. It
// returns how many it marked.
func (tx *Tx) MarkUnarchived(acct AccountID, at time.Time) (int64, error) {
	fs, err := tx.Folders(acct)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range fs {
		if !IsArchiveFolder(f.Name) {
			continue
		}
		res, err := tx.exec(`INSERT OR IGNORE INTO archived(message_id, at) SELECT id, ? FROM messages WHERE folder_id=?`, at.Unix(), f.ID)
		if err != nil {
			return n, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// ScanArchive brings the index in line with the archive view folders on
// disk of account acct (its sync runs it, holding the account's turn):
// a folder without a row gets one, a file without a row is indexed
// (marked archived now: a lost index, or a file an interrupted Archive or
// delivery left without its row), a row whose file is gone is dropped
// (removed by hand). So the view is rebuilt from the Maildir like the
// rest of the index. It returns how many rows it added and dropped.
func (s *Store) ScanArchive(ctx context.Context, acct AccountID) (added, dropped int, err error) {
	if s.root == "" {
		return 0, 0, errNoRoot
	}
	var name string
	if err := s.Read(ctx, func(tx *ReadTx) error {
		return tx.queryRow(`SELECT name FROM accounts WHERE id=?`, acct).Scan(&name)
	}); err != nil {
		return 0, 0, err
	}
	var views []string
	err = maildir.WalkFolders(filepath.Join(s.root, maildir.EncodeName(name)), func(folder string, _ *maildir.Dir) error {
		if IsArchiveFolder(folder) && folder != ArchivePrefix {
			views = append(views, folder)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, v := range views {
		a, d, err := s.scanView(ctx, acct, v)
		added, dropped = added+a, dropped+d
		if err != nil {
			return added, dropped, err
		}
	}
	return added, dropped, nil
}

// scanView is ScanArchive of one view folder.
func (s *Store) scanView(ctx context.Context, acct AccountID, name string) (added, dropped int, err error) {
	f, err := s.CreateFolder(ctx, acct, name, nil)
	if err != nil {
		return 0, 0, err
	}
	d, err := s.Dir(*f)
	if err != nil {
		return 0, 0, err
	}
	entries, err := d.Scan()
	if err != nil {
		return 0, 0, err
	}
	var rows []*Message
	if err := s.Read(ctx, func(tx *ReadTx) (err error) {
		rows, err = tx.FileRows(f.ID)
		return err
	}); err != nil {
		return 0, 0, err
	}
	onDisk := make(map[string]bool, len(entries))
	for _, e := range entries {
		onDisk[e.Key] = true
	}
	known := make(map[string]bool, len(rows))
	var gone []MessageID
	for _, m := range rows {
		known[m.Key] = true
		if !onDisk[m.Key] {
			gone = append(gone, m.ID)
		}
	}
	var found []maildir.Entry
	for _, e := range entries {
		if !known[e.Key] && !s.Delivering(e.Key) {
			found = append(found, e)
			known[e.Key] = true // one row per key
		}
	}
	if len(found)+len(gone) == 0 {
		return 0, 0, nil
	}
	ms, err := s.FileMessages(f, found, false)
	if err != nil {
		return 0, 0, err
	}
	err = s.Write(ctx, func(tx *Tx) error {
		for _, id := range gone {
			if err := tx.DeleteMessage(id); err != nil {
				return err
			}
		}
		if len(ms) == 0 {
			return nil
		}
		for _, m := range ms {
			m.UID = 0 // never upstream
		}
		ids, err := tx.AddMessages(ms)
		if err != nil {
			return err
		}
		return tx.MarkArchived(ids, time.Now())
	})
	if err != nil {
		return 0, 0, err
	}
	return len(ms), len(gone), nil
}
