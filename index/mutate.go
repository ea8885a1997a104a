package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/postfach/postfach/maildir"
)

// The door's local mutations: each changes a message file (or a folder's
// Maildir) and its row in one call, in the order that keeps a crash
// between the two harmless, so that callers (the sync engines, the local
// endpoints) never touch files and rows separately. They need the store's
// Maildir root (OpenStore). Each takes an optional also, run in the same
// transaction as the rows it writes (nil: none), for the caller's own rows
// (merge bases, journal entries).
//
// A dry-run view (DryRun) changes no file: its methods return an error.

// errDryDoor is what the door's file-changing methods return on a dry-run
// view: a dry run plans, it does not call them.
var errDryDoor = errors.New("index: a dry-run view changes no files")

// entryOf rebuilds the Maildir entry of a row from its recorded file name
// ("cur/<name>").
func entryOf(m *Message) (maildir.Entry, error) {
	sub, name := path.Split(m.File)
	e, ok := maildir.ParseName(name)
	if !ok {
		return e, fmt.Errorf("index: message %d: bad file name %q", m.ID, m.File)
	}
	e.Sub = strings.TrimSuffix(sub, "/")
	return e, nil
}

// folderDirs returns the Maildir of each folder id, read in one
// transaction.
func (s *Store) folderDirs(ctx context.Context, ids ...FolderID) (map[FolderID]*maildir.Dir, error) {
	if s.root == "" {
		return nil, errNoRoot
	}
	if s.dry != nil {
		return nil, errDryDoor
	}
	_, dirs, err := s.foldersAndDirs(ctx, ids...)
	return dirs, err
}

// foldersAndDirs is folderDirs with the folders' rows.
func (s *Store) foldersAndDirs(ctx context.Context, ids ...FolderID) (map[FolderID]*Folder, map[FolderID]*maildir.Dir, error) {
	if s.root == "" {
		return nil, nil, errNoRoot
	}
	if s.dry != nil {
		return nil, nil, errDryDoor
	}
	var folders map[FolderID]*Folder
	if err := s.Read(ctx, func(tx *ReadTx) (err error) {
		folders, err = tx.foldersByID(ids...)
		return err
	}); err != nil {
		return nil, nil, err
	}
	dirs := make(map[FolderID]*maildir.Dir, len(folders))
	for id, f := range folders {
		d, err := s.Dir(*f)
		if err != nil {
			return nil, nil, err
		}
		dirs[id] = d
	}
	return folders, dirs, nil
}

// FlagChange is one message's new flags for SetFlags.
type FlagChange struct {
	// Message is the message's row as the caller has it: ID, Folder, Key
	// and File (its current file name) are used. SetFlags updates File,
	// Flags and Keywords (and SyncedFlags, SyncedKeywords with Synced) in
	// place once the change is committed.
	Message  *Message
	Flags    maildir.Flags
	Keywords []string
	// Synced, when set, also records the flags both sides now agree on
	// (the sync's merge base, see Tx.SetMerged).
	Synced *SyncedState
}

// SyncedState is a merge base: the flags both sides last agreed on.
type SyncedState struct {
	Flags    maildir.Flags
	Keywords []string
}

