package index

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/postfach/postfach/maildir"
)

// Arrival is one message of a Batch: a file its engine wrote into the
// tmp/ of Folder's Maildir (Store.Dir(Folder).NewDelivery), and its row.
type Arrival struct {
	Folder *Folder
	File   *maildir.Delivery
	// Row is the message's row. Its UID and Flags also name the file (the
	// ,U= tag; unread mail goes to new/, see maildir.Dir.Commit). Deliver
	// fills in Folder, Key, File, Size and SHA256, and AddMessages ID,
	// LocalUID and ModSeq.
	Row NewMessage
}

// Batch is what Deliver stores: many messages under one file sync and one
// transaction.
type Batch struct {
	Arrivals []*Arrival
	// BeforeRename, if set, runs once the files are durable and before the
	// first of them is renamed into its folder: a write that must be
	// committed before a file can appear there (POP3's pending downloads).
	// An error stops the batch there: the files are removed.
	BeforeRename func(ctx context.Context) error
	// WithRows, if set, runs in the transaction that inserts the rows, with
	// their ids in the order of Arrivals: extra rows that must commit with
	// the messages (POP3 UIDLs). An error rolls the transaction back.
	WithRows func(tx *Tx, ids []MessageID) error
	// Hook, if set, is called after the renames ("renamed") and after the
	// directories' sync ("synced"); an error stops the batch there, as a
	// crash would (for the tests that aim at those points).
	Hook func(stage string) error
}

// Deliver is the door through which new messages enter the store: it
// makes the batch's files durable (one maildir.Syncer.Sync), runs
// BeforeRename, renames each file into cur/ or new/ of its folder, syncs
// each folder's directories once, and then commits the rows, with
// WithRows's, in one Write. So a row is committed only after its file and
// its name are durable.
//
// On failure, the files not renamed yet are removed (Abort); the files
// already renamed stay where they are, without a row: the next scan of the
// folder indexes them (for POP3, with the UIDL its pending record names).
// Until the rows are committed, Delivering names the files' keys: a scan
// of the folder meanwhile leaves them alone.
// Deliver runs to the end even if ctx is cancelled meanwhile: the files
// are complete. It must not be called on a dry-run view.
func (s *Store) Deliver(ctx context.Context, b *Batch) (err error) {
	as := b.Arrivals
	defer func() {
		if err != nil {
			for _, a := range as {
				a.File.Abort() // nothing, once renamed
			}
		}
	}()
	if s.dry != nil {
		return errors.New("index: deliver: a dry run stores nothing")
	}
	if len(as) == 0 {
		return nil
	}
	dirs, err := s.arrivalDirs(as)
	if err != nil {
		return err
	}
	fs := make([]filing, len(as))
	for i, a := range as {
		fs[i] = filing{dir: dirs[i], file: a.File, uid: a.Row.UID, flags: a.Row.Flags,
			named: func(name string) {
				m := &a.Row
				m.Folder, m.Key, m.File = a.Folder.ID, a.File.Key(), name
				m.Size, m.SHA256 = a.File.Size(), a.File.Sum()
			}}
	}
	return s.file(ctx, fs, b.BeforeRename, b.Hook, func(tx *Tx) error {
		rows := make([]*NewMessage, len(as))
		for i, a := range as {
			rows[i] = &a.Row
		}
		ids, err := tx.AddMessages(rows)
		if err == nil && b.WithRows != nil {
			err = b.WithRows(tx, ids)
		}
		return err
	})
}

// filing is one file of the delivery sequence (Store.file): a closed
// Delivery in dir's tmp/, to be renamed into dir with uid and flags;
// named, if set, learns its name (as maildir.Dir.Commit returns it)
// before the rows are written.
type filing struct {
	dir   *maildir.Dir
	file  *maildir.Delivery
	uid   uint32
	flags maildir.Flags
	named func(name string)
}

// file is the door's delivery sequence, the one place it is written
// (Deliver and Enqueue run it): the files made durable (one
// maildir.Syncer.Sync, which skips a file DeliverSync made durable),
// before (if set), the renames (each key listed by
// Delivering until the rows commit), one sync per directory renamed
// into (cur/ or new/ of a folder: maildir.Dir.SyncSub), then rows in one
// Write. hook sees the stages "renamed" and
// "synced" (see Batch.Hook). It runs to the end even if ctx is cancelled
// meanwhile: the files are complete. The caller removes the files not
// renamed when it fails (Abort).
func (s *Store) file(ctx context.Context, fs []filing, before func(context.Context) error, hk func(string) error, rows func(*Tx) error) error {
	ctx = context.WithoutCancel(ctx)
	files := make([]*maildir.Delivery, len(fs))
	for i, f := range fs {
		files[i] = f.file
	}
	if err := s.files.Sync(files); err != nil {
		return err
	}
	if before != nil {
		if err := before(ctx); err != nil {
			return err
		}
	}
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.file.Key()
	}
	s.delivering.add(keys) // until the rows are committed (Delivering)
	defer s.delivering.remove(keys)
	// The subdirectories (cur/ or new/) the files were renamed into,
	// each fsynced once: only they changed (a file left in tmp/ by a
	// crash is never indexed).
	type sub struct {
		dir  *maildir.Dir
		name string
	}
	var subs []sub
	seen := map[string]bool{}
	for _, f := range fs {
		name, err := f.dir.Commit(f.file, f.uid, f.flags)
		if err != nil {
			return err
		}
		if f.named != nil {
			f.named(name)
		}
		s, _, _ := strings.Cut(name, "/")
		if k := f.dir.Path + "\x00" + s; !seen[k] {
			seen[k] = true
			subs = append(subs, sub{f.dir, s})
		}
	}
	if err := hook(hk, "renamed"); err != nil {
		return err
	}
	for _, s := range subs {
		if err := s.dir.SyncSub(s.name); err != nil {
			return err
		}
	}
	if err := hook(hk, "synced"); err != nil {
		return err
	}
	return s.Write(ctx, rows)
}

// arrivalDirs returns each arrival's folder directory, checking that its
// file was written there (a file renamed into another folder than its
// row's would be lost to the index).
func (s *Store) arrivalDirs(as []*Arrival) ([]*maildir.Dir, error) {
	dirs := make([]*maildir.Dir, len(as))
	byFolder := map[FolderID]*maildir.Dir{}
	for i, a := range as {
		d := byFolder[a.Folder.ID]
		if d == nil {
			var err error
			if d, err = s.Dir(*a.Folder); err != nil {
				return nil, err
			}
			byFolder[a.Folder.ID] = d
		}
		if filepath.Dir(a.File.Path()) != filepath.Join(d.Path, "tmp") {
			return nil, fmt.Errorf("index: deliver: %s was not written in folder %q (%s)", a.File.Path(), a.Folder.Name, d.Path)
		}
		dirs[i] = d
	}
	return dirs, nil
}

func hook(h func(string) error, stage string) error {
	if h == nil {
		return nil
	}
	return h(stage)
}
