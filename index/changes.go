package index

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/postfach/postfach/maildir"
)

// ChangeKind is what a Change is. The set is closed: the six kinds of
// change below, Resync, which is no change but the feed telling a
// subscriber it fell behind (see Subscribe), and OutboxQueued (outbox.go).
type ChangeKind uint8

const (
	// MessageAdded: a message row was added to Folder (a delivery, a
	// file indexed from disk, or a message moved in from another folder).
	MessageAdded ChangeKind = iota + 1
	// FlagsChanged: a message's flags or keywords changed.
	FlagsChanged
	// MessageRemoved: a message left Folder (removed, expunged, or moved
	// to another folder, which reports a MessageAdded there). Its local
	// UID is tombstoned.
	MessageRemoved
	// FolderCreated: a folder row was created.
	FolderCreated
	// FolderRenamed: a folder got a new name (OldName is the old one).
	// A rename of a folder renames the folders below it too: each gets
	// its own change.
	FolderRenamed
	// FolderRemoved: a folder row and all its messages were removed (no
	// MessageRemoved is reported for them).
	FolderRemoved
	// Resync is not a change: the subscriber fell behind and lost
	// changes; it is the last item of its subscription (see Subscribe).
	Resync
	// OutboxQueued: a message was queued in the outbox (Store.Enqueue):
	// Account is its account, Name the account's name. Nothing in a
	// folder changed.
	OutboxQueued
)

var kindNames = [...]string{"", "message-added", "flags-changed", "message-removed",
	"folder-created", "folder-renamed", "folder-removed", "resync", "outbox-queued"}

func (k ChangeKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one committed change to the store, as the feed delivers it.
// Every subscriber gets the same value: treat Keywords as read-only.
type Change struct {
	Kind    ChangeKind
	Commit  uint64 // the commit's number: increasing in commit order, shared by the changes of one commit
	Account AccountID
	Folder  FolderID
	// ModSeq is the folder's local MODSEQ after the change: the message's
	// (or for MessageRemoved, its tombstone's) new MODSEQ; for a folder
	// change, the folder's current one.
	ModSeq uint64

	// Message changes.
	Message  MessageID
	LocalUID uint32
	Key      string        // Maildir key
	Flags    maildir.Flags // MessageAdded, FlagsChanged: the new flags
	Keywords []string      // MessageAdded, FlagsChanged: the new keywords

	// Folder changes.
	Name    string // the folder's (new) name
	OldName string // FolderRenamed: the name before
}

// folderMod is what a transaction knows of a folder it changed.
type folderMod struct {
	account AccountID
	modseq  uint64
}

// bumpModSeq increments the folder's local MODSEQ, once per transaction
// (the messages one transaction changes share one, as RFC 7162 allows for
// the messages one command changes), and returns the new value.
func (tx *Tx) bumpModSeq(id FolderID) (uint64, error) {
	fm, err := tx.folderMod(id)
	if err != nil {
		return 0, err
	}
	return fm.modseq, nil
}

func (tx *Tx) folderMod(id FolderID) (folderMod, error) {
	if fm, ok := tx.modseqs[id]; ok {
		return fm, nil
	}
	var fm folderMod
	err := tx.queryRow(`UPDATE folders SET local_modseq=local_modseq+1 WHERE id=? RETURNING account_id, local_modseq`, id).
		Scan(&fm.account, &fm.modseq)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return fm, fmt.Errorf("index: folder %d: %w", id, err)
	}
	if tx.modseqs == nil {
		tx.modseqs = map[FolderID]folderMod{}
	}
	tx.modseqs[id] = fm
	return fm, nil
}

// record notes a change for the feed; Store.Write publishes the
// transaction's changes once it has committed.
func (tx *Tx) record(c Change) {
	tx.changes = append(tx.changes, c)
}

// messageChanged records a message change in folder, bumping its MODSEQ;
// it returns the MODSEQ for the row.
func (tx *Tx) messageChanged(kind ChangeKind, folder FolderID, id MessageID, localUID uint32, key string,
	flags maildir.Flags, keywords []string) (uint64, error) {
	fm, err := tx.folderMod(folder)
	if err != nil {
		return 0, err
	}
	tx.record(Change{Kind: kind, Account: fm.account, Folder: folder, ModSeq: fm.modseq,
		Message: id, LocalUID: localUID, Key: key, Flags: flags, Keywords: slices.Clone(keywords)})
	return fm.modseq, nil
}

// tombstone records that the message with local UID uid left folder: its
// tombstone gets the folder's next MODSEQ.
func (tx *Tx) tombstone(folder FolderID, id MessageID, uid uint32, key string) error {
	modseq, err := tx.messageChanged(MessageRemoved, folder, id, uid, key, 0, nil)
	if err != nil {
		return err
	}
	_, err = tx.exec(`INSERT OR REPLACE INTO tombstones(folder_id, local_uid, modseq) VALUES(?,?,?)`, folder, uid, modseq)
	return err
}

// ChangedMessage is a message ChangesSince reports as changed.
type ChangedMessage struct {
	ID       MessageID
	LocalUID uint32
	Key      string
	Flags    maildir.Flags
	Keywords []string
	ModSeq   uint64
}

// FolderChanges is what changed in a folder since a MODSEQ.
type FolderChanges struct {
	// ModSeq is the folder's local MODSEQ now (its HIGHESTMODSEQ): ask
	// from it next time.
	ModSeq uint64
	// Changed are the messages added or changed since, by local UID.
	Changed []ChangedMessage
	// Removed are the local UIDs of the messages removed (or moved away)
	// since, ascending.
	Removed []uint32
}

// ChangesSince returns what changed in folder since MODSEQ modseq (the
// changes with a greater MODSEQ), in one query: the messages added or
// changed, with their flags, and the local UIDs removed. ChangesSince(f, 0)
// lists every message of the folder and every tombstone. It returns
// ErrNotFound for a folder that does not exist (it was removed: the
// caller's state of it is void).
func (tx *ReadTx) ChangesSince(folder FolderID, modseq uint64) (*FolderChanges, error) {
	rows, err := tx.query(`SELECT 0, local_modseq, 0, 0, '', 0, '' FROM folders WHERE id=?1
		UNION ALL
		SELECT 1, modseq, id, local_uid, key, flags, keywords FROM messages WHERE folder_id=?1 AND modseq>?2
		UNION ALL
		SELECT 2, modseq, 0, local_uid, '', 0, '' FROM tombstones WHERE folder_id=?1 AND modseq>?2
		ORDER BY 1, 4`, folder, int64(modseq))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out *FolderChanges
	for rows.Next() {
		var part int
		var m ChangedMessage
		var kw string
		if err := rows.Scan(&part, &m.ModSeq, &m.ID, &m.LocalUID, &m.Key, &m.Flags, &kw); err != nil {
			return nil, err
		}
		switch {
		case part == 0:
			out = &FolderChanges{ModSeq: m.ModSeq}
		case out == nil: // no folder row
		case part == 1:
			m.Keywords = splitKeywords(kw)
			out.Changed = append(out.Changed, m)
		default:
			out.Removed = append(out.Removed, m.LocalUID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, ErrNotFound
	}
	return out, nil
}
