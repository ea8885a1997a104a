package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
)

// consumeMoves carries out the move intents of source folder f (selected)
// whose rows exist (see intents.go), one UID MOVE per destination, and
// returns how many messages it moved upstream. states is the server's
// state of each source UID.
func (s *syncer) consumeMoves(ctx context.Context, c *imapclient.Client, f *index.Folder, rf remoteFolder, qs []*queuedOp,
	states map[uint32]serverState, folderOf map[index.FolderID]*index.Folder, remoteOf map[string]remoteFolder) (int, error) {
	o := &s.opts
	var gone []*queuedOp
	byDest := map[index.FolderID][]*queuedOp{}
	var dests []index.FolderID
	newUID := map[*queuedOp]uint32{}
	for _, q := range qs {
		switch {
		case !hasState(states, q.uid):
			// Gone upstream (or moved by a run killed before its
			// commit): the destination's plan adopts the copy by
			// content, or uploads the row as new.
			gone = append(gone, q)
		case q.row.Folder == f.ID:
			newUID[q] = q.uid // moved back: its UID is its own again
		default:
			if len(byDest[q.row.Folder]) == 0 {
				dests = append(dests, q.row.Folder)
			}
			byDest[q.row.Folder] = append(byDest[q.row.Folder], q)
		}
	}
	if err := s.doneIntents(ctx, gone); err != nil {
		return 0, err
	}
	moved := 0
	for _, d := range dests {
		moved += len(byDest[d])
	}
	if o.DryRun {
		// The intents stay open in the dry run's view: the plans leave
		// their rows and UIDs alone (openMoveRows, openIntentUIDs).
		return moved, nil
	}
	slices.Sort(dests)
	moved = 0
	for _, d := range dests {
		batch, to := byDest[d], folderOf[d]
		dst := remoteOf[to.Name].Remote
		data, err := c.Move(uidSetOf(batch), dst).Wait()
		if err != nil {
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) {
				return moved, fmt.Errorf("MOVE %s -> %s: %w", rf.Remote, dst, err)
			}
			// Refused: deleted here (as the rules allow) and uploaded
			// there by the destination's plan.
			s.log.Warn("the server refused a move; the messages are uploaded to their new folder instead",
				"from", f.Name, "to", to.Name, "count", len(batch), "err", err)
			if err := s.consumeExpunges(ctx, c, f, c.Caps().Has(imap.CapCondStore), batch, states); err != nil {
				return moved, err
			}
			continue
		}
		moved += len(batch)
		if s.movedInto == nil {
			s.movedInto = map[string]bool{}
		}
		s.movedInto[to.Name] = true
		// go-imap v2.0.0-beta.9 turns a COPYUID with "*" into no data
		// (UIDValidity 0): the destination adopts the copies by content.
		if data != nil && data.UIDValidity == to.UIDValidity && to.UIDValidity != 0 {
			pairs, ok := pairUIDs(data.SourceUIDs, data.DestUIDs, len(batch))
			if !ok {
				s.log.Warn("the server's COPYUID after MOVE does not name the messages moved; matched by content instead",
					"from", f.Name, "to", to.Name, "count", len(batch))
			}
			for _, q := range batch {
				if u := pairs[q.uid]; u != 0 {
					newUID[q] = u
				}
			}
		}
		s.log.Debug("moved upstream", "from", f.Name, "to", to.Name, "count", len(batch))
	}
	if err := intentHookAt("moved"); err != nil {
		return moved, err
	}
	removed, err := s.commitMoves(ctx, qs, gone, newUID, folderOf)
	if err != nil {
		return moved, err
	}
	return moved, s.expungeCopies(c, removed, folderOf, remoteOf)
}

// expungeCopies deletes upstream the copies MOVEs just made of rows a
// local client removed while the MOVE ran (commitMoves), when local
// deletions go upstream; otherwise they come back, as any local deletion
// that is not pushed. They are expunged at once, not queued: the queued
// expunge's check that the server copy is unchanged since the last sync
// would keep this copy, which is newer than that sync. A kill before it
// leaves the copy upstream, fetched again by the next run: nothing lost.
func (s *syncer) expungeCopies(c *imapclient.Client, removed map[index.FolderID]imap.UIDSet,
	folderOf map[index.FolderID]*index.Folder, remoteOf map[string]remoteFolder) error {
	if len(removed) == 0 || !s.opts.pushDeletes() {
		return nil
	}
	for id, set := range removed {
		f := folderOf[id]
		dst := remoteOf[f.Name].Remote
		if _, err := c.Select(dst, nil).Wait(); err != nil {
			return fmt.Errorf("SELECT %s: %w", dst, err)
		}
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return fmt.Errorf("STORE %s: %w", dst, err)
		}
		if err := c.UIDExpunge(set).Close(); err != nil {
			return fmt.Errorf("UID EXPUNGE %s: %w", dst, err)
		}
		s.log.Debug("expunged upstream the copies of messages removed during their move", "folder", f.Name, "uids", set.String())
	}
	return nil
}

