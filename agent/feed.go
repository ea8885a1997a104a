package agent

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/postfach/postfach/index"
)

// The store's change feed as a watcher: what the local endpoints (and any
// other writer through the store's door) commit reaches the server within
// a second, without waiting for the next poll.
//
// A change nudges its account's sync of its folder when it leaves
// something to push there (index.ReadTx.FolderQueued: a queued expunge or
// move, a message without upstream UID, flags other than the merge base).
// That is what tells a local change from the sync's own writes: what a
// sync writes (downloads, merged flags, local expunges of server
// deletions) leaves nothing queued, so the sync's own commits never nudge
// another sync. Changes committed while the account's sync runs are
// looked at once it ends (what it pushed meanwhile is no news). A folder
// created and still without upstream UIDVALIDITY when looked at (made
// here, never synced) nudges a sync of the whole account; so does a
// folder renamed or removed, unless that came while a sync ran that made
// folder changes itself (then it was most likely that sync's own; the
// next poll looks anyway).
// Offline, the nudges wait with the account's pending work: the sync that
// reconnects carries everything queued upstream.

// feedChecked, if set (by tests), is called for each folder a change named
// once it is looked at, with whether something is queued there.
var feedChecked func(account, folder string, queued bool)

// watchFeed runs the feed watcher until ctx ends.
func (d *daemon) watchFeed(ctx context.Context) {
	names := map[index.AccountID]string{}
	for first := true; ctx.Err() == nil; first = false {
		sub := d.a.store.Subscribe(0)
		stop := context.AfterFunc(ctx, sub.Close)
		if !first {
			// Changes were lost: every account with something queued
			// syncs.
			d.log.Debug("the change feed fell behind; checking every account for queued changes")
			for _, s := range d.snapshot() {
				if n, err := d.queued(ctx, s.acct.Name); err == nil && n > 0 && pushes(s) {
					s.Nudge("")
				}
			}
		}
		resync := d.readFeed(ctx, sub, names)
		stop()
		sub.Close()
		if !resync {
			return
		}
	}
}

// readFeed hands the subscription's changes, a batch at a time, to the
// services; it returns true when the feed fell behind (Resync).
func (d *daemon) readFeed(ctx context.Context, sub *index.Subscription, names map[index.AccountID]string) bool {
	for {
		c, ok := <-sub.C()
		if !ok {
			return false
		}
		batch := []index.Change{c}
		for more := true; more; {
			select {
			case c, ok := <-sub.C():
				if ok {
					batch = append(batch, c)
				} else {
					more = false
				}
			default:
				more = false
			}
		}
		if batch[len(batch)-1].Kind == index.Resync {
			return true
		}
		d.dispatch(ctx, batch, names)
	}
}

// dispatch hands a batch of changes to the services of their accounts.
func (d *daemon) dispatch(ctx context.Context, batch []index.Change, names map[index.AccountID]string) {
	type work struct {
		folders, created []index.FolderID
		folderOp         bool
	}
	byAcct := map[index.AccountID]*work{}
	seen := map[index.FolderID]bool{}
	for _, c := range batch {
		w := byAcct[c.Account]
		if w == nil {
			w = &work{}
			byAcct[c.Account] = w
		}
		switch c.Kind {
		case index.MessageAdded, index.FlagsChanged, index.MessageRemoved:
			if !seen[c.Folder] {
				seen[c.Folder] = true
				w.folders = append(w.folders, c.Folder)
			}
		case index.FolderCreated:
			w.created = append(w.created, c.Folder)
		case index.FolderRenamed, index.FolderRemoved:
			w.folderOp = true
		}
	}
	d.mu.Lock()
	services := d.services
	d.mu.Unlock()
	for acct, w := range byAcct {
		name, ok := names[acct]
		if !ok {
			if err := d.a.store.Read(ctx, func(tx *index.ReadTx) error {
				states, err := tx.Accounts()
				for _, st := range states {
					names[st.ID] = st.Name
				}
				return err
			}); err != nil {
				d.log.Debug("reading the accounts for the change feed", "err", err)
				continue
			}
			name = names[acct]
		}
		if s := services[name]; s != nil && pushes(s) {
			s.localChange(ctx, w.folders, w.created, w.folderOp)
		}
	}
}

