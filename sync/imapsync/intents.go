package imapsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
)

// Local changes made through the store's door by the local endpoints
// (index.Store.Expunge, MoveTo) are applied locally at once and queued
// upstream as journal intents, committed with them:
//
//   - "expunge": the message's row and file are gone; Arg is
//     "<upstream uid>/<uidvalidity>" of the folder it was in (Intent.Folder).
//   - "move": the row (Intent.Message) now lives in another folder with UID
//     0; Arg is its upstream UID and UIDVALIDITY in the source folder
//     (Intent.Folder).
//
// consumeIntents carries them out before the folders are planned (as
// detectMoves does for moves made in the Maildir), so that no plan fetches
// an expunged message again or uploads a moved one as new:
//
//   - expunge: the UID is flagged \Deleted with STORE UNCHANGEDSINCE the
//     folder's recorded HIGHESTMODSEQ (CONDSTORE) and expunged with UID
//     EXPUNGE. A server copy changed since the last sync is kept: the
//     folder's plan fetches it again as a new message ("deleted here,
//     changed there: kept"). A copy flagged \Deleted already is our own
//     interrupted expunge (or marked for deletion there): expunged.
//   - move: UID MOVE into the row's folder upstream; the row takes the new
//     UID from COPYUID (else the destination's plan adopts the copy by
//     content, rematch). A source UID gone upstream leaves the row to be
//     uploaded as new; a moved row removed since is an expunge; a row
//     moved back to its source folder takes its UID again. A move into a
//     folder not synced upstream (another account's, one the patterns
//     leave out) is an expunge of the source; the row is its own folder's
//     business (a partial run leaves such a move to a full one).
//
// A UIDVALIDITY other than the intent's makes its UID meaningless: the
// intent is dropped (the folder's plan matches by content). Without both
// directions, a move is an expunge of the source (when local deletions
// are pushed) and an upload of the row (when anything is pushed); an
// expunge that is not to be pushed is dropped, and the message comes back.
//
// Crash safety: the intent is committed before any command (by the door's
// caller), its outcome and its removal in one transaction after the
// command's answer. A kill in between is resolved by the next run doing it
// again: a UID already gone is done; an expunge flagged \Deleted is
// expunged; a MOVE that happened leaves the row without UID, adopted by
// content in the destination. A dry run decides the same (reading the
// server with EXAMINE) and records it without doing it: the intents it
// would carry out stay open in its view, and the folder plans leave their
// UIDs and rows alone (openIntentUIDs, openMoveRows).

// queuedOp is one open "expunge" or "move" intent.
type queuedOp struct {
	in      index.Intent
	uid, uv uint32
	row     *index.Message // move: the moved row; nil when gone (or an expunge)
}

// isQueuedOp reports whether an intent is one consumeIntents carries out.
func isQueuedOp(op string) bool { return op == "expunge" || op == "move" }

// parseUIDArg decodes "<uid>/<uidvalidity>".
func parseUIDArg(arg string) (uid, uv uint32, ok bool) {
	a, b, found := strings.Cut(arg, "/")
	if !found {
		return 0, 0, false
	}
	u, err1 := strconv.ParseUint(a, 10, 32)
	v, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil || u == 0 || v == 0 {
		return 0, 0, false
	}
	return uint32(u), uint32(v), true
}

// intentResult is what consumeIntents did (or, DryRun, would do) in one
// source folder, merged into its folder's result (see jobs and result).
type intentResult struct {
	expunged int
	acts     []Action
}

