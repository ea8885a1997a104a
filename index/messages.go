package index

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/postfach/postfach/maildir"
)

// MessageID identifies a message row (not the Message-ID header).
type MessageID int64

// Header holds the parsed, decoded header fields the index keeps.
type Header struct {
	MessageID string // without angle brackets
	Date      time.Time
	From      string
	To        string
	Cc        string
	Subject   string
}

// Message is one message row.
type Message struct {
	ID       MessageID
	Folder   FolderID
	Key      string // Maildir unique key
	File     string // last known file name, "cur/<name>" or "new/<name>"
	UID      uint32 // upstream UID; 0 when not upstream
	LocalUID uint32
	Flags    maildir.Flags
	Keywords []string
	// SyncedFlags/SyncedKeywords are the last state both sides agreed on:
	// the base of the three-way flag merge.
	SyncedFlags    maildir.Flags
	SyncedKeywords []string
	Size           int64 // bytes on disk
	RFC822Size     int64 // upstream size (CRLF), 0 when unknown
	InternalDate   time.Time
	ModSeq         uint64
	Header         Header
	SHA256         [32]byte
	// Partial: only ID, Folder, Key, File and UID are set (see FileRows;
	// LocalFiles sets LocalUID and the sizes too); ReadTx.Fill loads the
	// rest.
	Partial bool
}

// NewMessage is what AddMessage needs; Body is the decoded text for the
// full-text index (may be empty).
type NewMessage struct {
	Message
	Body string
	// DeferText leaves the full-text entry to IndexPending, which reads
	// the message file later: the sync does not pay for MIME decoding and
	// tokenizing. Body is ignored then.
	DeferText bool
}

