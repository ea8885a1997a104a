package imapsync

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// serverMsg is what the server told us about one message.
type serverMsg struct {
	uid       uint32
	date      int64 // INTERNALDATE, unix seconds (with withIDs only)
	flags     maildir.Flags
	keywords  []string
	size      int64
	messageID string
}

// plan brings one folder in line on both sides: it reconciles the Maildir
// with the index, reads what changed upstream, merges flags, carries out
// deletions in the directions the options allow, uploads new local
// messages, and queues the new server messages for download.
// prepare opens the folder's Maildir and decides, without a connection,
// whether the folder can be skipped: its LIST-STATUS equals the recorded
// state and nothing changed locally.
func (s *syncer) prepare(ctx context.Context, j *folderJob) (skip bool, err error) {
	o := &s.opts
	var dir *maildir.Dir
	if o.DryRun {
		dir = &maildir.Dir{Path: j.dirPath} // not created: Scan of a missing folder is empty
	} else if dir, err = maildir.Open(j.dirPath); err != nil {
		return false, err
	}
	j.dir = dir
	// Leftovers of a killed run: the caller holds the store's sync lock.
	if !o.DryRun {
		if _, err := dir.CleanOwnTmp(); err != nil {
			return false, err
		}
		// Other programs' leftovers, after the 36 hours the Maildir
		// convention gives them.
		if _, err := dir.CleanTmp(36 * time.Hour); err != nil {
			return false, err
		}
	}
	if j.dirUV, err = dir.UIDValidity(); err != nil {
		return false, err
	}
	st := j.rf.Status
	if st != nil && st.UIDValidity != 0 && st.UIDValidity == j.f.UIDValidity && j.dirUV == st.UIDValidity &&
		st.UIDNext != 0 && uint32(st.UIDNext) == j.f.UIDNext && st.NumMessages != nil &&
		(st.HighestModSeq == j.f.HighestModSeq && st.HighestModSeq != 0) {
		// Normally read at the start of the run; else now, and kept for
		// the plan.
		if s.scans.peek(j.f.ID) == nil {
			if err := s.scanFolders(ctx, []*index.Folder{j.f}); err != nil {
				return false, err
			}
		}
		unchanged, err := unchangedLocally(ctx, o, j.f, int(*st.NumMessages), s.scans.peek(j.f.ID))
		if err != nil {
			return false, err
		}
		if unchanged {
			j.uidValidity, j.uidNext, j.highestModSeq = j.f.UIDValidity, j.f.UIDNext, j.f.HighestModSeq
			j.update(func(r *FolderResult) { r.Skipped = true })
			return true, nil
		}
	}
	return false, nil
}

