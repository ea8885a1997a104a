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
// otherwise the row stays without UID and is uploaded again.
//
// A row of gone (its file vanished after the crash: the user deleted it or
// moved it to another folder under a new name, where it is a new message)
// adopts the server copy as well, with the copy's flags as its merge base:
// the plan then carries the removal upstream as any local deletion,
// instead of taking the copy for new server mail and downloading it again
// beside the moved file's own upload.
func (w *worker) recoverAppends(ctx context.Context, j *folderJob, rows, gone []*index.Message, uvChanged bool) error {
	o := &w.s.opts
	var intents []index.Intent
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		intents, err = tx.Intents(j.f.ID)
		return err
	}); err != nil {
		return err
	}
	if len(intents) == 0 {
		return nil
	}
	byID := map[index.MessageID]*index.Message{}
	taken := map[uint32]bool{} // UIDs rows of this folder hold already
	for _, m := range rows {
		byID[m.ID] = m
		if m.UID != 0 {
			taken[m.UID] = true
		}
	}
	isGone := map[index.MessageID]bool{}
	for _, m := range gone {
		byID[m.ID] = m
		isGone[m.ID] = true
		if m.UID != 0 {
			taken[m.UID] = true
		}
	}
	var mine []*index.Message
	for _, in := range intents {
		// An intent whose row was dropped altogether has nothing to
		// fill: the loop below only closes it.
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
	cands := uploadCands(server, taken)
	for _, in := range intents {
		m := byID[in.Message]
		err := o.Index.Write(ctx, func(tx *index.Tx) error {
			if m != nil && m.UID == 0 && m.Header.MessageID != "" {
				size := m.RFC822Size
				if s, err := crlfSize(o.Index, j.f, m); err == nil {
					size = s
				}
				k := uploadIdent{m.Header.MessageID, size}
				if list := cands[k]; len(list) > 0 {
					uid := list[0]
					cands[k] = list[1:]
					if isGone[m.ID] {
						return adoptGone(tx, m, uid, size, server[uid], in.ID)
					}
					if err := adoptFile(tx, j.dir, m, uid, size); err != nil {
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

// uploadIdent is what an interrupted upload is found by on the server.
type uploadIdent struct {
	id   string // Message-ID
	size int64  // RFC822.SIZE
}

// uploadCands lists the server's messages by identity, oldest first,
// leaving out the UIDs rows of the folder hold already.
func uploadCands(server map[uint32]*serverMsg, taken map[uint32]bool) map[uploadIdent][]uint32 {
	cands := map[uploadIdent][]uint32{}
	for uid, sm := range server {
		if taken[uid] {
			continue
		}
		k := uploadIdent{sm.messageID, sm.size}
		cands[k] = append(cands[k], uid)
	}
	for _, list := range cands {
		slices.Sort(list)
	}
	return cands
}

// adoptFile gives the row m, whose file is in place, the UID of its
// interrupted upload and tags the file with it.
func adoptFile(tx *index.Tx, dir *maildir.Dir, m *index.Message, uid uint32, size int64) error {
	if e, ok := entryOf(m); ok {
		ne, err := dir.SetUID(e, uid)
		if err != nil {
			return err
		}
		m.File = ne.Sub + "/" + ne.Name
	}
	m.UID = uid
	if err := tx.SetUID(m.ID, uid, size); err != nil {
		return err
	}
	return tx.SetFile(m.ID, m.File)
}

// adoptGone gives the gone row m the UID of its interrupted upload, with
// the server copy's flags as the merge base (nobody changed them since
// the APPEND as far as the plan can tell), and closes the intent: the
// plan deletes the copy upstream, the file being gone.
func adoptGone(tx *index.Tx, m *index.Message, uid uint32, size int64, sm *serverMsg, intent int64) error {
	m.UID, m.SyncedFlags, m.SyncedKeywords = uid, sm.flags, sm.keywords
	if err := tx.SetUID(m.ID, uid, size); err != nil {
		return err
	}
	if err := tx.SetSyncedFlags(m.ID, sm.flags, sm.keywords); err != nil {
		return err
	}
	return tx.DoneIntent(intent)
}

// verifyTags checks the ,U= tags of files indexed from disk against the
// server. A tag whose server message has another size, or a UID the server
// never issued, is dropped: the message is matched by content or uploaded
// instead (a mail client may have moved the file from another folder). A
// tag whose UID the server issued but no longer has is a message expunged
// upstream whose local removal did not happen (a crash, or a lost index):
// the file is removed, unless another folder has a file of the same key (a
// copy made by the user), which is then uploaded. A file whose key another
// folder also has is a copy in any case, and so is a file whose UID a known
// row of this folder already holds. It returns the rows it removed.
func verifyTags(ctx context.Context, o *Options, dir *maildir.Dir, rows, added []*index.Message, server map[uint32]*serverMsg, uidNext uint32) ([]*index.Message, error) {
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
		copied := held[m.UID]
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
	return expunged, expungeLocal(ctx, o.Index, expunged, o.DryRun)
}