// pushes reports whether the account's sync carries local changes
// upstream at all.
func pushes(s *service) bool {
	return s.acct.Kind == "imap" && s.acct.Direction != "pull"
}

// localChange is the feed watcher's news of changes to the messages of
// folders, of folders created, and (folderOp) of folders renamed or
// removed: looked at now, or once the running sync ends.
func (s *service) localChange(ctx context.Context, folders, created []index.FolderID, folderOp bool) {
	s.mu.Lock()
	if s.inSync {
		if s.dirty == nil {
			s.dirty = map[index.FolderID]bool{}
			s.dirtyCreated = map[index.FolderID]bool{}
		}
		for _, f := range folders {
			s.dirty[f] = true
		}
		for _, f := range created {
			s.dirtyCreated[f] = true
		}
		s.dirtyFolders = s.dirtyFolders || folderOp
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if folderOp {
		s.nudgeAll()
	}
	s.checkQueued(ctx, folders, created)
}

// nudgeAll nudges a sync of the whole account for a change to its folder
// tree.
func (s *service) nudgeAll() {
	s.Nudge("")
	if h := feedChecked; h != nil {
		h(s.acct.Name, "", true)
	}
}

// beginSync marks the account's sync running: the feed's news waits for
// endSync.
func (s *service) beginSync() {
	s.mu.Lock()
	s.inSync = true
	s.mu.Unlock()
}

// endSync looks at the changes the feed reported while the sync ran
// (rep is the sync's report).
func (s *service) endSync(ctx context.Context, rep AccountReport) {
	s.mu.Lock()
	s.inSync = false
	dirty, created, folderOp := s.dirty, s.dirtyCreated, s.dirtyFolders
	s.dirty, s.dirtyCreated, s.dirtyFolders = nil, nil, false
	s.mu.Unlock()
	if folderOp && (rep.Result == nil || len(rep.Result.FolderActions)+len(rep.Result.Recovered) == 0) {
		s.nudgeAll()
	}
	s.checkQueued(ctx, slices.Collect(maps.Keys(dirty)), slices.Collect(maps.Keys(created)))
}

// checkQueued nudges a sync of each of folders that has changes queued
// upstream, and of the whole account when one of created has never been
// synced.
func (s *service) checkQueued(ctx context.Context, folders, created []index.FolderID) {
	if len(folders)+len(created) == 0 || ctx.Err() != nil {
		return
	}
	type found struct {
		name   string
		queued bool
	}
	var out []found
	unsynced := false
	err := s.d.a.store.Read(ctx, func(tx *index.ReadTx) error {
		for _, id := range created {
			f, err := tx.Folder(id)
			if errors.Is(err, index.ErrNotFound) {
				continue // removed since
			}
			if err != nil {
				return err
			}
			unsynced = unsynced || f.UIDValidity == 0
		}
		for _, id := range folders {
			f, err := tx.Folder(id)
			if errors.Is(err, index.ErrNotFound) {
				continue // removed since
			}
			if err != nil {
				return err
			}
			q, err := tx.FolderQueued(id)
			if err != nil {
				return err
			}
			out = append(out, found{f.Name, q})
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading the store's changes; the next poll syncs them", "err", err)
		}
		return
	}
	if unsynced {
		s.nudgeAll()
	}
	for _, f := range out {
		if f.queued {
			s.Nudge(f.name)
		}
		if h := feedChecked; h != nil {
			h(s.acct.Name, f.name, f.queued)
		}
	}
}

// queued is the account's count of changes queued upstream, from the
// index (index.ReadTx.QueuedUpstream); 0 for an account the index does
// not know yet.
func (d *daemon) queued(ctx context.Context, name string) (int, error) {
	return queuedUpstream(ctx, d.a.store, name)
}

func queuedUpstream(ctx context.Context, store *index.Store, name string) (int, error) {
	var n int
	err := store.Read(ctx, func(tx *index.ReadTx) error {
		id, err := tx.Account(name)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err = tx.QueuedUpstream(id)
		return err
	})
	return n, err
}