func (w *worker) plan(ctx context.Context, j *folderJob) error {
	o := &w.s.opts
	dir, dirUV := j.dir, j.dirUV
	var err error
	caps := w.c.Caps()
	condstore := caps.Has(imap.CapCondStore)
	sel, err := w.c.Select(j.rf.Remote, &imap.SelectOptions{ReadOnly: !o.push(), CondStore: condstore}).Wait()
	if err != nil {
		w.selected = ""
		return fmt.Errorf("SELECT: %w", err)
	}
	w.selected = j.rf.Remote
	j.uidValidity, j.uidNext = sel.UIDValidity, uint32(sel.UIDNext)
	if condstore {
		j.highestModSeq = sel.HighestModSeq
	}

	// Which UIDs can be trusted: rows' UIDs only under the UIDVALIDITY they
	// were recorded in; files' ,U= tags only under the Maildir's recorded one.
	uvChanged := j.f.UIDValidity != 0 && j.f.UIDValidity != sel.UIDValidity
	if uvChanged {
		w.s.log.Warn("UIDVALIDITY changed: matching messages again by content",
			"folder", j.rf.Local, "old", j.f.UIDValidity, "new", sel.UIDValidity)
		if err := o.Index.Write(ctx, func(tx *index.Tx) error { return tx.ClearUIDs(j.f.ID) }); err != nil {
			return err
		}
	}
	trustTags := dirUV == sel.UIDValidity && !uvChanged
	// What the server has: everything (first run, lost index, UIDVALIDITY
	// changed: every message must be matched again) or what changed since
	// the recorded state. New local files do not make a run full: those
	// with a ,U= tag (crash leftovers) are checked by a FETCH of just their
	// UIDs; those without are new local messages (recoverAppends already
	// adopted interrupted uploads).
	full := j.f.UIDValidity != sel.UIDValidity || j.f.UIDNext == 0
	rec, err := reconcile(ctx, o.Index, j.f, dir, trustTags, w.s.scans.take(j.f.ID), full)
	if err != nil {
		return err
	}
	if uvChanged && o.DryRun { // ClearUIDs was rolled back
		for _, m := range rec.rows {
			m.UID = 0
		}
	}
	movedAway := map[uint32]bool{}        // DryRun: UIDs a planned move takes out of this folder
	if o.DryRun && len(w.s.planned) > 0 { // planned moves are reported as moves
		rec.gone = slices.DeleteFunc(rec.gone, func(m *index.Message) bool {
			if w.s.planned[m.Key] {
				movedAway[m.UID] = true
				return true
			}
			return false
		})
		rec.rows = slices.DeleteFunc(rec.rows, func(m *index.Message) bool { return w.s.planned[m.Key] })
		rec.added = slices.DeleteFunc(rec.added, func(m *index.Message) bool { return w.s.planned[m.Key] })
	}
	j.update(func(r *FolderResult) { r.Rebuilt += len(rec.added) })
	j.recordRows(OpReindex, rec.added)
	if !o.DryRun {
		if err := w.recoverAppends(ctx, j, rec.rows, uvChanged); err != nil {
			return err
		}
	}

	var server map[uint32]*serverMsg // full: every message; else: those whose flags changed
	var present map[uint32]bool      // every UID on the server, when known
	if full {
		needIDs := len(rec.added) > 0 || slices.ContainsFunc(rec.rows, func(m *index.Message) bool { return m.UID == 0 })
		server = map[uint32]*serverMsg{}
		if sel.NumMessages > 0 {
			if server, err = fetchMeta(w.c, 1, needIDs); err != nil {
				return err
			}
		}
		present = make(map[uint32]bool, len(server))
		for uid := range server {
			present[uid] = true
		}
		expunged, err := verifyTags(ctx, o, dir, rec.rows, rec.added, server, uint32(sel.UIDNext))
		if err != nil {
			return err
		}
		if len(expunged) > 0 {
			gone := map[index.MessageID]bool{}
			for _, m := range expunged {
				gone[m.ID] = true
			}
			rec.rows = slices.DeleteFunc(rec.rows, func(m *index.Message) bool { return gone[m.ID] })
			j.update(func(r *FolderResult) { r.Expunged += len(expunged) })
			j.recordRows(OpDeleteLocal, expunged)
		}
		if needIDs {
			if err := rematch(ctx, o.Index, dir, rec, server, o.DryRun); err != nil {
				return err
			}
		}
	} else {
		server = map[uint32]*serverMsg{}
		if err := fetchChangedFlags(w.c, j.f.HighestModSeq, condstore, sel.HighestModSeq, server); err != nil {
			return err
		}
		if err := w.checkTagged(ctx, j, rec, server, uint32(sel.UIDNext)); err != nil {
			return err
		}
		fresh := slices.ContainsFunc(rec.rows, func(m *index.Message) bool { return m.UID == 0 })
		if fresh || uint32(sel.UIDNext) != j.f.UIDNext || int(sel.NumMessages) != countUpstream(rec.rows) || len(rec.gone) > 0 {
			all, err := searchAll(w.c)
			if err != nil {
				return err
			}
			present = make(map[uint32]bool, len(all))
			for _, uid := range all {
				present[uid] = true
			}
		}
		if fresh {
			// New local files may be messages the server got meanwhile by
			// another way (or a copy made while the index was lost): match
			// them against the server messages we do not have yet, the
			// only ones they can be, before uploading anything.
			if err := w.matchFresh(ctx, j, rec, present, server); err != nil {
				return err
			}
		}
	}
	if dirUV != sel.UIDValidity && !o.DryRun {
		if err := dir.SetUIDValidity(sel.UIDValidity); err != nil {
			return err
		}
	}

	local := make(map[uint32]*index.Message, len(rec.rows))
	for _, m := range rec.rows {
		if m.UID != 0 {
			local[m.UID] = m
		}
	}
	// Expunged upstream: local messages whose UID the server no longer has.
	var serverGone []*index.Message
	if present != nil {
		for uid, m := range local {
			if !present[uid] {
				serverGone = append(serverGone, m)
				delete(local, uid)
			}
		}
	}
	if err := fill(ctx, o.Index, serverGone); err != nil {
		return err
	}
	// Expunged upstream but changed here since the last sync: kept, and
	// uploaded again as a new message (with its local flags).
	var kept []*index.Message
	serverGone = slices.DeleteFunc(serverGone, func(m *index.Message) bool {
		if m.Flags != m.SyncedFlags || !sameKeywords(m.Keywords, m.SyncedKeywords) {
			kept = append(kept, m)
			return true
		}
		return false
	})
	if err := detach(ctx, o, dir, kept); err != nil {
		return err
	}
	// Deleted locally: rows whose file is gone. A message deleted here but
	// changed upstream since the last sync is kept (fetched again).
	var localGone, refetch []*index.Message
	for _, m := range rec.gone {
		sm := server[m.UID]
		// (\Deleted alone does not count: it may be our own interrupted expunge.)
		changedUpstream := sm != nil && (sm.flags&^maildir.FlagDeleted != m.SyncedFlags&^maildir.FlagDeleted ||
			!sameKeywords(sm.keywords, m.SyncedKeywords))
		switch {
		case m.UID == 0 || (present != nil && !present[m.UID]):
			refetch = append(refetch, m) // nothing upstream to delete: just forget the row
		case o.pushDeletes() && !changedUpstream:
			localGone = append(localGone, m)
		default:
			refetch = append(refetch, m)
		}
	}
	if err := o.checkDeletes(j.rf.Local, len(localGone), int(sel.NumMessages), "on the server"); err != nil {
		return err
	}
	if o.pullDeletes() {
		if err := o.checkDeletes(j.rf.Local, len(serverGone), len(rec.rows), "locally"); err != nil {
			return err
		}
	}

	if err := w.syncFlags(ctx, j, local, server); err != nil {
		return err
	}
	if err := w.expungeRemote(ctx, j, localGone); err != nil {
		return err
	}
	if err := dropRows(ctx, o.Index, refetch); err != nil {
		return err
	}
	if o.pullDeletes() {
		if err := expungeLocal(ctx, o.Index, dir, serverGone, o.DryRun); err != nil {
			return err
		}
		j.update(func(r *FolderResult) { r.Expunged += len(serverGone) })
		j.recordRows(OpDeleteLocal, serverGone)
	}
	if o.push() {
		var fresh []*index.Message
		for _, m := range rec.rows {
			if m.UID == 0 && (o.MaxSize <= 0 || m.Size <= o.MaxSize) {
				fresh = append(fresh, m)
			}
		}
		if err := w.appendNew(ctx, j, fresh); err != nil {
			return err
		}
		for _, m := range fresh {
			if m.UID != 0 {
				local[m.UID] = m
			}
		}
	}
	// New messages: every server UID without a local row, in chunks any
	// worker can take. They are queued before the refresh below, so the
	// downloads start while this worker re-reads the folder.
	deleted := make(map[uint32]bool, len(localGone))
	for _, m := range localGone {
		deleted[m.UID] = true
	}
	queued := map[uint32]bool{}
	queueNew := func(present map[uint32]bool) error {
		if !o.pull() {
			return nil
		}
		var newUIDs []uint32
		for uid := range present {
			if local[uid] == nil && !deleted[uid] && !movedAway[uid] && !queued[uid] {
				newUIDs = append(newUIDs, uid)
			}
		}
		slices.Sort(newUIDs)
		var err error
		if newUIDs, err = w.withinLimits(server, newUIDs); err != nil {
			return err
		}
		for _, u := range newUIDs {
			queued[u] = true
		}
		if o.DryRun {
			j.update(func(r *FolderResult) {
				r.New += len(newUIDs)
				r.Bytes += sizeOf(server, newUIDs)
			})
			j.recordUIDs(OpDownload, newUIDs)
			return nil
		}
		if len(newUIDs) > 0 {
			o.Progress.Expect(len(newUIDs), sizeOf(server, newUIDs))
		}
		if len(newUIDs) > 0 && len(newUIDs) <= o.ChunkSize {
			// A few: fetched here, in the folder this connection has
			// selected already (another one would have to open it too).
			return w.fetch(ctx, j, newUIDs)
		}
		for len(newUIDs) > 0 {
			n := min(len(newUIDs), o.ChunkSize)
			j.acquire(1)
			w.s.q.push(task{job: j, uids: newUIDs[:n]})
			newUIDs = newUIDs[n:]
		}
		return nil
	}
	if err := queueNew(present); err != nil {
		return err
	}
	refreshed, err := w.refreshAfterPush(ctx, j, sel, condstore, local, present)
	if err != nil {
		return err
	}
	// What arrived meanwhile (our own APPENDs have rows already).
	return queueNew(refreshed)
}

