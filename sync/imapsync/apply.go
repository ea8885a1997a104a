package imapsync

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// entryOf rebuilds the maildir entry for a row from its recorded file name.
func entryOf(m *index.Message) (maildir.Entry, bool) {
	sub, name := path.Split(m.File)
	e, ok := maildir.ParseName(name)
	if !ok {
		return e, false
	}
	e.Sub = strings.TrimSuffix(sub, "/")
	return e, true
}

// contentMatch is one row rematch gives a server UID: m takes uid, and
// the place of gone, the row whose file is gone, if one held uid.
type contentMatch struct {
	m    *index.Message
	uid  uint32
	gone *index.Message
}

// matchByContent pairs rows without UID with server messages no present
// row holds, by content identity, lowest UID first; it changes nothing.
func matchByContent(rec *reconciled, server map[uint32]*serverMsg) []contentMatch {
	type ident struct {
		id   string
		size int64
	}
	taken := map[uint32]bool{}
	for _, m := range rec.rows {
		if m.UID != 0 {
			taken[m.UID] = true
		}
	}
	goneBy := map[uint32]*index.Message{}
	for _, m := range rec.gone {
		if m.UID != 0 {
			goneBy[m.UID] = m
		}
	}
	identOf := func(msgID string, date, size int64) ident {
		if msgID == "" {
			return ident{fmt.Sprintf("date:%d", date), size}
		}
		return ident{msgID, size}
	}
	candidates := map[ident][]uint32{}
	for uid, sm := range server {
		if !taken[uid] && !rec.quiet.has(uid) {
			k := identOf(sm.messageID, sm.date, sm.size)
			candidates[k] = append(candidates[k], uid)
		}
	}
	for _, list := range candidates {
		sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	}
	var matches []contentMatch
	for _, m := range rec.rows {
		if m.UID != 0 {
			continue
		}
		var date int64
		if !m.InternalDate.IsZero() {
			date = m.InternalDate.Unix()
		}
		k := identOf(m.Header.MessageID, date, m.RFC822Size)
		list := candidates[k]
		if len(list) == 0 {
			continue
		}
		matches = append(matches, contentMatch{m, list[0], goneBy[list[0]]})
		candidates[k] = list[1:]
	}
	return matches
}

// rematch gives rows without a trusted UID (of rec.rows) the UID of the
// server message with the same content identity (Message-ID and size; for a
// message without Message-ID, internal date and size), renaming their files'
// ,U= tags. Rows that match nothing stay local-only (UID 0): nothing is
// fetched twice and nothing local is thrown away.
//
// A UID held by a row whose file is gone (rec.gone) can be matched too: the
// file is that message under a new key (a mail client moved it out and
// back, a tool rewrote it), so it takes the gone row's place, merge base
// and keywords, and the gone row is dropped instead of being carried out as
// a deletion upstream. One UID never ends up on two rows.
func rematch(ctx context.Context, store *index.Store, dir *maildir.Dir, rec *reconciled, server map[uint32]*serverMsg, dry bool) error {
	matches := matchByContent(rec, server)
	if len(matches) == 0 {
		return nil
	}
	// Rename first, then record: a crash in between leaves files whose tags
	// are not trusted yet (the Maildir's UIDVALIDITY is written afterwards).
	var replaced []*index.Message // gone rows whose place a file takes
	for _, mt := range matches {
		if e, ok := entryOf(mt.m); ok && !dry {
			ne, err := dir.SetUID(e, mt.uid)
			if err != nil {
				return err
			}
			mt.m.File = ne.Sub + "/" + ne.Name
		}
		mt.m.UID = mt.uid
		if g := mt.gone; g != nil {
			replaced = append(replaced, g)
			takeOver(mt.m, g)
			// The gone row was being deleted upstream: a run killed
			// between its STORE \Deleted and its UID EXPUNGE leaves the
			// server copy flagged. The file taking the row's place says
			// the message stays, so that \Deleted is this side's own
			// undone change (pushed as -\Deleted), not one made there to
			// pull down as T (TestRunKill9: a message moved out and back
			// came back as 2,ST on both sides).
			if server[mt.uid].flags&maildir.FlagDeleted != 0 && mt.m.Flags&maildir.FlagDeleted == 0 {
				mt.m.SyncedFlags |= maildir.FlagDeleted
			}
		}
	}
	err := store.Write(ctx, func(tx *index.Tx) error {
		for _, mt := range matches {
			if g := mt.gone; g != nil {
				if err := tx.DeleteMessage(g.ID); err != nil {
					return err
				}
				if err := tx.SetFlags(mt.m.ID, mt.m.Folder, mt.m.Flags, mt.m.Keywords); err != nil {
					return err
				}
				if err := tx.SetSyncedFlags(mt.m.ID, mt.m.SyncedFlags, mt.m.SyncedKeywords); err != nil {
					return err
				}
			}
			if err := tx.SetUID(mt.m.ID, mt.uid, server[mt.uid].size); err != nil {
				return err
			}
			if err := tx.SetFile(mt.m.ID, mt.m.File); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rec.forgetGone(replaced)
	return nil
}

// detach makes rows local-only again (UID 0, no ,U= tag): their server
// copy is gone, and they are to be uploaded as new messages.
func detach(ctx context.Context, o *Options, dir *maildir.Dir, rows []*index.Message) error {
	if len(rows) == 0 {
		return nil
	}
	for _, m := range rows {
		if e, ok := entryOf(m); ok && !o.DryRun {
			ne, err := dir.SetUID(e, 0)
			if err != nil {
				return err
			}
			m.File = ne.Sub + "/" + ne.Name
		}
		m.UID = 0
	}
	return o.Index.Write(ctx, func(tx *index.Tx) error {
		for _, m := range rows {
			if err := tx.SetUID(m.ID, 0, m.RFC822Size); err != nil {
				return err
			}
			if err := tx.SetFile(m.ID, m.File); err != nil {
				return err
			}
		}
		return nil
	})
}

// expungeLocal removes messages that left the server, through the store's
// door: files first, then rows (see index.Store.Remove). A crash in
// between leaves rows without files, which the next run reads as local
// deletions of messages the server no longer has, and drops. (Rows first
// would leave files with a ,U= tag and no row: indexed again from disk,
// they would look new and be uploaded again.)
func expungeLocal(ctx context.Context, store *index.Store, gone []*index.Message, dry bool) error {
	if len(gone) == 0 || dry {
		return nil
	}
	return store.Remove(ctx, gone, nil)
}
