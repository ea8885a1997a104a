package index

import (
	"database/sql"
	"fmt"
	"time"
)

// POP3UIDL is what the index knows of one server message of a POP3 account,
// by its UIDL (or the fetcher's substitute identity, see sync/pop3).
type POP3UIDL struct {
	MessageID MessageID // the stored copy's row; 0 if none is recorded
	StoredAt  time.Time // when the copy was committed
	DeletedAt time.Time // when it was deleted on the server; zero: not known to be
}

// POP3UIDLs returns the account's stored UIDLs.
func (tx *ReadTx) POP3UIDLs(acct AccountID) (map[string]POP3UIDL, error) {
	rows, err := tx.tx.Query(`SELECT uidl, message_id, stored_at, deleted_at FROM pop3_uidls WHERE account_id=?`, acct)
	if err != nil {
		return nil, fmt.Errorf("index: pop3 uidls: %w", err)
	}
	defer rows.Close()
	out := make(map[string]POP3UIDL)
	for rows.Next() {
		var uidl string
		var msg sql.NullInt64
		var stored, deleted int64
		if err := rows.Scan(&uidl, &msg, &stored, &deleted); err != nil {
			return nil, fmt.Errorf("index: pop3 uidls: %w", err)
		}
		out[uidl] = POP3UIDL{MessageID: MessageID(msg.Int64), StoredAt: fromUnix(stored), DeletedAt: fromUnix(deleted)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: pop3 uidls: %w", err)
	}
	return out, nil
}

// AddPOP3UIDL records that the server message uidl is stored as row msg
// (0: no row). Recording a UIDL again replaces its row and times and clears
// its deletion time.
func (tx *Tx) AddPOP3UIDL(acct AccountID, uidl string, msg MessageID, storedAt time.Time) error {
	var m any
	if msg != 0 {
		m = msg
	}
	_, err := tx.exec(`INSERT INTO pop3_uidls(account_id, uidl, message_id, stored_at) VALUES(?,?,?,?)
		ON CONFLICT(account_id, uidl) DO UPDATE SET message_id=excluded.message_id,
			stored_at=excluded.stored_at, deleted_at=0`, acct, uidl, m, storedAt.Unix())
	if err != nil {
		return fmt.Errorf("index: add pop3 uidl: %w", err)
	}
	return nil
}

// MarkPOP3Deleted records that the server messages uidls were deleted at
// the given time. Unknown UIDLs are ignored.
func (tx *Tx) MarkPOP3Deleted(acct AccountID, uidls []string, at time.Time) error {
	st, err := tx.tx.Prepare(`UPDATE pop3_uidls SET deleted_at=? WHERE account_id=? AND uidl=?`)
	if err != nil {
		return fmt.Errorf("index: mark pop3 deleted: %w", err)
	}
	defer st.Close()
	for _, u := range uidls {
		if _, err := st.Exec(at.Unix(), acct, u); err != nil {
			return fmt.Errorf("index: mark pop3 deleted: %w", err)
		}
	}
	return nil
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
	st, err := tx.tx.Prepare(`INSERT OR REPLACE INTO pop3_pending(account_id, uidl, folder_id, key, rfc822_size, created)
		VALUES(?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("index: add pop3 pending: %w", err)
	}
	defer st.Close()
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
	rows, err := tx.tx.Query(`SELECT uidl, folder_id, key, rfc822_size, created FROM pop3_pending
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