// refreshAfterPush: when this run changed the folder upstream, the state
// read at SELECT is stale (our own APPENDs and STOREs moved UIDNEXT and
// HIGHESTMODSEQ), and recording it would make the next run look at the
// folder again. So read, in the folder still selected, what changed since
// the SELECT (our own changes are no-ops by the merge rules; anyone else's
// are merged as usual) and every UID, and record the state these reads
// prove: the highest MODSEQ the FETCH returned, and the UID after the
// highest one. Neither is above the server's own, so anything that changes
// after the reads is seen next time; where they fall short of it (an
// expunge bumps HIGHESTMODSEQ without a message to show it), the next run
// just looks at the folder again. A second SELECT would give the exact
// state, but at the price of the server opening the folder again.
func (w *worker) refreshAfterPush(ctx context.Context, j *folderJob, sel *imap.SelectData, condstore bool,
	local map[uint32]*index.Message, present map[uint32]bool) (map[uint32]bool, error) {
	o := &w.s.opts
	pushed := false
	j.update(func(r *FolderResult) { pushed = r.FlagsPushed+r.Uploaded+r.ExpungedRemote > 0 })
	if !pushed || o.DryRun || !condstore || sel.HighestModSeq == 0 {
		return present, nil
	}
	server := map[uint32]*serverMsg{}
	highest, err := fetchChangedSince(w.c, sel.HighestModSeq, server)
	if err != nil {
		return nil, err
	}
	if err := w.syncFlags(ctx, j, local, server); err != nil {
		return nil, err
	}
	all, err := searchAll(w.c)
	if err != nil {
		return nil, err
	}
	present = make(map[uint32]bool, len(all))
	uidNext := uint32(sel.UIDNext)
	for _, uid := range all {
		present[uid] = true
		uidNext = max(uidNext, uid+1)
	}
	j.uidNext, j.highestModSeq = uidNext, max(highest, sel.HighestModSeq)
	return present, nil
}

