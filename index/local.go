package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/postfach/postfach/maildir"
)

// Local operations: what a client of the local endpoints (agent/imapd,
// agent/pop3d) does to the store. Each is applied here at once, through
// the door (file first, then row, as the door's other methods), and queued
// upstream in the same transaction as the rows: a message stored with UID
// 0 is uploaded by the account's sync (it finds it among the pending
// rows); a removal or a move of a message the server holds adds a journal
// intent (tx.AddIntent) that the sync carries out:
//
//   - "expunge": Folder is the folder the message was in, Message 0, Arg
//     "<upstream uid>/<upstream uidvalidity of that folder>".
//   - "move": Folder is the SOURCE folder, Message the moved row's ID (now
//     in the destination with UID 0), Arg "<upstream uid>/<upstream
//     uidvalidity of the source folder>".
//
// A move between two accounts cannot be done upstream as one: the row
// moves with UID 0 (the destination's sync uploads it) and the source gets
// an "expunge" intent. A move within one folder only renumbers the message
// (a new local UID, as IMAP wants of a MOVE): nothing goes upstream.
// Flag changes need no intent: Store.SetFlags without Synced leaves the
// merge base, and the sync pushes the difference.
//
// The caller holds the accounts' turn (LocalChange, turns.go) from before
// it reads the rows it passes until the call returns: rows read earlier
// may be stale (a sync run moved, changed or removed them meanwhile), and
// a run must not see a change half made. Append takes it itself, around
// its delivery only, once the client's bytes are written.

// IntentExpunge and IntentMove are the journal ops of the local
// operations (see Intent.Op).
const (
	IntentExpunge = "expunge"
	IntentMove    = "move"
)