// consumeIntents carries out the account's open expunge and move intents
// on c (see above) and returns how many messages it moved. folders are the
// server folders moves may go between.
func (s *syncer) consumeIntents(ctx context.Context, c *imapclient.Client, acct index.AccountID, folders []remoteFolder) (int, error) {
	o := &s.opts
	remoteOf := map[string]remoteFolder{}
	for _, rf := range folders {
		remoteOf[rf.Local] = rf
	}
	byFolder := map[index.FolderID][]*queuedOp{}
	var order []*index.Folder
	folderOf := map[index.FolderID]*index.Folder{}
	var rows []*index.Message
	var gone []*queuedOp // of folders that no longer exist
	err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		all, err := tx.AccountIntents(acct, "expunge", "move")
		if err != nil || len(all) == 0 {
			return err
		}
		known, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for _, f := range known {
			folderOf[f.ID] = f
		}
		for _, in := range all {
			q := &queuedOp{in: in}
			q.uid, q.uv, _ = parseUIDArg(in.Arg)
			f := folderOf[in.Folder]
			if f == nil {
				gone = append(gone, q) // its folder was removed: nothing to do there
				continue
			}
			if in.Op == "move" && in.Message != 0 {
				q.row = &index.Message{ID: in.Message, Partial: true}
				rows = append(rows, q.row)
			}
			if len(byFolder[f.ID]) == 0 {
				order = append(order, f)
			}
			byFolder[f.ID] = append(byFolder[f.ID], q)
		}
		if len(rows) > 0 {
			return tx.Fill(rows)
		}
		return nil
	})
	if err == nil && len(gone) > 0 {
		err = s.doneIntents(ctx, gone)
	}
	if err != nil || len(order) == 0 {
		return 0, err
	}
	for _, qs := range byFolder {
		for _, q := range qs {
			if q.row != nil && q.row.Partial { // still Partial: the row is gone
				q.row = nil
			}
		}
	}
	moved := 0
	for _, f := range order {
		rf, ok := remoteOf[f.Name]
		if !ok {
			continue // not synced by this run: left for one that does
		}
		n, err := s.consumeFolder(ctx, c, f, rf, byFolder[f.ID], folderOf, remoteOf)
		moved += n
		if err != nil {
			var imapErr *imap.Error
			if errors.As(err, &imapErr) {
				// Refused (the folder cannot be selected, say): its own
				// plan reports it; the intents wait for the next run.
				s.log.Warn("queued local changes not carried out upstream", "folder", f.Name, "err", err)
				continue
			}
			return moved, err
		}
	}
	if moved > 0 || len(s.intentRes) > 0 {
		s.listingsChanged() // rows and file names changed
	}
	return moved, nil
}

// serverState is what the server says of one UID before an intent is
// carried out.
type serverState struct {
	deleted bool
	modseq  uint64
}

