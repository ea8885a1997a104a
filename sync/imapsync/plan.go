package imapsync

import (
	"context"
	"slices"
	"sync/atomic"

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

// msgPlan is one folder's message-level plan while a worker makes and carries it out
// (plan): what was found on each side and what is to be done.
type msgPlan struct {
	j         *folderJob
	sel       *imap.SelectData
	condstore bool
	full      bool       // every server message is compared (first run, lost state)
	early     *earlyRead // what changed upstream, asked before reconcile (nil: full, or not yet)
	rec       *reconciled

	server    map[uint32]*serverMsg // full: every message; else: those whose flags changed
	present   *uidList              // every UID on the server, when known
	movedAway map[uint32]bool       // DryRun: UIDs a planned move takes out of this folder

	local      *localRows       // rows by UID, of messages still on the server
	serverGone []*index.Message // expunged upstream, unchanged here: delete locally
	localGone  []*index.Message // deleted here, unchanged upstream: expunge upstream
	refetch    []*index.Message // gone here, nothing to delete upstream: forget the row
	queued     map[uint32]bool  // UIDs queued for download
	limited    map[uint32]bool  // UIDs left on the server by MaxAgeDays or MaxSize
}

// plan brings one folder in line on both sides: it reconciles the Maildir
// with the index, reads what changed upstream, merges flags, carries out
// deletions in the directions the options allow, uploads new local
// messages, and queues the new server messages for download.
func (w *worker) plan(ctx context.Context, j *folderJob) error {
	p, err := w.open(ctx, j)
	if err != nil {
		return err
	}
	if p.full {
		err = w.readAll(ctx, p)
	} else {
		err = w.readChanged(ctx, p)
	}
	if err != nil {
		return err
	}
	o := &w.s.opts
	if j.dirUV != p.sel.UIDValidity && !o.DryRun {
		if err := j.dir.SetUIDValidity(p.sel.UIDValidity); err != nil {
			return err
		}
	}
	if err := p.deletions(ctx, o); err != nil {
		return err
	}
	// Expunges first: the uploads after them, the last change this run
	// makes upstream is one a FETCH shows, so the state the refresh below
	// proves is the server's own (an expunge's MODSEQ has no message to
	// show it), and the next run can skip the folder.
	if err := w.expungeRemote(ctx, j, p.localGone); err != nil {
		return err
	}
	// Many new messages: queued now, for the workers done with their
	// own folders, not after the flag changes.
	if err := w.queueAhead(p); err != nil {
		return err
	}
	// The uploads go on the run's uploader connection while this one
	// carries out the rest: flag changes, local deletions, downloads.
	up := w.startUploads(ctx, p)
	err = w.apply(ctx, p)
	// New messages: every server UID without a local row, in chunks any
	// worker can take. They are queued before the refresh below, so the
	// downloads start while this worker re-reads the folder.
	if err == nil {
		err = w.queueNew(ctx, p, p.present)
	}
	if uerr := up.wait(p); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	refreshed, err := w.refreshAfterPush(ctx, j, p.sel, p.condstore, p.local, p.present, up.noop)
	if err != nil {
		return err
	}
	// What arrived meanwhile (our own APPENDs have rows already).
	return w.queueNew(ctx, p, refreshed)
}

// open SELECTs the folder, decides which UIDs can be trusted and how much
// of the server must be compared, asks what changed upstream (startEarly)
// when that is not everything, reconciles the Maildir with the index
// meanwhile and adopts the uploads an interrupted run left.
func (w *worker) open(ctx context.Context, j *folderJob) (_ *msgPlan, err error) {
	o := &w.s.opts
	p := &msgPlan{j: j, condstore: w.c.Caps().Has(imap.CapCondStore), movedAway: map[uint32]bool{}, queued: map[uint32]bool{}, limited: map[uint32]bool{}}
	sel, err := w.selectForPlan(j, !o.push(), p.condstore)
	if err != nil {
		return nil, err
	}
	// The early read owns the connection's answers until it is done.
	defer func() {
		if err != nil {
			p.early.wait()
		}
	}()
	p.sel = sel
	j.uidValidity, j.uidNext = sel.UIDValidity, uint32(sel.UIDNext)
	if p.condstore {
		j.highestModSeq = sel.HighestModSeq
	}

	// Which UIDs can be trusted: rows' UIDs only under the UIDVALIDITY they
	// were recorded in; files' ,U= tags only under the Maildir's recorded one.
	uvChanged := j.f.UIDValidity != 0 && j.f.UIDValidity != sel.UIDValidity
	if uvChanged {
		w.s.log.Warn("UIDVALIDITY changed: matching messages again by content",
			"folder", j.rf.Local, "old", j.f.UIDValidity, "new", sel.UIDValidity)
		if err := o.Index.Write(ctx, func(tx *index.Tx) error { return tx.ClearUIDs(j.f.ID) }); err != nil {
			return nil, err
		}
	}
	trustTags := j.dirUV == sel.UIDValidity && !uvChanged
	// What the server has: everything (first run, lost index, UIDVALIDITY
	// changed: every message must be matched again) or what changed since
	// the recorded state. New local files do not make a run full: those
	// with a ,U= tag (crash leftovers) are checked by a FETCH of just their
	// UIDs; those without are new local messages (recoverAppends already
	// adopted interrupted uploads).
	p.full = j.f.UIDValidity != sel.UIDValidity || j.f.UIDNext == 0
	sc := w.s.scans.take(j.f.ID)
	if !p.full {
		// New files the prescan found may be among the server's new
		// messages: their identities are asked now too (readChanged).
		fresh := sc != nil && sc.diff != nil && len(sc.diff.unknown) > 0
		p.early = startEarly(w.c, j, sel, p.condstore, fresh)
	}
	if sc != nil && sc.stamped {
		sc = nil // unchanged locally, but not read: reconcile reads it
	}
	rec, err := reconcile(ctx, o.Index, j.f, j.dir, trustTags, sc, p.full)
	if err != nil {
		return nil, err
	}
	if reconciledHook != nil {
		reconciledHook()
	}
	p.rec = rec
	if uvChanged && o.DryRun { // ClearUIDs was rolled back
		for _, m := range rec.rows {
			m.UID = 0
		}
	}
	if o.DryRun && len(w.s.planned) > 0 { // planned moves are reported as moves
		w.planMovedFlags(j, rec.added)
		planned := func(m *index.Message) bool { return w.s.planned[m.Key] != nil }
		rec.gone = slices.DeleteFunc(rec.gone, func(m *index.Message) bool {
			if planned(m) {
				p.movedAway[m.UID] = true
				return true
			}
			return false
		})
		rec.rows = slices.DeleteFunc(rec.rows, planned)
		rec.added = slices.DeleteFunc(rec.added, planned)
	}
	// UIDs the local endpoints' queued expunges and moves take away
	// (intents.go): open only in a dry run, or when consumeIntents could
	// not carry them out; not fetched again meanwhile.
	away, err := openIntentUIDs(ctx, o.Index, j.f.ID, sel.UIDValidity)
	if err != nil {
		return nil, err
	}
	for uid := range away {
		p.movedAway[uid] = true
	}
	j.update(func(r *FolderResult) { r.Rebuilt += len(rec.added) })
	j.recordRows(OpReindex, rec.added)
	if !o.DryRun {
		if err := recoverFlags(ctx, o.Index, j.f, rec); err != nil {
			return nil, err
		}
		// recoverAppends may FETCH: an answer of its own must not be
		// taken for one of the FETCH CHANGEDSINCE (1:*).
		if err := p.early.wait(); err != nil {
			return nil, err
		}
		if err := w.recoverAppends(ctx, j, rec, uvChanged); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// reconciledHook, if set (by tests), runs when a plan has reconciled
// its folder.
var reconciledHook func()

// readAll reads every server message of a folder compared in full, checks
// the ,U= tags of files found on disk against it and matches by content
// the rows without a trusted UID.
func (w *worker) readAll(ctx context.Context, p *msgPlan) error {
	o, j, rec := &w.s.opts, p.j, p.rec
	needIDs := len(rec.added) > 0 || slices.ContainsFunc(rec.rows, func(m *index.Message) bool { return m.UID == 0 })
	p.server = map[uint32]*serverMsg{}
	if p.sel.NumMessages > 0 {
		var err error
		if p.server, err = fetchMeta(w.c, 1, needIDs); err != nil {
			return err
		}
	}
	uids := make([]uint32, 0, len(p.server))
	for uid := range p.server {
		uids = append(uids, uid)
	}
	p.present = newUIDList(uids)
	if err := checkTags(ctx, o, j, rec, p.server, uint32(p.sel.UIDNext)); err != nil {
		return err
	}
	if needIDs {
		return rematch(ctx, o.Index, j.dir, rec, p.server, o.DryRun)
	}
	return nil
}

// readChanged reads what changed upstream since the recorded state: flags
// (CONDSTORE), the UIDs present when the counts say some went, the tags of
// files found on disk, and the identities new local files may match. open
// asked for what it could tell before the reconcile (p.early, always set
// when the folder is not compared in full); the rest is asked here.
func (w *worker) readChanged(ctx context.Context, p *msgPlan) error {
	j, rec, sel, e := p.j, p.rec, p.sel, p.early
	// Every UID is needed when messages may have come or gone upstream, or
	// rows without a UID may be among the new ones. startEarly sent the
	// UID SEARCH when UIDNEXT moved; otherwise it goes out now.
	fresh := slices.ContainsFunc(rec.rows, func(m *index.Message) bool { return m.UID == 0 })
	needAll := fresh || uint32(sel.UIDNext) != j.f.UIDNext || int(sel.NumMessages) != countUpstream(rec.rows)+rec.quiet.len() || len(rec.gone) > 0
	search := e.search
	if needAll && search == nil {
		search = startSearchAll(w.c)
	}
	if err := e.wait(); err != nil {
		return err
	}
	p.server = e.server
	var known map[uint32]*serverMsg // identities read ahead; nil: none
	if e.idsAsked && e.ids.complete {
		known = e.ids.msgs
	}
	// New local files the prescan did not see (rows without UID from
	// before): the new messages' identities are asked now, behind the
	// SEARCH, and read beside it.
	var ids chan metaRead // nil: none asked, or taken
	if fresh && !e.idsAsked {
		if ids = askNewIDs(w.c, j.f.UIDNext, uint32(sel.UIDNext)); ids != nil {
			defer func() {
				if ids != nil { // an error came first: the reading ends with the command
					<-ids
				}
			}()
		}
	}
	// Both answered before checkTagged's FETCH goes out: an unsolicited
	// FETCH the server sends with the SEARCH's answer cannot be taken for
	// an answer of that one (go-imap gives such a response to a pending
	// FETCH whose UIDs include it).
	if search != nil {
		all, err := readSearchAll(w.c, search)
		if err != nil {
			return err
		}
		p.present = newUIDList(all)
	}
	if ids != nil {
		r := <-ids
		ids = nil
		if r.err != nil {
			return r.err
		}
		if r.complete {
			known = r.msgs
		}
	}
	if err := w.checkTagged(ctx, j, rec, p.server, uint32(sel.UIDNext)); err != nil {
		return err
	}
	if fresh {
		// New local files may be messages the server got meanwhile by
		// another way (or a copy made while the index was lost): match
		// them against the server messages we do not have yet, the only
		// ones they can be, before uploading anything.
		return w.matchFresh(ctx, j, rec, p.present, p.server, known)
	}
	return nil
}

// deletions decides what was deleted on which side, by the merge rules:
// a message deleted on one side and changed on the other is kept. It
// stops the folder if either side would lose more than the valve allows.
func (p *msgPlan) deletions(ctx context.Context, o *Options) error {
	rec := p.rec
	localN := len(rec.rows) + rec.quiet.len()
	p.local = &localRows{folder: p.j.f.ID, m: map[uint32]*index.Message{}, quiet: rec.quiet}
	for _, m := range rec.rows {
		if m.UID != 0 {
			p.local.m[m.UID] = m
		}
	}
	// Expunged upstream: local messages whose UID the server no longer has.
	if p.present != nil {
		for uid, m := range p.local.m {
			if !p.present.has(uid) {
				p.serverGone = append(p.serverGone, m)
				delete(p.local.m, uid)
			}
		}
		var went []uint32
		rec.quiet.each(func(uid uint32) {
			if !p.present.has(uid) {
				went = append(went, uid)
			}
		})
		ms, err := rec.quiet.take(ctx, o.Index, p.j.f.ID, went)
		if err != nil {
			return err
		}
		p.serverGone = append(p.serverGone, ms...)
	}
	if err := fill(ctx, o.Index, p.serverGone); err != nil {
		return err
	}
	// Expunged upstream but changed here since the last sync: kept, and
	// uploaded again as a new message (with its local flags). \Deleted
	// alone does not count: a message marked deleted here and expunged
	// there is meant to be gone on both sides, and a T the file got from
	// the server's own \Deleted (set just before its EXPUNGE) by a run
	// killed inside the door's SetFlags (file renamed, base not committed)
	// looks like a local change.
	var kept []*index.Message
	p.serverGone = slices.DeleteFunc(p.serverGone, func(m *index.Message) bool {
		if m.Flags&^maildir.FlagDeleted != m.SyncedFlags&^maildir.FlagDeleted || !sameKeywords(m.Keywords, m.SyncedKeywords) {
			kept = append(kept, m)
			return true
		}
		return false
	})
	if err := detach(ctx, o, p.j.dir, kept); err != nil {
		return err
	}
	// Deleted locally: rows whose file is gone. A message deleted here but
	// changed upstream since the last sync is kept (fetched again).
	for _, m := range rec.gone {
		sm := p.server[m.UID]
		// (\Deleted alone does not count: it may be our own interrupted
		// expunge. Nor do flags equal to the row's own: they are this
		// side's change, pushed by a run killed before its new base was
		// committed.)
		changedUpstream := sm != nil && (sm.flags&^maildir.FlagDeleted != m.SyncedFlags&^maildir.FlagDeleted ||
			!sameKeywords(sm.keywords, m.SyncedKeywords)) &&
			(sm.flags&^maildir.FlagDeleted != m.Flags&^maildir.FlagDeleted || !sameKeywords(sm.keywords, m.Keywords))
		switch {
		case m.UID == 0 || (p.present != nil && !p.present.has(m.UID)):
			p.refetch = append(p.refetch, m) // nothing upstream to delete: just forget the row
		case o.pushDeletes() && !changedUpstream:
			p.localGone = append(p.localGone, m)
		default:
			p.refetch = append(p.refetch, m)
		}
	}
	if err := o.checkDeletes(p.j.rf.Local, len(p.localGone), int(p.sel.NumMessages), "on the server"); err != nil {
		return err
	}
	if o.pullDeletes() {
		return o.checkDeletes(p.j.rf.Local, len(p.serverGone), localN, "locally")
	}
	return nil
}

// apply carries out the plan's flag changes and local deletions.
func (w *worker) apply(ctx context.Context, p *msgPlan) error {
	o, j := &w.s.opts, p.j
	if err := w.syncFlags(ctx, j, p.local, p.server); err != nil {
		return err
	}
	forget, err := finishArchived(ctx, o, j, p.present, p.refetch)
	if err != nil {
		return err
	}
	if err := dropRows(ctx, o.Index, forget); err != nil {
		return err
	}
	switch {
	case o.pullDeletes() && o.Archive:
		archived := slices.Clone(p.serverGone)
		for i, m := range archived { // as they were: Archive sets their UIDs to 0
			c := *m
			archived[i] = &c
		}
		if err := archiveGone(ctx, o, p.serverGone); err != nil {
			return err
		}
		j.update(func(r *FolderResult) { r.Archived += len(archived) })
		j.recordRows(OpArchive, archived)
	case o.pullDeletes():
		if err := expungeLocal(ctx, o.Index, p.serverGone, o.DryRun); err != nil {
			return err
		}
		j.update(func(r *FolderResult) { r.Expunged += len(p.serverGone) })
		j.recordRows(OpDeleteLocal, p.serverGone)
	}
	return nil
}

// fresh returns the local messages to upload: the rows without a UID,
// but those a queued move names (moved upstream, never uploaded: open
// here only in a dry run, for what it would move, or when made during
// this run, and the next one moves them; see intents.go) and those over
// Options.MaxSize.
func (w *worker) fresh(ctx context.Context, p *msgPlan) ([]*index.Message, error) {
	o, j := &w.s.opts, p.j
	if !o.push() || !slices.ContainsFunc(p.rec.rows, func(m *index.Message) bool { return m.UID == 0 }) {
		return nil, nil
	}
	moving, err := openMoveRows(ctx, o.Index, j.f.Account)
	if err != nil {
		return nil, err
	}
	var fresh []*index.Message
	for _, m := range p.rec.rows {
		switch {
		case m.UID != 0:
		case moving[m.ID]:
			if o.DryRun {
				w.planQueuedMoveFlags(j, m)
			}
		case o.MaxSize > 0 && m.Size > o.MaxSize:
			j.update(func(r *FolderResult) { r.TooLarge++; r.TooLargeBytes += m.Size })
		default:
			fresh = append(fresh, m)
		}
	}
	return fresh, nil
}

// queueNew downloads (or in a dry run counts) the server messages among
// present without a local row that the limits allow: a few at once on
// this connection, more in chunks any worker can take.
func (w *worker) queueNew(ctx context.Context, p *msgPlan, present *uidList) error {
	o, j := &w.s.opts, p.j
	if !o.pull() {
		return nil
	}
	newUIDs, err := w.admit(p, p.unqueued(present.all(), nil))
	if err != nil {
		return err
	}
	if o.DryRun {
		// The real run counts the RFC822.SIZE of what it stores: so does
		// the plan, asking for the sizes it does not know yet.
		if err := w.knowSizes(p.server, newUIDs); err != nil {
			return err
		}
		j.update(func(r *FolderResult) {
			r.New += len(newUIDs)
			r.Bytes += sizeOf(p.server, newUIDs)
		})
		j.recordUIDs(OpDownload, newUIDs)
		return nil
	}
	if len(newUIDs) > 0 && len(newUIDs) <= o.ChunkSize {
		// A few: fetched here, in the folder this connection has
		// selected already (another one would have to open it too).
		return w.fetch(ctx, j, newUIDs)
	}
	w.pushChunks(j, newUIDs)
	return nil
}

// queueAhead queues, before the folder's flag changes and deletions are
// applied, its new server messages when they are more than a chunk:
// workers done with their own folders take them meanwhile (at 100,000
// messages, the largest folder's 400 flag changes took 0.2 to 0.5 s, its
// downloads beginning only after them). Only messages new since the last
// run, from the recorded UIDNEXT on, in a folder compared incrementally,
// and none whose row apply is about to forget (refetch: its file is gone
// here, and the row still holds the UID). The others, and a few new ones
// (fetched on this connection, in the folder it has selected), are
// queueNew's after apply.
func (w *worker) queueAhead(p *msgPlan) error {
	o, j := &w.s.opts, p.j
	if !o.pull() || o.DryRun || p.full || j.f.UIDNext == 0 ||
		uint32(p.sel.UIDNext) <= j.f.UIDNext+uint32(o.ChunkSize) { // not more than a chunk came
		return nil
	}
	newUIDs := p.unqueued(p.present.from(j.f.UIDNext), p.refetch)
	if len(newUIDs) <= o.ChunkSize {
		return nil
	}
	newUIDs, err := w.admit(p, newUIDs)
	if err != nil {
		return err
	}
	queuedAhead.Add(int64(len(newUIDs)))
	w.pushChunks(j, newUIDs)
	return nil
}

// queuedAhead counts the messages queueAhead queued (for tests).
var queuedAhead atomic.Int64

// unqueued returns, in order, the UIDs among uids (ascending) that have no
// local row and are not queued, deleted here, moved away or left out by
// the limits, nor held by a row of later.
func (p *msgPlan) unqueued(uids []uint32, later []*index.Message) []uint32 {
	skip := make(map[uint32]bool, len(p.localGone)+len(later))
	for _, m := range slices.Concat(p.localGone, later) {
		skip[m.UID] = true
	}
	var out []uint32
	quiet := p.local.quiet.ascending() // uids are sorted: one walk, not a search per UID
	for _, uid := range uids {
		if p.local.m[uid] == nil && !quiet.has(uid) && !skip[uid] && !p.movedAway[uid] && !p.queued[uid] && !p.limited[uid] {
			out = append(out, uid)
		}
	}
	return out
}

// admit returns the UIDs among uids that the limits allow, marked queued
// and expected by the progress (a real run).
func (w *worker) admit(p *msgPlan, uids []uint32) ([]uint32, error) {
	uids, err := w.withinLimits(p, uids)
	if err != nil {
		return nil, err
	}
	for _, u := range uids {
		p.queued[u] = true
	}
	if o := &w.s.opts; !o.DryRun && len(uids) > 0 {
		o.Progress.Expect(len(uids), sizeOf(p.server, uids))
	}
	return uids, nil
}

// pushChunks queues uids in chunks any worker can take.
func (w *worker) pushChunks(j *folderJob, uids []uint32) {
	for len(uids) > 0 {
		n := min(len(uids), w.s.opts.ChunkSize)
		j.acquire(1)
		w.s.q.push(task{job: j, uids: uids[:n]})
		uids = uids[n:]
	}
}