// matchFresh matches local rows without UID against the server messages
// that have no local row yet (by content identity, see rematch).
func (w *worker) matchFresh(ctx context.Context, j *folderJob, rec *reconciled, present map[uint32]bool, server map[uint32]*serverMsg) error {
	known := map[uint32]bool{}
	for _, m := range rec.rows {
		if m.UID != 0 {
			known[m.UID] = true
		}
	}
	var cand []imap.UID
	for uid := range present {
		if !known[uid] {
			cand = append(cand, imap.UID(uid))
		}
	}
	if len(cand) == 0 {
		return nil
	}
	meta, err := fetchMetaSet(w.c, imap.UIDSetNum(cand...), 1, true)
	if err != nil {
		return err
	}
	for uid, sm := range meta {
		if server[uid] == nil {
			server[uid] = sm
		}
	}
	return rematch(ctx, w.s.opts.Index, j.dir, rec, meta, w.s.opts.DryRun)
}

// checkTagged verifies, in an incremental run, the ,U= tags of files found
// on disk (see verifyTags) with a FETCH of just those UIDs.
func (w *worker) checkTagged(ctx context.Context, j *folderJob, rec *reconciled, server map[uint32]*serverMsg, uidNext uint32) error {
	var uids []imap.UID
	for _, m := range rec.added {
		if m.UID != 0 {
			uids = append(uids, imap.UID(m.UID))
		}
	}
	if len(uids) == 0 {
		return nil
	}
	bufs, err := w.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true}).Collect()
	if err != nil {
		return abort(w.c, err)
	}
	meta := map[uint32]*serverMsg{}
	for _, b := range bufs {
		sm := &serverMsg{uid: uint32(b.UID), size: b.RFC822Size}
		sm.flags, sm.keywords = maildir.FlagsFromIMAP(b.Flags)
		meta[sm.uid] = sm
		if server[sm.uid] == nil {
			server[sm.uid] = sm
		}
	}
	expunged, err := verifyTags(ctx, &w.s.opts, j.dir, rec.rows, rec.added, meta, uidNext)
	if err != nil {
		return err
	}
	if len(expunged) > 0 {
		gone := map[index.MessageID]bool{}
		for _, m := range expunged {
			gone[m.ID] = true
		}
		rec.rows = slices.DeleteFunc(rec.rows, func(m *index.Message) bool { return gone[m.ID] })
		j.update(func(r *FolderResult) { r.Expunged += len(expunged) })
		j.recordRows(OpDeleteLocal, expunged)
	}
	return nil
}