// SetFlags gives messages new flags and keywords: each file whose flags
// change is renamed (its info part; such a file in new/ moves to cur/), the
// directories are synced once, then the rows are updated (new MODSEQs, a
// FlagsChanged change each) in one transaction with also. A crash between
// the renames and the commit leaves files whose names carry the new flags
// under rows with the old ones: the next scan reads that as a flag change
// made in the Maildir and records it, as it would a mail client's. A file
// whose flags another program changed since the row was read keeps that
// change on top of the new flags, and its row records the result (a
// Synced base is recorded as given, so the next sync carries the other
// program's change upstream). A file that is gone (another program removed
// it) fails the call before any row changes.
func (s *Store) SetFlags(ctx context.Context, changes []FlagChange, also func(*Tx) error) error {
	if len(changes) == 0 && also == nil {
		return nil
	}
	ids := make([]FolderID, len(changes))
	for i, c := range changes {
		ids[i] = c.Message.Folder
	}
	dirs, err := s.folderDirs(ctx, ids...)
	if err != nil {
		return err
	}
	files := make([]string, len(changes))
	flags := make([]maildir.Flags, len(changes))
	renamed := map[FolderID]bool{}
	for i, c := range changes {
		m := c.Message
		files[i], flags[i] = m.File, c.Flags
		e, err := entryOf(m)
		if err != nil {
			return err
		}
		if e.Flags == c.Flags {
			continue // a file in new/ stays there
		}
		ne, err := dirs[m.Folder].SetFlags(e, c.Flags)
		if err != nil {
			return fmt.Errorf("index: flags of message %s: %w", m.Key, err)
		}
		// A mail client's change made since the row was read is kept (see
		// maildir.Dir.SetFlags): the row gets the flags the file got.
		files[i], flags[i] = ne.Sub+"/"+ne.Name, ne.Flags
		renamed[m.Folder] = true
	}
	for f := range renamed {
		if err := dirs[f].SyncDir(); err != nil {
			return err
		}
	}
	err = s.Write(ctx, func(tx *Tx) error {
		for i, c := range changes {
			m := c.Message
			var err error
			if c.Synced != nil {
				err = tx.SetMerged(m.ID, m.Folder, true, files[i], flags[i], c.Keywords, c.Synced.Flags, c.Synced.Keywords)
			} else {
				err = tx.SetFileFlags(m.ID, m.Folder, files[i], flags[i], c.Keywords)
			}
			if err != nil {
				return err
			}
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, c := range changes {
		m := c.Message
		m.File, m.Flags, m.Keywords = files[i], flags[i], slices.Clone(c.Keywords)
		if c.Synced != nil {
			m.SyncedFlags, m.SyncedKeywords = c.Synced.Flags, slices.Clone(c.Synced.Keywords)
		}
	}
	return nil
}

// Remove removes messages: their files first (a file renamed since is
// found by its key; one already gone is fine), the directories synced,
// then their rows in one transaction with also (which runs first, so it
// can read the rows as they are then), each leaving a tombstone (a
// MessageRemoved change).
//
// Files first, because that order never loses mail and never undoes the
// removal: a crash after the files went and before the commit leaves rows
// whose files are gone, which the next sync reads as messages deleted
// locally. For a removal the user asked for (an expunge) that deletion is
// carried upstream, as intended; for a message already gone upstream (a
// server expunge applied here) there is nothing left to delete and the row
// is dropped. The other order would leave, after a crash, files without
// rows: indexed again from disk, they would come back, and a message the
// server expunged would be uploaded again. Only messages meant to be
// deleted are ever deleted.
func (s *Store) Remove(ctx context.Context, msgs []*Message, also func(*Tx) error) error {
	if len(msgs) == 0 && also == nil {
		return nil
	}
	ids := make([]FolderID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Folder
	}
	dirs, err := s.folderDirs(ctx, ids...)
	if err != nil {
		return err
	}
	removed := map[FolderID]bool{}
	for _, m := range msgs {
		e, err := entryOf(m)
		if err != nil {
			return err
		}
		if _, err := dirs[m.Folder].Unlink(e); err != nil {
			return fmt.Errorf("index: removing message %s: %w", m.Key, err)
		}
		removed[m.Folder] = true
	}
	for f := range removed {
		if err := dirs[f].SyncDir(); err != nil {
			return err
		}
	}
	return s.Write(ctx, func(tx *Tx) error {
		if also != nil { // first: it may read the rows
			if err := also(tx); err != nil {
				return err
			}
		}
		for _, m := range msgs {
			if err := tx.DeleteMessage(m.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// findForMove finds the file of entry e: in src (moved false), or in dst
// (moved true) where a mail program moved it. It tries e's name in both
// before it reads the directories for the key.
func findForMove(src, dst *maildir.Dir, e maildir.Entry) (maildir.Entry, bool, error) {
	for i, d := range []*maildir.Dir{src, dst} {
		for _, sub := range []string{e.Sub, "cur", "new"} {
			if _, err := os.Lstat(filepath.Join(d.Path, sub, e.Name)); err == nil {
				f := e
				f.Sub = sub
				return f, i == 1, nil
			}
		}
	}
	for i, d := range []*maildir.Dir{src, dst} {
		f, err := d.Find(e.Key, "")
		if err == nil {
			return f, i == 1, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || i == 1 {
			return f, false, err
		}
	}
	panic("unreachable")
}

// Move moves a message to folder to: its file is renamed into to's
// Maildir (same sub directory) with its ",U=" tag set to uid (the UID the
// server gave the moved copy; 0 for none known), both directories are
// synced, then its row moves in one transaction with also: a tombstone in
// the old folder, a new local UID in to (a MessageRemoved and a
// MessageAdded change). m's ID, Folder, Key and File are used; File names
// the file in m's folder, or in to when a mail program moved it there
// already (the sync found it so): it is then taken where it is. A file
// renamed since is found by its key.
//
// File first, then row: a crash in between leaves the file in to and the
// row in the old folder, which is what a mail program's move looks like;
// the next sync carries it out as one (see sync/imapsync, moves.go) and
// nothing is lost or fetched twice.
func (s *Store) Move(ctx context.Context, m *Message, to FolderID, uid uint32, also func(*Tx) error) error {
	return s.move(ctx, m, to, uid, 0, nil, also)
}

// move is Move with before, which runs in the transaction before the row
// moves (it reads the row as it is then: MoveTo's intent), and drop: the
// flags the moved file and row lose (Archive's \Deleted).
func (s *Store) move(ctx context.Context, m *Message, to FolderID, uid uint32, drop maildir.Flags, before, also func(*Tx) error) error {
	dirs, err := s.folderDirs(ctx, m.Folder, to)
	if err != nil {
		return err
	}
	src, dst := dirs[m.Folder], dirs[to]
	e, err := entryOf(m)
	if err != nil {
		return err
	}
	e, moved, err := findForMove(src, dst, e)
	if err != nil {
		return fmt.Errorf("index: moving message %s: %w", m.Key, err)
	}
	if !moved {
		target := filepath.Join(dst.Path, e.Sub, e.Name)
		if _, err := os.Lstat(target); err == nil {
			return fmt.Errorf("index: moving message %s: %s exists", m.Key, target)
		}
		if err := os.Rename(src.FilePath(e), target); err != nil {
			return fmt.Errorf("index: moving message %s: %w", m.Key, err)
		}
	}
	ne, err := dst.SetUID(e, uid)
	if err != nil {
		return fmt.Errorf("index: moving message %s: %w", m.Key, err)
	}
	if ne.Flags&drop != 0 {
		if ne, err = dst.SetFlags(ne, ne.Flags&^drop); err != nil {
			return fmt.Errorf("index: moving message %s: %w", m.Key, err)
		}
	}
	if err := dst.SyncDir(); err != nil {
		return err
	}
	if err := src.SyncDir(); err != nil {
		return err
	}
	file := ne.Sub + "/" + ne.Name
	err = s.Write(ctx, func(tx *Tx) error {
		if before != nil {
			if err := before(tx); err != nil {
				return err
			}
		}
		if err := tx.MoveMessage(m.ID, to, uid, file, ne.Flags); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.Folder, m.UID, m.File, m.Flags = to, uid, file, ne.Flags
	return nil
}
