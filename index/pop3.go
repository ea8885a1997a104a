package index

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// POP3UIDL is what the index knows of one server message of a POP3 account,
// by its UIDL (or the fetcher's substitute identity, see sync/pop3): a
// message that was on the server at the last listing and whose copy is
// stored. An identity names nothing once its message has left the server:
// the fetcher forgets it then (ForgetPOP3UIDLs), as a server may give it to
// a new message later.
type POP3UIDL struct {
	MessageID MessageID // the stored copy's row; 0 if none is recorded
	StoredAt  time.Time // when the copy was committed
	// RFC822Size is the message's size as the server listed it when it was
	// stored; 0 unknown (rows older than schema version 6 whose message
	// row was gone).
	RFC822Size int64
	// HeaderSHA256 is the hash of the stored copy's header that sync/pop3
	// computes (headerHasher); nil unknown (rows older than schema version 6).
	HeaderSHA256 []byte
}

// POP3UIDLs returns the account's stored identities.
func (tx *ReadTx) POP3UIDLs(acct AccountID) (map[string]POP3UIDL, error) {
	rows, err := tx.query(`SELECT uidl, message_id, stored_at, rfc822_size, header_sha256
		FROM pop3_uidls WHERE account_id=?`, acct)
	if err != nil {
		return nil, fmt.Errorf("index: pop3 uidls: %w", err)
	}
	defer rows.Close()
	out := make(map[string]POP3UIDL)
	for rows.Next() {
		var uidl string
		var msg sql.NullInt64
		var stored int64
		var u POP3UIDL
		if err := rows.Scan(&uidl, &msg, &stored, &u.RFC822Size, &u.HeaderSHA256); err != nil {
			return nil, fmt.Errorf("index: pop3 uidls: %w", err)
		}
		u.MessageID, u.StoredAt = MessageID(msg.Int64), fromUnix(stored)
		out[uidl] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: pop3 uidls: %w", err)
	}
	return out, nil
}

// AddPOP3UIDL records that the server message uidl is stored as
// u.MessageID (0: no row). Recording a UIDL again replaces all it recorded:
// the identity now names this message.
func (tx *Tx) AddPOP3UIDL(acct AccountID, uidl string, u POP3UIDL) error {
	var m any
	if u.MessageID != 0 {
		m = u.MessageID
	}
	_, err := tx.exec(`INSERT INTO pop3_uidls(account_id, uidl, message_id, stored_at, rfc822_size, header_sha256)
		VALUES(?,?,?,?,?,?)
		ON CONFLICT(account_id, uidl) DO UPDATE SET message_id=excluded.message_id,
			stored_at=excluded.stored_at, rfc822_size=excluded.rfc822_size,
			header_sha256=excluded.header_sha256`,
		acct, uidl, m, u.StoredAt.Unix(), u.RFC822Size, u.HeaderSHA256)
	if err != nil {
		return fmt.Errorf("index: add pop3 uidl: %w", err)
	}
	return nil
}

// ForgetPOP3UIDLs removes identities of the account: their messages have
// left the server. The stored copies (message rows and files) stay.
// Unknown identities are ignored.
func (tx *Tx) ForgetPOP3UIDLs(acct AccountID, uidls []string) error {
	st, err := tx.prep(`DELETE FROM pop3_uidls WHERE account_id=? AND uidl=?`)
	if err != nil {
		return fmt.Errorf("index: forget pop3 uidls: %w", err)
	}
	for _, u := range uidls {
		if _, err := st.Exec(acct, u); err != nil {
			return fmt.Errorf("index: forget pop3 uidls: %w", err)
		}
	}
	return nil
}

// POP3Copy returns the message row msg and its folder, if the row exists in
// one of the account's folders; otherwise ErrNotFound. It is how the fetcher
// finds the stored copy a POP3UIDL names.
func (tx *ReadTx) POP3Copy(acct AccountID, msg MessageID) (*Message, *Folder, error) {
	m, err := scanMessage(tx.queryRow(`SELECT `+messageCols+` FROM messages
		WHERE id=? AND folder_id IN (SELECT id FROM folders WHERE account_id=?)`, msg, acct))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("index: pop3 copy: %w", err)
	}
	f, err := tx.Folder(m.Folder)
	if err != nil {
		return nil, nil, fmt.Errorf("index: pop3 copy: %w", err)
	}
	return m, f, nil
}

// POP3Pending is a POP3 download whose file may have been renamed into the
// folder but whose row is not committed yet (see sync/pop3).
type POP3Pending struct {
	UIDL       string
	Folder     FolderID
	Key        string // Maildir key of the file
	RFC822Size int64  // size as the server listed it; 0 unknown
	Created    time.Time
}

// AddPOP3Pending records downloads about to be renamed into their folder.
// Commit it before the rename.
func (tx *Tx) AddPOP3Pending(acct AccountID, ps []POP3Pending) error {
	st, err := tx.prep(`INSERT OR REPLACE INTO pop3_pending(account_id, uidl, folder_id, key, rfc822_size, created)
		VALUES(?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("index: add pop3 pending: %w", err)
	}
	now := time.Now().Unix()
	for _, p := range ps {
		if _, err := st.Exec(acct, p.UIDL, p.Folder, p.Key, p.RFC822Size, now); err != nil {
			return fmt.Errorf("index: add pop3 pending: %w", err)
		}
	}
	return nil
}

// POP3PendingList returns the account's pending downloads, oldest first.
func (tx *ReadTx) POP3PendingList(acct AccountID) ([]POP3Pending, error) {
	rows, err := tx.query(`SELECT uidl, folder_id, key, rfc822_size, created FROM pop3_pending
		WHERE account_id=? ORDER BY created, rowid`, acct)
	if err != nil {
		return nil, fmt.Errorf("index: pop3 pending: %w", err)
	}
	defer rows.Close()
	var out []POP3Pending
	for rows.Next() {
		var p POP3Pending
		var created int64
		if err := rows.Scan(&p.UIDL, &p.Folder, &p.Key, &p.RFC822Size, &created); err != nil {
			return nil, fmt.Errorf("index: pop3 pending: %w", err)
		}
		p.Created = time.Unix(created, 0)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: pop3 pending: %w", err)
	}
	return out, nil
}

// DonePOP3Pending removes a pending download: its row and UIDL are recorded,
// or its file never reached the folder.
func (tx *Tx) DonePOP3Pending(acct AccountID, uidl string) error {
	_, err := tx.exec(`DELETE FROM pop3_pending WHERE account_id=? AND uidl=?`, acct, uidl)
	if err != nil {
		return fmt.Errorf("index: done pop3 pending: %w", err)
	}
	return nil
}