// withinLimits drops the UIDs of messages outside MaxAgeDays and MaxSize,
// fetching their size and date first where the plan does not know them.
func (w *worker) withinLimits(server map[uint32]*serverMsg, uids []uint32) ([]uint32, error) {
	o := &w.s.opts
	if (o.MaxAgeDays <= 0 && o.MaxSize <= 0) || len(uids) == 0 {
		return uids, nil
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	bufs, err := w.c.Fetch(imap.UIDSetNum(set...), &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		return nil, abort(w.c, err)
	}
	cutoff := time.Now().AddDate(0, 0, -o.MaxAgeDays)
	ok := map[uint32]bool{}
	for _, b := range bufs {
		if o.MaxSize > 0 && b.RFC822Size > o.MaxSize {
			continue
		}
		if o.MaxAgeDays > 0 && !b.InternalDate.IsZero() && b.InternalDate.Before(cutoff) {
			continue
		}
		ok[uint32(b.UID)] = true
		if sm := server[uint32(b.UID)]; sm != nil {
			sm.size = b.RFC822Size
		}
	}
	return slices.DeleteFunc(uids, func(u uint32) bool { return !ok[u] }), nil
}

// unchangedLocally reports, without loading the rows, whether the folder's
// Maildir still matches the index (same keys, same file names), its
// upstream message count is the server's, and nothing waits to be pushed.
func unchangedLocally(ctx context.Context, o *Options, f *index.Folder, serverCount int, sc *folderScan) (bool, error) {
	if sc == nil {
		return false, nil // the folder could not be read: its plan says why
	}
	var upstream, pending int
	err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		upstream, pending, err = tx.SyncCounts(f.ID)
		return err
	})
	if err != nil {
		return false, err
	}
	return sc.diff.clean() && upstream == serverCount && !(o.push() && pending > 0), nil
}

func countUpstream(rows []*index.Message) int {
	n := 0
	for _, m := range rows {
		if m.UID != 0 {
			n++
		}
	}
	return n
}

func sizeOf(server map[uint32]*serverMsg, uids []uint32) int64 {
	var n int64
	for _, u := range uids {
		if m := server[u]; m != nil {
			n += m.size
		}
	}
	return n
}
