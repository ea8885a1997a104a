package imapsync

import (
	"context"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// refreshHook, if set (by tests), runs when refreshAfterPush starts: a
// server change made there is one made after this run's downloads.
var refreshHook func()

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
	local *localRows, present *uidList, noop *earlyNoop) (*uidList, error) {
	o := &w.s.opts
	pushed, uploaded := false, false
	j.update(func(r *FolderResult) {
		pushed = r.FlagsPushed+r.Uploaded+r.ExpungedRemote > 0
		uploaded = r.Uploaded > 0
	})
	if !pushed || o.DryRun || !refreshable(sel, condstore) {
		return present, nil
	}
	if refreshHook != nil {
		refreshHook()
	}
	if uploaded {
		// The uploads went over the uploader's own connection: until this
		// session's view takes them in (a NOOP), Dovecot's FETCH below
		// does not show them, and their MODSEQ would be missing from
		// what is recorded (the next run would look at the folder again).
		// Its answer is waited for: Dovecot, given NOOP, FETCH and SEARCH
		// in a row, answers the FETCH and the SEARCH from the view before
		// the NOOP's and takes the new messages in only after them. It
		// was sent as soon as the uploads were in (earlyNoop).
		if err := noop.wait(w.c); err != nil {
			return nil, err
		}
	}
	// The UID SEARCH goes out right behind the FETCH, not a round trip
	// later (the server answers them in that order); the merge of what
	// the FETCH shows comes after both (its STOREs do not change the UIDs).
	server := map[uint32]*serverMsg{}
	changed, search := startChangedSince(w.c, sel.HighestModSeq), startSearchAll(w.c)
	highest, err := readFlags(w.c, changed, server)
	if err != nil {
		return nil, err
	}
	all, err := readSearchAll(w.c, search)
	if err != nil {
		return nil, err
	}
	if err := w.syncFlags(ctx, j, local, server); err != nil {
		return nil, err
	}
	// A message changed since the SELECT that has no row to merge with
	// (downloaded by this run, its flags read before the change, or new
	// meanwhile): the merge above could not carry the change, so the MODSEQ
	// read here is not proven. The SELECT's is: the next run reads that
	// change again.
	unmerged := false
	for uid := range server {
		unmerged = unmerged || !local.has(uid)
	}
	uidNext := uint32(sel.UIDNext)
	for _, uid := range all {
		uidNext = max(uidNext, uid+1)
	}
	present = newUIDList(all)
	j.uidNext, j.highestModSeq = uidNext, max(highest, sel.HighestModSeq)
	if unmerged {
		j.highestModSeq = sel.HighestModSeq
	}
	return present, nil
}

// refreshable: the server tells what changed since the SELECT (sel, with
// CONDSTORE), so refreshAfterPush can read it.
func refreshable(sel *imap.SelectData, condstore bool) bool {
	return condstore && sel.HighestModSeq != 0
}

// matchFresh matches local rows without UID against the server messages
// that have no local row yet (by content identity, see rematch). read
// holds identities read already (readChanged): when they cover every
// candidate, nothing more is asked.
func (w *worker) matchFresh(ctx context.Context, j *folderJob, rec *reconciled, present *uidList, server, read map[uint32]*serverMsg) error {
	known := map[uint32]bool{}
	for _, m := range rec.rows {
		if m.UID != 0 {
			known[m.UID] = true
		}
	}
	var cand []imap.UID
	for _, uid := range present.all() {
		if !known[uid] && !rec.quiet.has(uid) {
			cand = append(cand, imap.UID(uid))
		}
	}
	if len(cand) == 0 {
		return nil
	}
	if meta := knownOf(read, cand); meta != nil {
		mergeNew(server, meta)
		return rematch(ctx, w.s.opts.Index, j.dir, rec, meta, w.s.opts.DryRun)
	}
	// Of many, only those of the size of a row without UID can match one
	// (the identity has the size in it: matchByContent). The sizes come
	// from the server's index; an identity is a header the server may
	// have to read from the message file: at 100,000 messages, the 250
	// new in a folder took 100 to 150 ms.
	var sized map[uint32]*serverMsg
	if len(cand) > matchFew {
		var err error
		if sized, err = fetchMetaSet(w.c, imap.UIDSetNum(cand...), 1, false); err != nil {
			return err
		}
		sizes := map[int64]bool{}
		for _, m := range rec.rows {
			if m.UID == 0 {
				sizes[m.RFC822Size] = true
			}
		}
		cand = cand[:0]
		for uid, sm := range sized {
			if sizes[sm.size] {
				cand = append(cand, imap.UID(uid))
			}
		}
	}
	var meta map[uint32]*serverMsg
	if len(cand) > 0 {
		var err error
		if meta, err = fetchMetaSet(w.c, imap.UIDSetNum(cand...), 1, true); err != nil {
			return err
		}
	}
	mergeNew(server, meta) // the identities first, where both were read
	mergeNew(server, sized)
	if meta == nil { // no candidate of a fresh row's size
		return nil
	}
	return rematch(ctx, w.s.opts.Index, j.dir, rec, meta, w.s.opts.DryRun)
}

// knownOf returns the identities of cand out of known, or nil unless
// known has them all.
func knownOf(known map[uint32]*serverMsg, cand []imap.UID) map[uint32]*serverMsg {
	if known == nil {
		return nil
	}
	meta := make(map[uint32]*serverMsg, len(cand))
	for _, uid := range cand {
		sm := known[uint32(uid)]
		if sm == nil {
			return nil
		}
		meta[sm.uid] = sm
	}
	return meta
}

// matchFew is the most candidates matchFresh asks the identities of at
// once; of more, it asks the sizes first (a round trip more, on a
// remote server more than the few identities cost).
const matchFew = 32

// mergeNew adds to server what meta tells of messages it has not.
func mergeNew(server, meta map[uint32]*serverMsg) {
	for uid, sm := range meta {
		if server[uid] == nil {
			server[uid] = sm
		}
	}
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
	return checkTags(ctx, &w.s.opts, j, rec, meta, uidNext)
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

// checkTags checks the ,U= tags of the files found on disk against what
// the server has (verifyTags) and takes the messages the server no longer
// has out of the plan: they are removed here, or with Options.Archive
// moved to the archive view (archiveGone), like the plan's own expunges.
func checkTags(ctx context.Context, o *Options, j *folderJob, rec *reconciled, server map[uint32]*serverMsg, uidNext uint32) error {
	expunged, err := verifyTags(ctx, o, j.dir, rec, server, uidNext)
	if err != nil || len(expunged) == 0 {
		return err
	}
	gone := map[index.MessageID]bool{}
	for _, m := range expunged {
		gone[m.ID] = true
	}
	rec.rows = slices.DeleteFunc(rec.rows, func(m *index.Message) bool { return gone[m.ID] })
	if o.Archive {
		archived := make([]*index.Message, len(expunged))
		for i, m := range expunged { // as they were: Archive sets their UIDs to 0
			c := *m
			archived[i] = &c
		}
		if err := archiveGone(ctx, o, expunged); err != nil {
			return err
		}
		j.update(func(r *FolderResult) { r.Archived += len(archived) })
		j.recordRows(OpArchive, archived)
		return nil
	}
	if err := expungeLocal(ctx, o.Index, expunged, o.DryRun); err != nil {
		return err
	}
	j.update(func(r *FolderResult) { r.Expunged += len(expunged) })
	j.recordRows(OpDeleteLocal, expunged)
	return nil
}