// withMovedInto returns the folders to sync with those the run's MOVEs
// went into (s.movedInto), each without its LIST-STATUS, which predates
// the MOVE: the run plans them and records their state after it. Else a
// partial run, or one that skipped them as unchanged, left their recorded
// HIGHESTMODSEQ older than the copies the MOVE made, and a later
// deletion of such a copy here was refused as "deleted here, changed
// there".
func (s *syncer) withMovedInto(folders, all []remoteFolder) []remoteFolder {
	if len(s.movedInto) == 0 {
		return folders
	}
	out := slices.Clone(folders)
	have := map[string]bool{}
	for i := range out {
		if s.movedInto[out[i].Local] {
			out[i].Status = nil
		}
		have[out[i].Local] = true
	}
	for _, rf := range all {
		if s.movedInto[rf.Local] && !have[rf.Local] {
			rf.Status = nil
			out = append(out, rf)
			have[rf.Local] = true
		}
	}
	return out
}

// commitMoves records the outcome of carried-out move intents (qs but
// gone): each row whose new UID is known gets it, its file's ,U= tag
// first; then the rows and the intents' removal in one transaction. A
// kill in between leaves tags the rows do not hold, and open intents
// whose UIDs are gone from the source: the destination adopts the copies
// by content.
//
// A local client may have moved the row on or removed it while the MOVE
// ran (the endpoints do not wait for the sync): its file is not touched,
// and the new upstream copy is queued for what was done to the row since,
// as the door would have queued it had it known the UID (index.MoveTo,
// Expunge): a move of it when the row is in another folder (with UID 0:
// the door saw none to move); it returns, by folder, the copies of rows
// removed meanwhile, which the caller expunges (expungeCopies).
func (s *syncer) commitMoves(ctx context.Context, qs, gone []*queuedOp, newUID map[*queuedOp]uint32,
	folderOf map[index.FolderID]*index.Folder) (map[index.FolderID]imap.UIDSet, error) {
	o := &s.opts
	files := map[*queuedOp]string{}
	for _, q := range qs {
		m, uid := q.row, newUID[q]
		if uid == 0 || slices.Contains(gone, q) {
			continue
		}
		files[q] = m.File
		if e, ok := entryOf(m); ok {
			dir, err := o.Index.Dir(*folderOf[m.Folder])
			if err != nil {
				return nil, err
			}
			ne, err := dir.SetUID(e, uid)
			if errors.Is(err, fs.ErrNotExist) {
				continue // moved on or removed since: see the transaction
			}
			if err != nil {
				return nil, err
			}
			files[q] = ne.Sub + "/" + ne.Name
		}
	}
	var removed map[index.FolderID]imap.UIDSet
	err := o.Index.Write(ctx, func(tx *index.Tx) error {
		removed = map[index.FolderID]imap.UIDSet{}
		for _, q := range qs {
			if slices.Contains(gone, q) {
				continue
			}
			if uid := newUID[q]; uid != 0 {
				now, err := tx.MessageByID(q.row.ID)
				if err != nil && !errors.Is(err, index.ErrNotFound) {
					return err
				}
				switch {
				case now == nil:
					set := removed[q.row.Folder]
					set.AddNum(imap.UID(uid))
					removed[q.row.Folder] = set
					delete(files, q)
				case now.Folder != q.row.Folder:
					if err := requeueMoved(tx, q, now, uid, folderOf); err != nil {
						return err
					}
					delete(files, q)
				}
			}
			if file, ok := files[q]; ok {
				if err := tx.SetUID(q.row.ID, newUID[q], q.row.RFC822Size); err != nil {
					return err
				}
				if err := tx.SetFile(q.row.ID, file); err != nil {
					return err
				}
			}
			if err := tx.DoneIntent(q.in.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}

// requeueMoved queues what a local client did to a row (now) while its
// move ran upstream: it moved the row on, so the copy the MOVE made (UID
// uid in the row's former folder) moves after it (or, into another
// account, is expunged). A row that has an upstream UID again needs
// nothing.
func requeueMoved(tx *index.Tx, q *queuedOp, now *index.Message, uid uint32, folderOf map[index.FolderID]*index.Folder) error {
	if now.UID != 0 {
		return nil
	}
	from := folderOf[q.row.Folder]
	to, err := tx.Folder(now.Folder)
	if err != nil {
		return err
	}
	in := index.Intent{Account: from.Account, Folder: from.ID, Message: now.ID, Op: index.IntentMove,
		Arg: fmt.Sprintf("%d/%d", uid, from.UIDValidity)}
	if to.Account != from.Account {
		in.Op, in.Message = index.IntentExpunge, 0
	}
	_, err = tx.AddIntent(in)
	return err
}

func hasState(states map[uint32]serverState, uid uint32) bool {
	_, ok := states[uid]
	return ok
}

// pairUIDs maps each source UID of a COPYUID to its destination UID (the
// sets list them in the same order, RFC 4315), after checking, without
// walking them, that both hold exactly n UIDs.
func pairUIDs(src, dst imap.NumSet, n int) (map[uint32]uint32, bool) {
	s, _ := src.(imap.UIDSet)
	d, _ := dst.(imap.UIDSet)
	ns, okS := uidCount(s)
	nd, okD := uidCount(d)
	if !okS || !okD || ns != uint64(n) || nd != uint64(n) {
		return nil, false
	}
	var to []uint32
	walkUIDs(d, func(u uint32) { to = append(to, u) })
	out := make(map[uint32]uint32, n)
	i := 0
	walkUIDs(s, func(u uint32) {
		out[u] = to[i]
		i++
	})
	return out, true
}