// Append stores one message into folder (file durable via the door's
// delivery sequence, UID 0: the sync uploads it). The message is read from
// r (CRLF or LF line ends); its row gets flags, keywords and, as internal
// date, date (now when zero). Its full-text entry is deferred
// (IndexPending).
func (s *Store) Append(ctx context.Context, folder FolderID, r io.Reader, flags maildir.Flags, keywords []string, date time.Time) (*Message, error) {
	dirs, err := s.folderDirs(ctx, folder)
	if err != nil {
		return nil, err
	}
	var f *Folder
	if err := s.Read(ctx, func(tx *ReadTx) error {
		f, err = tx.Folder(folder)
		return err
	}); err != nil {
		return nil, err
	}
	dlv, err := dirs[folder].NewDelivery()
	if err != nil {
		return nil, err
	}
	defer dlv.Abort() // nothing once delivered
	if _, err := io.Copy(dlv, r); err != nil {
		return nil, fmt.Errorf("index: append to %q: %w", f.Name, err)
	}
	if err := dlv.Close(); err != nil {
		return nil, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	a, err := localArrival(f, dlv, flags, keywords, date)
	if err != nil {
		return nil, err
	}
	// The client's bytes are in tmp/: only the delivery waits for the
	// account's turn (a client that stalls holds up no sync run).
	release := s.LocalChangeOf(f.Account)
	defer release()
	if err := s.Deliver(ctx, &Batch{Arrivals: []*Arrival{a}}); err != nil {
		return nil, err
	}
	m := a.Row.Message
	return &m, nil
}

// localArrival is the arrival of a message a local client stored: the
// closed delivery dlv into folder f, not upstream yet.
func localArrival(f *Folder, dlv *maildir.Delivery, flags maildir.Flags, keywords []string, date time.Time) (*Arrival, error) {
	size, err := maildir.FileCRLFSize(dlv.Path())
	if err != nil {
		return nil, err
	}
	a := &Arrival{Folder: f, File: dlv}
	m := &a.Row
	m.DeferText = true
	m.Flags, m.Keywords = flags, keywords
	m.RFC822Size = size
	m.InternalDate = date
	m.Header = ParseHeader(dlv.Header())
	return a, nil
}

// CopyTo copies messages into folder `to` (new files, new rows, UID 0),
// in one delivery, and returns the copies in the order of msgs. Each
// copy keeps its message's flags, keywords and internal date.
func (s *Store) CopyTo(ctx context.Context, msgs []*Message, to FolderID) ([]*Message, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	ids := []FolderID{to}
	for _, m := range msgs {
		ids = append(ids, m.Folder)
	}
	dirs, err := s.folderDirs(ctx, ids...)
	if err != nil {
		return nil, err
	}
	folders := map[FolderID]*Folder{}
	if err := s.Read(ctx, func(tx *ReadTx) error {
		for _, id := range ids {
			if folders[id] == nil {
				if folders[id], err = tx.Folder(id); err != nil {
					return fmt.Errorf("index: folder %d: %w", id, err)
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	as := make([]*Arrival, 0, len(msgs))
	defer func() {
		for _, a := range as {
			a.File.Abort() // nothing once delivered
		}
	}()
	for _, m := range msgs {
		a, err := s.copyFile(folders[m.Folder], m, dirs[to], folders[to])
		if err != nil {
			return nil, err
		}
		as = append(as, a)
	}
	if err := s.Deliver(ctx, &Batch{Arrivals: as}); err != nil {
		return nil, err
	}
	out := make([]*Message, len(as))
	for i, a := range as {
		c := a.Row.Message
		out[i] = &c
	}
	return out, nil
}

// copyFile writes a copy of m's file (in folder from) into dst's tmp/ and
// returns its arrival into folder to.
func (s *Store) copyFile(from *Folder, m *Message, dst *maildir.Dir, to *Folder) (*Arrival, error) {
	b, err := s.OpenMessage(from, m)
	if err != nil {
		return nil, fmt.Errorf("index: copying message %s: %w", m.Key, err)
	}
	defer b.Close()
	dlv, err := dst.NewDelivery()
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(dlv, b); err != nil {
		dlv.Abort()
		return nil, fmt.Errorf("index: copying message %s: %w", m.Key, err)
	}
	if err := dlv.Close(); err != nil {
		dlv.Abort()
		return nil, err
	}
	date := m.InternalDate
	if date.IsZero() {
		date = b.ModTime
	}
	a, err := localArrival(to, dlv, m.Flags, m.Keywords, date)
	if err != nil {
		dlv.Abort()
		return nil, err
	}
	return a, nil
}

// MoveTo moves messages into `to` (rows keep their ID, get UID 0 and a new
// local UID there); for each that had an upstream UID, a "move" intent
// (an "expunge" one when `to` is another account's). A message already in
// `to` gets a new local UID and keeps everything else. It returns msgs,
// updated in place (see Store.Move), in order.
func (s *Store) MoveTo(ctx context.Context, msgs []*Message, to FolderID) ([]*Message, error) {
	var folders map[FolderID]*Folder
	if err := s.Read(ctx, func(tx *ReadTx) (err error) {
		folders, err = tx.foldersByID(append([]FolderID{to}, folderIDs(msgs)...)...)
		return err
	}); err != nil {
		return nil, err
	}
	dst := folders[to]
	for _, m := range msgs {
		if m.Folder == to {
			if err := s.renumber(ctx, m); err != nil {
				return nil, err
			}
			continue
		}
		var localUID uint32
		var modseq uint64
		// The intent names the upstream UID the row has when it moves,
		// not m's: a sync may have given it one since m was read (a
		// move of it carried out upstream meanwhile).
		before := func(tx *Tx) error {
			in, err := tx.upstreamIntent(m.ID, IntentMove)
			if err != nil || in == nil {
				return err
			}
			if in.Account != dst.Account {
				in.Op, in.Message = IntentExpunge, 0
			}
			_, err = tx.AddIntent(*in)
			return err
		}
		after := func(tx *Tx) error {
			return tx.queryRow(`SELECT local_uid, modseq FROM messages WHERE id=?`, m.ID).Scan(&localUID, &modseq)
		}
		if err := s.move(ctx, m, to, 0, 0, before, after); err != nil {
			return nil, err
		}
		m.LocalUID, m.ModSeq = localUID, modseq
	}
	return msgs, nil
}

// renumber gives message m a new local UID in its own folder (a MOVE
// into the mailbox it is in): its old one is tombstoned; file, upstream
// UID and flags stay.
func (s *Store) renumber(ctx context.Context, m *Message) error {
	var cur *Message
	err := s.Write(ctx, func(tx *Tx) error {
		var err error
		cur, err = scanMessage(tx.queryRow(`SELECT `+messageCols+` FROM messages WHERE id=?`, m.ID))
		if err != nil {
			return fmt.Errorf("index: move message %d: %w", m.ID, err)
		}
		if err := tx.MoveMessage(m.ID, m.Folder, cur.UID, cur.File, cur.Flags); err != nil {
			return err
		}
		return tx.queryRow(`SELECT local_uid, modseq FROM messages WHERE id=?`, m.ID).Scan(&cur.LocalUID, &cur.ModSeq)
	})
	if err != nil {
		return err
	}
	*m = *cur
	return nil
}

func folderIDs(msgs []*Message) []FolderID {
	ids := make([]FolderID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Folder
	}
	return ids
}

// Expunge removes messages (files, rows, tombstones: Store.Remove); for
// each that had an upstream UID, an "expunge" intent in the same
// transaction as the rows. In an account that keeps an archive
// (ArchiveOn), the messages move to its archive view instead, with the
// same intents (Store.Archive); for one already there it fails with
// ErrArchiveView, and removes nothing (only Purge removes them).
func (s *Store) Expunge(ctx context.Context, msgs []*Message) error {
	if len(msgs) == 0 {
		return nil
	}
	archived, msgs, err := s.archiveSplit(ctx, msgs)
	if err != nil {
		return err
	}
	if err := s.Archive(ctx, archived, true); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	// (Remove runs this before it deletes the rows: the intents name the
	// upstream UIDs the rows have then, not msgs', which a sync may have
	// set since they were read.)
	return s.Remove(ctx, msgs, func(tx *Tx) error {
		for _, m := range msgs {
			in, err := tx.upstreamIntent(m.ID, IntentExpunge)
			if err != nil {
				return err
			}
			if in == nil {
				continue
			}
			in.Message = 0
			if _, err := tx.AddIntent(*in); err != nil {
				return err
			}
		}
		return nil
	})
}

// upstreamIntent returns the intent op for message id as its row is now:
// its folder, its upstream UID and that folder's UIDVALIDITY; nil when it
// has no upstream UID (nothing to do upstream) or no row.
func (tx *Tx) upstreamIntent(id MessageID, op string) (*Intent, error) {
	var uid uint32
	var folder FolderID
	err := tx.queryRow(`SELECT uid, folder_id FROM messages WHERE id=?`, id).Scan(&uid, &folder)
	if errors.Is(err, sql.ErrNoRows) || err == nil && uid == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := tx.Folder(folder)
	if err != nil {
		return nil, err
	}
	return &Intent{Account: f.Account, Folder: f.ID, Message: id, Op: op,
		Arg: fmt.Sprintf("%d/%d", uid, f.UIDValidity)}, nil
}

// LocalUIDs returns the local UIDs of folder's messages, ascending, and
// the folder's local MODSEQ, read together: the state a change with a
// greater MODSEQ changes. It returns ErrNotFound for a folder that does
// not exist.
func (tx *ReadTx) LocalUIDs(folder FolderID) ([]uint32, uint64, error) {
	var modseq uint64
	err := tx.queryRow(`SELECT local_modseq FROM folders WHERE id=?`, folder).Scan(&modseq)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = ErrNotFound
		}
		return nil, 0, err
	}
	rows, err := tx.query(`SELECT local_uid FROM messages WHERE folder_id=? ORDER BY local_uid`, folder)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var uids []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, 0, err
		}
		uids = append(uids, u)
	}
	return uids, modseq, rows.Err()
}

// LocalFiles returns what a POP3 session lists of each message of folder,
// in local UID order: partial rows with ID, Folder, Key, File, LocalUID,
// Size and RFC822Size (whole rows of a large folder would be held for the
// whole listing for nothing).
func (tx *ReadTx) LocalFiles(folder FolderID) ([]*Message, error) {
	rows, err := tx.query(`SELECT id, key, file, local_uid, size, rfc822_size FROM messages
		WHERE folder_id=? ORDER BY local_uid`, folder)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m := &Message{Folder: folder, Partial: true}
		if err := rows.Scan(&m.ID, &m.Key, &m.File, &m.LocalUID, &m.Size, &m.RFC822Size); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// The queries of LocalMessages and LocalFlags: a run of consecutive UIDs
// (one, for a client that fetches message by message), or any set
// through json_each.
const (
	localMessagesRange = `SELECT ` + messageCols + ` FROM messages WHERE folder_id=? AND local_uid BETWEEN ? AND ? ORDER BY local_uid`
	localMessagesList  = `SELECT ` + messageCols + ` FROM messages WHERE folder_id=?
		AND local_uid IN (SELECT value FROM json_each(?)) ORDER BY local_uid`
	localFlagCols   = `local_uid, flags, keywords`
	localFlagsRange = `SELECT ` + localFlagCols + ` FROM messages WHERE folder_id=? AND local_uid BETWEEN ? AND ? ORDER BY local_uid`
	localFlagsList  = `SELECT ` + localFlagCols + ` FROM messages WHERE folder_id=?
		AND local_uid IN (SELECT value FROM json_each(?)) ORDER BY local_uid`
)

// LocalMessages returns the rows of folder's messages with the given
// local UIDs, ascending by local UID; UIDs without a row are left out.
func (tx *ReadTx) LocalMessages(folder FolderID, uids []uint32) ([]*Message, error) {
	return tx.localRows(folder, uids, localMessagesRange, localMessagesList, scanMessage)
}

// LocalFlags is LocalMessages for a FETCH of flags (the resync of a
// client): the rows carry only Folder, LocalUID, Flags and Keywords, read
// from the covering index messages_folder_local_uid without touching the
// table.
func (tx *ReadTx) LocalFlags(folder FolderID, uids []uint32) ([]*Message, error) {
	return tx.localRows(folder, uids, localFlagsRange, localFlagsList, func(r interface{ Scan(...any) error }) (*Message, error) {
		m := &Message{Folder: folder}
		var kw string
		if err := r.Scan(&m.LocalUID, &m.Flags, &kw); err != nil {
			return nil, err
		}
		m.Keywords = splitKeywords(kw)
		return m, nil
	})
}

// localRows runs rangeQ for each run of consecutive UIDs of uids and
// listQ (500 at a time) for the others, and scans every row with scan.
func (tx *ReadTx) localRows(folder FolderID, uids []uint32, rangeQ, listQ string, scan func(interface{ Scan(...any) error }) (*Message, error)) ([]*Message, error) {
	var out []*Message
	for len(uids) > 0 {
		n := 1
		for n < len(uids) && uids[n] == uids[n-1]+1 {
			n++
		}
		q, args := rangeQ, []any{folder, uids[0], uids[n-1]}
		if n == 1 && len(uids) > 1 {
			n = min(len(uids), 500)
			list, err := json.Marshal(uids[:n])
			if err != nil {
				return nil, err
			}
			q, args = listQ, []any{folder, string(list)}
		}
		uids = uids[n:]
		st, err := tx.prep(q)
		if err != nil {
			return nil, err
		}
		rows, err := st.Query(args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			m, err := scan(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, m)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LocalFlagged returns the rows of folder's messages that carry flag,
// ascending by local UID (the messages \Deleted marks for EXPUNGE).
func (tx *ReadTx) LocalFlagged(folder FolderID, flag maildir.Flags) ([]*Message, error) {
	rows, err := tx.query(`SELECT `+messageCols+` FROM messages WHERE folder_id=? AND flags & ? != 0
		ORDER BY local_uid`, folder, flag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// LocalStatus is what an IMAP STATUS reports of a folder.
type LocalStatus struct {
	Messages, Unseen, Deleted uint32
	// Size is the sum of the messages' RFC822.SIZE (the size on disk
	// where the row does not know it).
	Size int64
	// FirstUnseen is the least local UID without \Seen, 0 for none.
	FirstUnseen uint32
}

// LocalStatus counts folder's messages for STATUS.
func (tx *ReadTx) LocalStatus(folder FolderID) (LocalStatus, error) {
	var st LocalStatus
	err := tx.queryRow(`SELECT count(*), coalesce(sum(flags & ?1 = 0), 0), coalesce(sum(flags & ?2 != 0), 0),
		coalesce(sum(CASE WHEN rfc822_size > 0 THEN rfc822_size ELSE size END), 0),
		coalesce(min(CASE WHEN flags & ?1 = 0 THEN local_uid END), 0)
		FROM messages WHERE folder_id=?3`, maildir.FlagSeen, maildir.FlagDeleted, folder).
		Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Size, &st.FirstUnseen)
	return st, err
}
