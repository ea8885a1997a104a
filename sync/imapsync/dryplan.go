package imapsync

import (
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
)

// What a dry run plans that a real run finds out by doing it: the folders
// it would create upstream, the flags a moved message carries, the sizes
// of what it would download.

// planMovedFlags plans, in a dry run, the flag change upstream that a
// planned move brings into this folder (added holds the files found here):
// a real run MOVEs the message with the flags it had and then, in this
// folder's plan, STOREs the ones its file has now (the file's flags, the
// row's keywords). The UID the MOVE will give is not known: the Action
// has UID 0.
func (w *worker) planMovedFlags(j *folderJob, added []*index.Message) {
	var acts []Action
	for _, m := range added {
		row := w.s.planned[m.Key]
		if row == nil || (m.Flags == row.SyncedFlags && sameKeywords(row.Keywords, row.SyncedKeywords)) {
			continue
		}
		acts = append(acts, Action{Op: OpFlagsServer, Key: m.Key,
			Flags: flagDiff(row.SyncedFlags, row.SyncedKeywords, m.Flags, row.Keywords)})
	}
	if len(acts) > 0 {
		j.update(func(r *FolderResult) { r.FlagsPushed += len(acts) })
		j.record(acts...)
	}
}

// planQueuedMoveFlags plans, in a dry run, the flag change upstream that
// a move intent it would carry out brings into this folder (intents.go):
// the real run MOVEs the message with the server's flags, gives the row
// the new UID and then, in this folder's plan, STOREs the local flags
// that differ from the merge base. The UID is not known: the Action has
// UID 0.
func (w *worker) planQueuedMoveFlags(j *folderJob, m *index.Message) {
	if m.Flags == m.SyncedFlags && sameKeywords(m.Keywords, m.SyncedKeywords) {
		return
	}
	j.update(func(r *FolderResult) { r.FlagsPushed++ })
	j.record(Action{Op: OpFlagsServer, Key: m.Key, Flags: flagDiff(m.SyncedFlags, m.SyncedKeywords, m.Flags, m.Keywords)})
}

// selectForPlan SELECTs the folder, or takes the answer of a SELECT of it
// made ahead on the worker's connection (ahead.go). In a dry run, a
// folder the run would create upstream (syncer.dryCreated) is not there
// to SELECT: it is planned as the empty folder the real run would find,
// under a UIDVALIDITY that neither its Maildir nor its index row carries.
func (w *worker) selectForPlan(j *folderJob, readOnly, condstore bool) (*imap.SelectData, error) {
	if w.s.opts.DryRun && w.s.dryCreated[j.rf.Remote] {
		uv := uint32(1)
		for uv == j.dirUV || uv == j.f.UIDValidity {
			uv++
		}
		return &imap.SelectData{UIDValidity: uv, UIDNext: 1}, nil
	}
	if sel := w.s.takeAhead(w.c, j.rf.Remote, readOnly, condstore); sel != nil {
		w.selected = j.rf.Remote
		return sel, nil
	}
	sel, err := w.c.Select(j.rf.Remote, &imap.SelectOptions{ReadOnly: readOnly, CondStore: condstore}).Wait()
	if err != nil {
		w.selected = ""
		return nil, fmt.Errorf("SELECT: %w", err)
	}
	w.selected = j.rf.Remote
	return sel, nil
}

// knowSizes puts into server the RFC822.SIZE of the UIDs it has none for
// (a flags-only FETCH, such as CHANGEDSINCE's, leaves it 0).
func (w *worker) knowSizes(server map[uint32]*serverMsg, uids []uint32) error {
	var set []imap.UID
	for _, u := range uids {
		if server[u] == nil || server[u].size == 0 {
			set = append(set, imap.UID(u))
		}
	}
	if len(set) == 0 {
		return nil
	}
	bufs, err := w.c.Fetch(imap.UIDSetNum(set...), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return abort(w.c, err)
	}
	for _, b := range bufs {
		if sm := server[uint32(b.UID)]; sm != nil {
			sm.size = b.RFC822Size
		} else {
			server[uint32(b.UID)] = &serverMsg{uid: uint32(b.UID), size: b.RFC822Size}
		}
	}
	return nil
}