// fetchStates reads the flags (and, with CONDSTORE, MODSEQs) of uids in
// the selected folder; a UID the server does not have is missing.
func fetchStates(c *imapclient.Client, uids []uint32, condstore bool) (map[uint32]serverState, error) {
	out := map[uint32]serverState{}
	if len(uids) == 0 {
		return out, nil
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	bufs, err := c.Fetch(imap.UIDSetNum(set...), &imap.FetchOptions{UID: true, Flags: true, ModSeq: condstore}).Collect()
	if err != nil {
		return nil, abort(c, fmt.Errorf("FETCH: %w", err))
	}
	for _, b := range bufs {
		out[uint32(b.UID)] = serverState{deleted: slices.Contains(b.Flags, imap.FlagDeleted), modseq: b.ModSeq}
	}
	return out, nil
}

// consumeFolder carries out the intents of one source folder f.
func (s *syncer) consumeFolder(ctx context.Context, c *imapclient.Client, f *index.Folder, rf remoteFolder,
	qs []*queuedOp, folderOf map[index.FolderID]*index.Folder, remoteOf map[string]remoteFolder) (int, error) {
	o := &s.opts
	condstore := c.Caps().Has(imap.CapCondStore)
	sel, err := c.Select(rf.Remote, &imap.SelectOptions{ReadOnly: o.DryRun}).Wait()
	if err != nil {
		return 0, fmt.Errorf("SELECT %s: %w", rf.Remote, err)
	}
	var expunges, moves, done []*queuedOp
	var uids []uint32
	for _, q := range qs {
		switch {
		case q.uid == 0 || q.uv != sel.UIDValidity:
			// Not a UID of this folder any more: the plan matches by content.
			s.log.Info("a queued local change names a UID of another UIDVALIDITY: left to the folder's plan",
				"folder", f.Name, "op", q.in.Op, "arg", q.in.Arg)
			done = append(done, q)
			continue
		case q.in.Op == "move" && q.row != nil && q.row.Folder != f.ID && q.row.UID == 0 &&
			o.push() && o.pull() && movable(folderOf[q.row.Folder], remoteOf):
			moves = append(moves, q)
		case q.in.Op == "move" && q.row != nil && q.row.Folder != f.ID && q.row.UID == 0 &&
			s.partial && folderOf[q.row.Folder] != nil && o.push() && o.pull():
			continue // its folder is not synced by this partial run: left to a full one
		case q.in.Op == "move" && q.row != nil && q.row.Folder == f.ID && q.row.UID == 0:
			moves = append(moves, q) // moved back: takes its UID again
		default:
			expunges = append(expunges, q) // an expunge, or a move that is one
		}
		uids = append(uids, q.uid)
	}
	states, err := fetchStates(c, uids, condstore && sel.HighestModSeq != 0)
	if err != nil {
		return 0, err
	}
	if len(done) > 0 {
		if err := s.doneIntents(ctx, done); err != nil {
			return 0, err
		}
	}
	if err := s.consumeExpunges(ctx, c, f, condstore, expunges, states); err != nil {
		return 0, err
	}
	return s.consumeMoves(ctx, c, f, rf, moves, states, folderOf, remoteOf)
}

// movable reports whether a move intent's destination (nil: a folder of
// another account) is a folder this run syncs upstream: the message is
// moved there. Otherwise (another account, a folder the patterns leave
// out or that is not upstream) the move is an expunge of the source, and
// the row, if anything, an upload by its own account and folder.
func movable(to *index.Folder, remoteOf map[string]remoteFolder) bool {
	return to != nil && remoteOf[to.Name].Remote != ""
}

// doneIntents closes intents that need nothing (more) done upstream; in
// a dry run, in its view only.
func (s *syncer) doneIntents(ctx context.Context, qs []*queuedOp) error {
	return s.opts.Index.Write(ctx, func(tx *index.Tx) error {
		for _, q := range qs {
			if err := tx.DoneIntent(q.in.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// consumeExpunges deletes the expunge intents' UIDs upstream where the
// rules allow (see above). states is the server's state of each UID.
func (s *syncer) consumeExpunges(ctx context.Context, c *imapclient.Client, f *index.Folder, condstore bool,
	qs []*queuedOp, states map[uint32]serverState) error {
	o := &s.opts
	if len(qs) == 0 {
		return nil
	}
	var gone, kept, flagged, unchanged []*queuedOp
	for _, q := range qs {
		st, ok := states[q.uid]
		switch {
		case !ok:
			gone = append(gone, q) // nothing left to delete
		case !o.pushDeletes():
			kept = append(kept, q) // local deletions stay local: it comes back
		case st.deleted:
			flagged = append(flagged, q)
		case condstore && f.HighestModSeq != 0 && st.modseq > f.HighestModSeq:
			s.log.Info("deleted here, changed there: kept", "folder", f.Name, "uid", q.uid)
			kept = append(kept, q)
		default:
			unchanged = append(unchanged, q)
		}
	}
	if o.DryRun {
		// The others stay open in the dry run's view: the plan leaves
		// their UIDs alone, as it will find them gone.
		s.recordExpunged(f.Name, append(flagged, unchanged...))
		return s.doneIntents(ctx, append(gone, kept...))
	}
	if err := intentHookAt("checked"); err != nil {
		return err
	}
	if len(unchanged) > 0 {
		set := uidSetOf(unchanged)
		store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
		var opts *imap.StoreOptions
		if condstore && f.HighestModSeq != 0 {
			opts = &imap.StoreOptions{UnchangedSince: f.HighestModSeq}
		}
		if err := c.Store(set, store, opts).Close(); err != nil {
			return fmt.Errorf("STORE \\Deleted: %w", err)
		}
		if opts != nil {
			// go-imap does not report the MODIFIED code: what was not
			// stored shows without \Deleted.
			after, err := fetchStates(c, uidsOf(unchanged), false)
			if err != nil {
				return err
			}
			for _, q := range unchanged {
				if st, ok := after[q.uid]; ok && !st.deleted {
					s.log.Info("deleted here, changed there: kept", "folder", f.Name, "uid", q.uid)
					kept = append(kept, q)
				} else {
					flagged = append(flagged, q)
				}
			}
		} else {
			flagged = append(flagged, unchanged...)
		}
	}
	if err := intentHookAt("flagged"); err != nil {
		return err
	}
	if len(flagged) > 0 {
		if c.Caps().Has(imap.CapUIDPlus) || c.Caps().Has(imap.CapIMAP4rev2) {
			if err := c.UIDExpunge(uidSetOf(flagged)).Close(); err != nil {
				return fmt.Errorf("UID EXPUNGE: %w", err)
			}
		} else {
			s.log.Warn("server lacks UIDPLUS: locally deleted messages are only flagged \\Deleted upstream",
				"folder", f.Name, "count", len(flagged))
		}
	}
	if err := intentHookAt("expunged"); err != nil {
		return err
	}
	if err := s.doneIntents(ctx, slices.Concat(gone, kept, flagged)); err != nil {
		return err
	}
	s.recordExpunged(f.Name, flagged)
	return nil
}

// recordExpunged counts deletions carried out upstream for folder.
func (s *syncer) recordExpunged(folder string, qs []*queuedOp) {
	if len(qs) == 0 {
		return
	}
	if s.intentRes == nil {
		s.intentRes = map[string]*intentResult{}
	}
	r := s.intentRes[folder]
	if r == nil {
		r = &intentResult{}
		s.intentRes[folder] = r
	}
	for _, q := range qs {
		r.expunged++
		key := ""
		if q.row != nil {
			key = q.row.Key
		}
		r.acts = append(r.acts, Action{Op: OpDeleteServer, Folder: folder, UID: q.uid, Key: key})
	}
}

func uidsOf(qs []*queuedOp) []uint32 {
	out := make([]uint32, len(qs))
	for i, q := range qs {
		out[i] = q.uid
	}
	return out
}

func uidSetOf(qs []*queuedOp) imap.UIDSet {
	set := make([]imap.UID, len(qs))
	for i, q := range qs {
		set[i] = imap.UID(q.uid)
	}
	return imap.UIDSetNum(set...)
}

// intentHook, if set (by tests), runs between a queued change's commands
// and before its outcome is committed, with the step done: "checked"
// (expunges: after the server's state was read), "flagged" (after the
// STORE \Deleted), "expunged" (after the UID EXPUNGE), "moved" (after
// the MOVEs). An error stops the run there, as a
// kill would.
var intentHook func(stage string) error

func intentHookAt(stage string) error {
	if intentHook == nil {
		return nil
	}
	return intentHook(stage)
}

// openIntentUIDs returns the UIDs (under uidValidity) that open expunge
// and move intents of folder take away upstream: its plan neither fetches
// them again nor takes their absence for a server expunge.
func openIntentUIDs(ctx context.Context, store *index.Store, folder index.FolderID, uidValidity uint32) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	err := store.Read(ctx, func(tx *index.ReadTx) error {
		all, err := tx.Intents(folder)
		for _, in := range all {
			if !isQueuedOp(in.Op) {
				continue
			}
			if uid, uv, ok := parseUIDArg(in.Arg); ok && uv == uidValidity {
				out[uid] = true
			}
		}
		return err
	})
	return out, err
}

// openMoveRows returns the rows that the account's open move intents name:
// no plan uploads them (they are moved upstream).
func openMoveRows(ctx context.Context, store *index.Store, acct index.AccountID) (map[index.MessageID]bool, error) {
	out := map[index.MessageID]bool{}
	err := store.Read(ctx, func(tx *index.ReadTx) error {
		all, err := tx.AccountIntents(acct, "move")
		for _, in := range all {
			if in.Message != 0 {
				out[in.Message] = true
			}
		}
		return err
	})
	return out, err
}