// AddMessage inserts one message row; see AddMessages.
func (tx *Tx) AddMessage(m *NewMessage) (MessageID, error) {
	ids, err := tx.AddMessages([]*NewMessage{m})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// AddMessages inserts message rows (and their full-text entries), assigning
// local UIDs and MODSEQs, and returns the new rows' ids in order. All the
// messages of one call must be in the same folder or the call is split by
// folder. Statements are prepared once per call and the full-text rows go
// in last: FTS5 flushes its pending data whenever another table is written
// in between, which made one segment per message.
func (tx *Tx) AddMessages(ms []*NewMessage) ([]MessageID, error) {
	ids := make([]MessageID, len(ms))
	if len(ms) == 0 {
		return ids, nil
	}
	// Local UIDs and MODSEQs: one range per folder.
	type span struct {
		uid    uint32
		modseq uint64
	}
	next := map[FolderID]*span{}
	count := map[FolderID]int{}
	for _, m := range ms {
		count[m.Folder]++
	}
	for f, n := range count {
		var last uint32
		err := tx.queryRow(`UPDATE folders SET local_uidnext=local_uidnext+? WHERE id=? RETURNING local_uidnext`, n, f).Scan(&last)
		if err != nil {
			return nil, fmt.Errorf("index: add messages: folder %d: %w", f, err)
		}
		modseq, err := tx.bumpModSeq(f)
		if err != nil {
			return nil, fmt.Errorf("index: add messages: %w", err)
		}
		next[f] = &span{uid: last - uint32(n), modseq: modseq}
	}
	ins, err := tx.prep(`INSERT INTO messages(folder_id, key, file, uid, local_uid, flags, keywords,
		synced_flags, synced_kw, size, rfc822_size, internal_date, modseq, message_id, date,
		from_addr, to_addr, cc_addr, subject, sha256)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`)
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		sp := next[m.Folder]
		localUID := sp.uid
		sp.uid++
		err := ins.QueryRow(m.Folder, m.Key, m.File, m.UID, localUID, m.Flags, joinKeywords(m.Keywords),
			m.SyncedFlags, joinKeywords(m.SyncedKeywords), m.Size, m.RFC822Size, unix(m.InternalDate), sp.modseq,
			m.Header.MessageID, unix(m.Header.Date), m.Header.From, m.Header.To, m.Header.Cc, m.Header.Subject,
			m.SHA256[:]).Scan(&ids[i])
		if err != nil {
			return nil, fmt.Errorf("index: add message %s: %w", m.Key, err)
		}
		m.ID, m.LocalUID, m.ModSeq = ids[i], localUID, sp.modseq
		if _, err := tx.messageChanged(MessageAdded, m.Folder, m.ID, localUID, m.Key, m.Flags, m.Keywords); err != nil {
			return nil, err
		}
	}
	for i, m := range ms {
		var err error
		if m.DeferText {
			_, err = tx.exec(`INSERT INTO fts_pending(message_id) VALUES(?)`, ids[i])
		} else {
			err = tx.insertText(ids[i], &m.Header, m.Body, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("index: add message %s to full-text index: %w", m.Key, err)
		}
	}
	return ids, nil
}

const messageCols = `id, folder_id, key, file, uid, local_uid, flags, keywords, synced_flags, synced_kw,
	size, rfc822_size, internal_date, modseq, message_id, date, from_addr, to_addr, cc_addr, subject, sha256`

func scanMessage(row interface{ Scan(...any) error }) (*Message, error) {
	var m Message
	var kw, skw string
	var idate, date int64
	var sum []byte
	err := row.Scan(&m.ID, &m.Folder, &m.Key, &m.File, &m.UID, &m.LocalUID, &m.Flags, &kw, &m.SyncedFlags, &skw,
		&m.Size, &m.RFC822Size, &idate, &m.ModSeq, &m.Header.MessageID, &date, &m.Header.From, &m.Header.To,
		&m.Header.Cc, &m.Header.Subject, &sum)
	if err != nil {
		return nil, err
	}
	m.Keywords = splitKeywords(kw)
	m.SyncedKeywords = splitKeywords(skw)
	m.InternalDate = fromUnix(idate)
	m.Header.Date = fromUnix(date)
	copy(m.SHA256[:], sum)
	return &m, nil
}

// Messages returns all message rows of a folder, ordered by upstream UID
// (messages not upstream, UID 0, first).
func (tx *ReadTx) Messages(folder FolderID) ([]*Message, error) {
	rows, err := tx.query(`SELECT `+messageCols+` FROM messages WHERE folder_id=? ORDER BY uid, id`, folder)
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

// syncCols are the columns SyncRows, PendingRows and Fill read: what the
// sync needs of a message (not the header fields other than Message-ID).
const syncCols = `id, folder_id, key, file, uid, flags, keywords, synced_flags, synced_kw,
	size, rfc822_size, internal_date, message_id`

// scanSyncRow scans a row of syncCols into m, and the columns selected
// after them into extra.
func scanSyncRow(rows *sql.Rows, m *Message, extra ...any) error {
	var kw, skw string
	var idate int64
	if err := rows.Scan(append([]any{&m.ID, &m.Folder, &m.Key, &m.File, &m.UID, &m.Flags, &kw, &m.SyncedFlags, &skw,
		&m.Size, &m.RFC822Size, &idate, &m.Header.MessageID}, extra...)...); err != nil {
		return err
	}
	m.Keywords, m.SyncedKeywords = splitKeywords(kw), splitKeywords(skw)
	m.InternalDate = fromUnix(idate)
	m.Partial = false
	return nil
}

func (tx *ReadTx) syncRows(query string, args ...any) ([]*Message, error) {
	rows, err := tx.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m := &Message{}
		if err := scanSyncRow(rows, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// SyncRows returns a folder's messages with only the fields sync needs
// (no header fields but the Message-ID), ordered by UID (messages not
// upstream, UID 0, first).
func (tx *ReadTx) SyncRows(folder FolderID) ([]*Message, error) {
	return tx.syncRows(`SELECT `+syncCols+` FROM messages WHERE folder_id=? ORDER BY uid, id`, folder)
}

// PendingRows returns, as SyncRows does, the messages of a folder that
// wait for the sync: not upstream yet (UID 0), or with flags or keywords
// other than the last synced ones.
func (tx *ReadTx) PendingRows(folder FolderID) ([]*Message, error) {
	return tx.syncRows(`SELECT `+syncCols+` FROM messages INDEXED BY messages_pending
		WHERE folder_id=? AND (uid = 0 OR flags != synced_flags OR keywords != synced_kw) ORDER BY uid, id`, folder)
}

// Unuploaded reports whether the folder has a message not upstream yet
// (UID 0), from the partial index of pending messages alone.
func (tx *ReadTx) Unuploaded(folder FolderID) (bool, error) {
	var any bool
	err := tx.queryRow(`SELECT EXISTS (SELECT 1 FROM messages INDEXED BY messages_pending
		WHERE folder_id=? AND uid = 0)`, folder).Scan(&any)
	return any, err
}

// Fill loads the fields SyncRows reads into the Partial messages among
// msgs, in place. A message whose row is gone stays Partial.
func (tx *ReadTx) Fill(msgs []*Message) error {
	byID := map[MessageID]*Message{}
	var ids []MessageID
	for _, m := range msgs {
		if m != nil && m.Partial && byID[m.ID] == nil {
			byID[m.ID] = m
			ids = append(ids, m.ID)
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		list, err := json.Marshal(ids[:n])
		if err != nil {
			return err
		}
		ids = ids[n:]
		rows, err := tx.query(`SELECT `+syncCols+` FROM messages WHERE id IN (SELECT value FROM json_each(?))`, string(list))
		if err != nil {
			return err
		}
		for rows.Next() {
			var m Message
			if err := scanSyncRow(rows, &m); err != nil {
				rows.Close()
				return err
			}
			if p := byID[m.ID]; p != nil {
				*p = m
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// SetFlags records new flags and keywords for a message and bumps its MODSEQ.
func (tx *Tx) SetFlags(id MessageID, folder FolderID, flags maildir.Flags, keywords []string) error {
	return tx.flagsChanged(id, folder, flags, keywords, `UPDATE messages SET flags=?, keywords=?, modseq=? WHERE id=? AND folder_id=?
		RETURNING local_uid, key`, flags, joinKeywords(keywords))
}

// flagsChanged runs update (which ends in "modseq=? WHERE id=? AND
// folder_id=? RETURNING local_uid, key", args before those) with the
// folder's next MODSEQ and records the change. A row no longer in folder
// (another writer moved it since the caller read it) is changed in the
// folder it is in, with that folder's next MODSEQ: a MODSEQ of another
// folder's could be below the ones readers of its own have seen, which
// the row images (rowimage.go) and CHANGEDSINCE rely on.
func (tx *Tx) flagsChanged(id MessageID, folder FolderID, flags maildir.Flags, keywords []string, update string, args ...any) error {
	fm, err := tx.folderMod(folder)
	if err != nil {
		return err
	}
	var uid uint32
	var key string
	err = tx.queryRow(update, append(slices.Clip(args), fm.modseq, id, folder)...).Scan(&uid, &key)
	if errors.Is(err, sql.ErrNoRows) {
		var in FolderID
		err := tx.queryRow(`SELECT folder_id FROM messages WHERE id=?`, id).Scan(&in)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && in == folder) {
			return nil // no such row: nothing changed
		}
		if err != nil {
			return err
		}
		return tx.flagsChanged(id, in, flags, keywords, update, args...)
	}
	if err != nil {
		return err
	}
	tx.record(Change{Kind: FlagsChanged, Account: fm.account, Folder: folder, ModSeq: fm.modseq,
		Message: id, LocalUID: uid, Key: key, Flags: flags, Keywords: slices.Clone(keywords)})
	return nil
}

// SetFileFlags records a message's new file name and flags (a rename by a
// mail program) and bumps its MODSEQ.
func (tx *Tx) SetFileFlags(id MessageID, folder FolderID, file string, flags maildir.Flags, keywords []string) error {
	return tx.flagsChanged(id, folder, flags, keywords, `UPDATE messages SET file=?, flags=?, keywords=?, modseq=? WHERE id=? AND folder_id=?
		RETURNING local_uid, key`, file, flags, joinKeywords(keywords))
}

// SetMerged records the outcome of a flag merge in one statement: the
// message's flags and file name (MODSEQ bumped) when they changed, and the
// new merge base (see SetSyncedFlags).
func (tx *Tx) SetMerged(id MessageID, folder FolderID, changed bool, file string, flags maildir.Flags, keywords []string,
	base maildir.Flags, baseKeywords []string) error {
	if !changed {
		return tx.SetSyncedFlags(id, base, baseKeywords)
	}
	return tx.flagsChanged(id, folder, flags, keywords, `UPDATE messages SET file=?, flags=?, keywords=?, synced_flags=?, synced_kw=?,
		modseq=? WHERE id=? AND folder_id=? RETURNING local_uid, key`, file, flags, joinKeywords(keywords), base, joinKeywords(baseKeywords))
}

// SetUploaded records a message's upload in one statement: its UID and
// upstream size, its new file name (see SetFile), and its flags as the
// merge base.
func (tx *Tx) SetUploaded(id MessageID, uid uint32, rfc822Size int64, file string, base maildir.Flags, baseKeywords []string) error {
	noInfo, flags := nameFlags(file)
	_, err := tx.exec(`UPDATE messages SET uid=?, rfc822_size=?, file=CASE WHEN ? OR flags=? THEN ? ELSE file END,
		synced_flags=?, synced_kw=? WHERE id=?`,
		uid, rfc822Size, noInfo, flags, file, base, joinKeywords(baseKeywords), id)
	return err
}

// nameFlags returns the flags a file name ("cur/<name>") carries, and
// whether any flags go with it (a name without info, as in new/, says
// nothing about them).
func nameFlags(file string) (noInfo bool, flags maildir.Flags) {
	_, name, _ := strings.Cut(file, "/")
	if !strings.Contains(name, ":2,") {
		return true, 0
	}
	e, ok := maildir.ParseName(name)
	if !ok {
		return true, 0
	}
	return false, e.Flags
}

// SetSyncedFlags records the flags both sides last agreed on (the merge
// base).
func (tx *Tx) SetSyncedFlags(id MessageID, flags maildir.Flags, keywords []string) error {
	_, err := tx.exec(`UPDATE messages SET synced_flags=?, synced_kw=? WHERE id=?`, flags, joinKeywords(keywords), id)
	return err
}

// SetFile records a message's current file name ("cur/<name>") after a
// rename that changes no flags (a ,U= tag added or removed). If the name
// carries other flags than the row (another program changed them while
// the tag was being set), the row keeps the name it had: the next scan
// then finds the file renamed and takes the change in. Recording the new
// name beside the old flags would hide that change for good.
func (tx *Tx) SetFile(id MessageID, file string) error {
	noInfo, flags := nameFlags(file)
	_, err := tx.exec(`UPDATE messages SET file=CASE WHEN ? OR flags=? THEN ? ELSE file END WHERE id=?`, noInfo, flags, file, id)
	return err
}

// SetUID records a message's upstream UID and size.
func (tx *Tx) SetUID(id MessageID, uid uint32, rfc822Size int64) error {
	_, err := tx.exec(`UPDATE messages SET uid=?, rfc822_size=? WHERE id=?`, uid, rfc822Size, id)
	return err
}

// ClearUIDs forgets the upstream UIDs of a folder's messages (after a
// UIDVALIDITY change); they are matched again by content.
func (tx *Tx) ClearUIDs(folder FolderID) error {
	// One new MODSEQ for all (a row image's catch-up; else the trigger
	// of sql/015_row_images.sql gives each row its own).
	fm, err := tx.folderMod(folder)
	if err != nil {
		return err
	}
	_, err = tx.exec(`UPDATE messages SET uid=0, modseq=? WHERE folder_id=?`, fm.modseq, folder)
	return err
}

// DeleteMessage removes a message row and its full-text entry, leaving a
// tombstone of its local UID (see ChangesSince). A row that does not exist
// is no error. It changes no file: Store.Remove removes files and rows
// together.
func (tx *Tx) DeleteMessage(id MessageID) error {
	if _, err := tx.exec(`DELETE FROM messages_fts WHERE rowid=?`, id); err != nil {
		return err
	}
	var folder FolderID
	var uid uint32
	var key string
	err := tx.queryRow(`DELETE FROM messages WHERE id=? RETURNING folder_id, local_uid, key`, id).Scan(&folder, &uid, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return tx.tombstone(folder, id, uid, key)
}

func joinKeywords(kw []string) string {
	if len(kw) == 0 {
		return ""
	}
	s := append([]string(nil), kw...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

func splitKeywords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// MessageIDByKey returns the id of the row with the given Maildir key in a
// folder, or ErrNotFound.
func (tx *ReadTx) MessageIDByKey(folder FolderID, key string) (MessageID, error) {
	var id MessageID
	err := tx.queryRow(`SELECT id FROM messages WHERE folder_id=? AND key=?`, folder, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// KeyElsewhere reports whether another folder of the same account has a
// message with this Maildir key (the file was copied from there).
func (tx *ReadTx) KeyElsewhere(folder FolderID, key string) (bool, error) {
	var n int
	err := tx.queryRow(`SELECT count(*) FROM messages WHERE key=? AND folder_id!=?
		AND folder_id IN (SELECT id FROM folders WHERE account_id=(SELECT account_id FROM folders WHERE id=?))`,
		key, folder, folder).Scan(&n)
	return n > 0, err
}

// MessageByID returns the row with the id, or ErrNotFound.
func (tx *ReadTx) MessageByID(id MessageID) (*Message, error) {
	m, err := scanMessage(tx.queryRow(`SELECT `+messageCols+` FROM messages WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// MessageByKey returns the row with the given Maildir key in a folder, or
// ErrNotFound.
func (tx *ReadTx) MessageByKey(folder FolderID, key string) (*Message, error) {
	m, err := scanMessage(tx.queryRow(`SELECT `+messageCols+` FROM messages WHERE folder_id=? AND key=?`, folder, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// MoveMessage moves a message row to another folder (its file was moved
// there), with its new upstream UID, file name and the flags the file
// carries (the merge base is kept: the server copy moved with it). It gets
// a new local UID in the destination, as IMAP requires.
//
// The source folder gets a tombstone for the old local UID (a
// MessageRemoved change there), the destination a MessageAdded change.
func (tx *Tx) MoveMessage(id MessageID, to FolderID, uid uint32, file string, flags maildir.Flags) error {
	var from FolderID
	var oldUID uint32
	var key, kw string
	err := tx.queryRow(`SELECT folder_id, local_uid, key, keywords FROM messages WHERE id=?`, id).Scan(&from, &oldUID, &key, &kw)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("index: move message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	var localUID uint32
	err = tx.queryRow(`UPDATE folders SET local_uidnext=local_uidnext+1 WHERE id=? RETURNING local_uidnext-1`, to).Scan(&localUID)
	if err != nil {
		return fmt.Errorf("index: move message: folder %d: %w", to, err)
	}
	if err := tx.tombstone(from, id, oldUID, key); err != nil {
		return err
	}
	modseq, err := tx.messageChanged(MessageAdded, to, id, localUID, key, flags, splitKeywords(kw))
	if err != nil {
		return err
	}
	_, err = tx.exec(`UPDATE messages SET folder_id=?, uid=?, file=?, flags=?, local_uid=?, modseq=? WHERE id=?`,
		to, uid, file, flags, localUID, modseq, id)
	return err
}

// SyncCounts returns how many of a folder's messages are upstream (UID set)
// and how many carry local changes not yet pushed (no UID, or flags that
// differ from the merge base).
func (tx *ReadTx) SyncCounts(folder FolderID) (upstream, pending int, err error) {
	// (Kept by triggers: see sql/016_folder_counts.sql.)
	err = tx.queryRow(`SELECT coalesce((SELECT upstream FROM folder_counts WHERE folder_id=?), 0)`, folder).Scan(&upstream)
	if err == nil {
		err = tx.queryRow(`SELECT count(*) FROM messages INDEXED BY messages_pending
			WHERE folder_id=? AND (uid = 0 OR flags != synced_flags OR keywords != synced_kw)`, folder).Scan(&pending)
	}
	return upstream, pending, err
}
