package imapsync

import (
	"context"
	"slices"
	"strconv"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// After a crash, a lost index or files another program put in place: which
// uploads arrived, and which ,U= tags can be trusted.

// recoverAppends resolves APPENDs that a previous run recorded but did not
// confirm: if the server has the message (same Message-ID and size, at or
// above the UIDNEXT recorded before the APPEND) its UID is adopted;
// otherwise the row stays without UID and is uploaded again. A row whose
// file is gone (deleted here after the interrupted upload) adopts its UID
// too, so that the plan carries the deletion upstream instead of fetching
// the copy the APPEND left as a new message.
func (w *worker) recoverAppends(ctx context.Context, j *folderJob, rec *reconciled, uvChanged bool) error {
	o := &w.s.opts
	intents, err := folderIntents(ctx, o.Index, j.f.ID, "append")
	if err != nil || len(intents) == 0 {
		return err
	}
	if err := rec.wake(ctx, o.Index, j.f.ID, intents); err != nil {
		return err
	}
	rows, gone := rec.rows, rec.gone
	byID := map[index.MessageID]*index.Message{}
	hasFile := map[index.MessageID]bool{}
	for _, m := range rows {
		byID[m.ID] = m
		hasFile[m.ID] = true
	}
	for _, m := range gone {
		byID[m.ID] = m
	}
	var mine []*index.Message
	for _, in := range intents {
		// An intent whose row is gone (its file was moved or deleted
		// after the crash) has nothing to fill: the loop below only
		// closes it.
		if m := byID[in.Message]; m != nil {
			mine = append(mine, m)
		}
	}
	if err := fill(ctx, o.Index, mine); err != nil {
		return err
	}
	from := uint32(1)
	if !uvChanged {
		from = ^uint32(0)
		for _, in := range intents {
			if v, err := strconv.ParseUint(in.Arg, 10, 32); err == nil && uint32(v) < from {
				from = uint32(v)
			}
		}
	}
	server, err := fetchMeta(w.c, from, true)
	if err != nil {
		return err
	}
	type ident struct {
		id   string
		size int64
	}
	cands := map[ident][]uint32{}
	for uid, sm := range server {
		k := ident{sm.messageID, sm.size}
		cands[k] = append(cands[k], uid)
	}
	for _, in := range intents {
		m := byID[in.Message]
		err := o.Index.Write(ctx, func(tx *index.Tx) error {
			if m != nil && m.UID == 0 && m.Header.MessageID != "" {
				size := m.RFC822Size // a gone row's as indexed: its file's with CRLF line ends
				if hasFile[m.ID] {
					if s, err := crlfSize(o.Index, j.f, m); err == nil {
						size = s
					}
				}
				k := ident{m.Header.MessageID, size}
				if list := cands[k]; len(list) > 0 {
					uid := list[0]
					cands[k] = list[1:]
					if e, ok := entryOf(m); ok && hasFile[m.ID] {
						ne, err := j.dir.SetUID(e, uid)
						if err != nil {
							return err
						}
						m.File = ne.Sub + "/" + ne.Name
					}
					m.UID = uid
					if err := tx.SetUID(m.ID, uid, size); err != nil {
						return err
					}
					if err := tx.SetFile(m.ID, m.File); err != nil {
						return err
					}
				}
			}
			return tx.DoneIntent(in.ID)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// folderIntents returns a folder's open intents of one op.
func folderIntents(ctx context.Context, store *index.Store, folder index.FolderID, op string) ([]index.Intent, error) {
	var out []index.Intent
	err := store.Read(ctx, func(tx *index.ReadTx) error {
		all, err := tx.Intents(folder)
		for _, in := range all {
			if in.Op == op {
				out = append(out, in)
			}
		}
		return err
	})
	return out, err
}

// recoverFlags resolves the local flag changes a previous run journaled
// (journalFlags) but did not commit: the server side was written already
// (the STOREs come first), so the intent's base is the server's state. A
// row whose file carries the intent's flags (reconcile has read the name)
// was renamed by the door: it gets the intent's flags, keywords and base,
// as the commit would have given it, instead of being taken for a local
// change. A row whose file does not (the kill came before its rename, or
// another program renamed it since) keeps its flags; a row whose file is
// gone (deleted here) gets the base, the server's flags, so that the
// deletion is carried upstream.
func recoverFlags(ctx context.Context, store *index.Store, f *index.Folder, rec *reconciled) error {
	intents, err := folderIntents(ctx, store, f.ID, "flags")
	if err != nil || len(intents) == 0 {
		return err
	}
	if err := rec.wake(ctx, store, f.ID, intents); err != nil {
		return err
	}
	byID := map[index.MessageID]*index.Message{}
	present := map[index.MessageID]bool{}
	var mine []*index.Message
	for _, m := range rec.rows {
		byID[m.ID], present[m.ID] = m, true
	}
	for _, m := range rec.gone {
		byID[m.ID] = m
	}
	for _, in := range intents {
		if m := byID[in.Message]; m != nil {
			mine = append(mine, m)
		}
	}
	if err := fill(ctx, store, mine); err != nil {
		return err
	}
	return store.Write(ctx, func(tx *index.Tx) error {
		for _, in := range intents {
			m := byID[in.Message]
			fl, kw, base, baseKw, ok := parseFlagsArg(in.Arg)
			if m != nil && ok && (!present[m.ID] || m.Flags == fl) {
				if present[m.ID] {
					if err := tx.SetFlags(m.ID, m.Folder, fl, kw); err != nil {
						return err
					}
					m.Keywords = slices.Clone(kw)
				}
				if err := tx.SetSyncedFlags(m.ID, base, baseKw); err != nil {
					return err
				}
				m.SyncedFlags, m.SyncedKeywords = base, slices.Clone(baseKw)
			}
			if err := tx.DoneIntent(in.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// verifyTags checks the ,U= tags of files indexed from disk against the
// server. A tag whose server message has another size, or a UID the server
// never issued, is dropped: the message is matched by content or uploaded
// instead (a mail client may have moved the file from another folder). A
// tag whose UID the server issued but no longer has is a message expunged
// upstream whose local removal did not happen (a crash, or a lost index):
// the file is removed (with Options.Archive, moved to the archive view,
// as the plan's own expunges are: checkTags does either), unless another
// folder has a file of the same key (a copy made by the user), which is
// then uploaded. A file whose key another folder also has is a copy in
// any case, and so is a file whose UID a known row of this folder already
// holds. It returns the rows expunged upstream, for checkTags to remove.
func verifyTags(ctx context.Context, o *Options, dir *maildir.Dir, rec *reconciled, server map[uint32]*serverMsg, uidNext uint32) ([]*index.Message, error) {
	rows, added := rec.rows, rec.added
	isAdded := make(map[index.MessageID]bool, len(added))
	for _, m := range added {
		isAdded[m.ID] = true
	}
	held := map[uint32]bool{} // UIDs of rows known before this run
	for _, m := range rows {
		if m.UID != 0 && !isAdded[m.ID] {
			held[m.UID] = true
		}
	}
	var bad, expunged []*index.Message
	for _, m := range added {
		if m.UID == 0 {
			continue
		}
		copied := held[m.UID] || rec.quiet.has(m.UID)
		if !copied {
			if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
				var err error
				copied, err = tx.KeyElsewhere(m.Folder, m.Key)
				return err
			}); err != nil {
				return nil, err
			}
		}
		sm := server[m.UID]
		switch {
		case copied:
			bad = append(bad, m)
		case sm != nil && sm.size == m.RFC822Size:
			// the tag fits
			held[m.UID] = true
		case sm == nil && m.UID < uidNext:
			expunged = append(expunged, m)
		default:
			bad = append(bad, m)
		}
	}
	if len(bad) > 0 {
		err := o.Index.Write(ctx, func(tx *index.Tx) error {
			for _, m := range bad {
				m.UID = 0
				if err := tx.SetUID(m.ID, 0, m.RFC822Size); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return expunged, nil
}
