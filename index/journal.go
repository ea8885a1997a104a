package index

import "time"

// Intent is a journal row: an upstream side effect recorded before it is
// sent, so that a crash in between can be resolved on the next run.
type Intent struct {
	ID      int64
	Account AccountID
	Folder  FolderID
	Message MessageID
	Op      string // "append", ...
	Arg     string // op-specific, e.g. the folder's UIDNEXT before an APPEND
	Created time.Time
}

// AddIntent records an intent and returns its id. Commit it before sending
// the command it describes.
func (tx *Tx) AddIntent(in Intent) (int64, error) {
	var id int64
	err := tx.queryRow(`INSERT INTO journal(account_id, folder_id, message_id, op, arg, state, created)
		VALUES(?,?,?,?,?,'sent',?) RETURNING id`, in.Account, in.Folder, in.Message, in.Op, in.Arg, time.Now().Unix()).Scan(&id)
	return id, err
}

// DoneIntent removes an intent whose outcome has been recorded.
func (tx *Tx) DoneIntent(id int64) error {
	_, err := tx.exec(`DELETE FROM journal WHERE id=?`, id)
	return err
}

// Intents lists a folder's open intents, oldest first.
func (tx *ReadTx) Intents(folder FolderID) ([]Intent, error) {
	return tx.intents(`SELECT id, account_id, folder_id, coalesce(message_id, 0), op, arg, created
		FROM journal WHERE folder_id=? ORDER BY id`, folder)
}

// intents runs a query of journal rows (id, account, folder, message, op,
// arg, created) and returns them.
func (tx *ReadTx) intents(query string, args ...any) ([]Intent, error) {
	rows, err := tx.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Intent
	for rows.Next() {
		var in Intent
		var created int64
		if err := rows.Scan(&in.ID, &in.Account, &in.Folder, &in.Message, &in.Op, &in.Arg, &created); err != nil {
			return nil, err
		}
		in.Created = time.Unix(created, 0)
		out = append(out, in)
	}
	return out, rows.Err()
}
