package index

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AccountID identifies an account row.
type AccountID int64

// FolderID identifies a folder row.
type FolderID int64

// Folder is one mirrored folder and its sync state.
type Folder struct {
	ID         FolderID
	Account    AccountID
	Name       string // UTF-8, '/'-separated
	Path       string // Maildir path relative to the store root
	SpecialUse string

	// Upstream state as of the last completed sync.
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64

	// Our own numbering, for the local endpoints.
	LocalUIDValidity uint32
	LocalUIDNext     uint32
	LocalModSeq      uint64

	LastSync  time.Time // zero: never
	LastError string
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("index: not found")

// EnsureAccount returns the id of the named account, creating its row.
func (tx *Tx) EnsureAccount(name string) (AccountID, error) {
	// Looked up first: an account that exists changes nothing, and a
	// transaction that changes nothing commits without a write.
	id, err := tx.Account(name)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return id, err
	}
	err = tx.queryRow(`INSERT INTO accounts(name) VALUES(?) RETURNING id`, name).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("index: account %q: %w", name, err)
	}
	return id, nil
}

// Account returns the id of the named account, or ErrNotFound.
func (tx *ReadTx) Account(name string) (AccountID, error) {
	var id AccountID
	err := tx.queryRow(`SELECT id FROM accounts WHERE name=?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// AccountState is an account's last run outcome.
type AccountState struct {
	ID        AccountID
	Name      string
	LastSync  time.Time
	LastError string
}

// Accounts lists all accounts with their last run outcome.
func (tx *ReadTx) Accounts() ([]AccountState, error) {
	rows, err := tx.query(`SELECT id, name, last_sync, last_error FROM accounts ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AccountState
	for rows.Next() {
		var a AccountState
		var t int64
		if err := rows.Scan(&a.ID, &a.Name, &t, &a.LastError); err != nil {
			return nil, err
		}
		a.LastSync = fromUnix(t)
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAccountResult records the outcome of a run of the account: on success
// (errMsg == "") the time and a cleared error; on failure only the error.
func (tx *Tx) SetAccountResult(id AccountID, at time.Time, errMsg string) error {
	var err error
	if errMsg == "" {
		_, err = tx.exec(`UPDATE accounts SET last_sync=?, last_error='' WHERE id=?`, at.Unix(), id)
	} else {
		_, err = tx.exec(`UPDATE accounts SET last_error=? WHERE id=?`, errMsg, id)
	}
	return err
}

const folderCols = `id, account_id, name, path, special_use, uidvalidity, uidnext, highestmodseq,
	local_uidvalidity, local_uidnext, local_modseq, last_sync, last_error`

func scanFolder(row interface{ Scan(...any) error }) (*Folder, error) {
	var f Folder
	var lastSync int64
	err := row.Scan(&f.ID, &f.Account, &f.Name, &f.Path, &f.SpecialUse, &f.UIDValidity, &f.UIDNext,
		&f.HighestModSeq, &f.LocalUIDValidity, &f.LocalUIDNext, &f.LocalModSeq, &lastSync, &f.LastError)
	if err != nil {
		return nil, err
	}
	if lastSync != 0 {
		f.LastSync = time.Unix(lastSync, 0)
	}
	return &f, nil
}

// EnsureFolder returns the folder row for (account, name), creating it with
// the given Maildir path (relative to the store root) if it does not exist.
func (tx *Tx) EnsureFolder(acct AccountID, name, path string) (*Folder, error) {
	f, err := tx.FolderByName(acct, name)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// Local UIDVALIDITY: seconds since epoch, made unique by bumping past any
	// existing value, so a recreated folder never reuses a (UIDVALIDITY, UID).
	uv := uint32(time.Now().Unix())
	var maxUV sql.NullInt64
	if err := tx.queryRow(`SELECT max(local_uidvalidity) FROM folders`).Scan(&maxUV); err != nil {
		return nil, err
	}
	if maxUV.Valid && int64(uv) <= maxUV.Int64 {
		uv = uint32(maxUV.Int64 + 1)
	}
	row := tx.queryRow(`INSERT INTO folders(account_id, name, path, local_uidvalidity)
		VALUES(?, ?, ?, ?) RETURNING `+folderCols, acct, name, path, uv)
	f, err = scanFolder(row)
	if err != nil {
		return nil, fmt.Errorf("index: create folder %q: %w", name, err)
	}
	tx.record(Change{Kind: FolderCreated, Account: acct, Folder: f.ID, ModSeq: f.LocalModSeq, Name: name})
	return f, nil
}

// FolderByName returns the folder (account, name) or ErrNotFound.
func (tx *ReadTx) FolderByName(acct AccountID, name string) (*Folder, error) {
	f, err := scanFolder(tx.queryRow(`SELECT `+folderCols+` FROM folders WHERE account_id=? AND name=?`, acct, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return f, err
}

// Folder returns the folder with the given id or ErrNotFound.
func (tx *ReadTx) Folder(id FolderID) (*Folder, error) {
	f, err := scanFolder(tx.queryRow(`SELECT `+folderCols+` FROM folders WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return f, err
}

// Folders lists an account's folders by name.
func (tx *ReadTx) Folders(acct AccountID) ([]*Folder, error) {
	rows, err := tx.query(`SELECT `+folderCols+` FROM folders WHERE account_id=? ORDER BY name`, acct)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Folder
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// SetRemoteState records the upstream state a completed sync step reached.
func (tx *Tx) SetRemoteState(id FolderID, uidValidity, uidNext uint32, highestModSeq uint64) error {
	// Only when it changes: SQLite writes a row it updates to the same
	// values.
	_, err := tx.exec(`UPDATE folders SET uidvalidity=?, uidnext=?, highestmodseq=?
		WHERE id=? AND (uidvalidity, uidnext, highestmodseq) IS NOT (?, ?, ?)`,
		uidValidity, uidNext, highestModSeq, id, uidValidity, uidNext, highestModSeq)
	return err
}

// SetSpecialUse records the folder's special-use attribute.
func (tx *Tx) SetSpecialUse(id FolderID, use string) error {
	_, err := tx.exec(`UPDATE folders SET special_use=? WHERE id=?`, use, id)
	return err
}

// SetSyncResult records the outcome of a sync of the folder: on success
// (errMsg == "") the time and a cleared error; on failure only the error.
func (tx *Tx) SetSyncResult(id FolderID, at time.Time, errMsg string) error {
	var err error
	if errMsg == "" {
		_, err = tx.exec(`UPDATE folders SET last_sync=?, last_error='' WHERE id=?`, at.Unix(), id)
	} else {
		_, err = tx.exec(`UPDATE folders SET last_error=? WHERE id=?`, errMsg, id)
	}
	return err
}

// DeleteFolder removes the folder row and all its message rows (and
// tombstones). A folder that does not exist is no error.
func (tx *Tx) DeleteFolder(id FolderID) error {
	if _, err := tx.exec(`DELETE FROM messages_fts WHERE rowid IN (SELECT id FROM messages WHERE folder_id=?)`, id); err != nil {
		return err
	}
	var c Change
	err := tx.queryRow(`DELETE FROM folders WHERE id=? RETURNING account_id, name, local_modseq`, id).Scan(&c.Account, &c.Name, &c.ModSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	c.Kind, c.Folder = FolderRemoved, id
	delete(tx.modseqs, id)
	tx.record(c)
	return nil
}

// FolderCount is a folder with its message count, for status reports.
type FolderCount struct {
	Folder
	Messages int
}

// FolderCounts lists an account's folders with message counts.
func (tx *ReadTx) FolderCounts(acct AccountID) ([]FolderCount, error) {
	folders, err := tx.Folders(acct)
	if err != nil {
		return nil, err
	}
	rows, err := tx.query(`SELECT folder_id, count(*) FROM messages
		WHERE folder_id IN (SELECT id FROM folders WHERE account_id=?) GROUP BY folder_id`, acct)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[FolderID]int{}
	for rows.Next() {
		var id FolderID
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		counts[id] = n
	}
	out := make([]FolderCount, len(folders))
	for i, f := range folders {
		out[i] = FolderCount{Folder: *f, Messages: counts[f.ID]}
	}
	return out, rows.Err()
}

// RenameFolder gives a folder a new name and Maildir path (relative to the
// store root).
func (tx *Tx) RenameFolder(id FolderID, name, path string) error {
	c := Change{Kind: FolderRenamed, Folder: id, Name: name}
	err := tx.queryRow(`SELECT account_id, name, local_modseq FROM folders WHERE id=?`, id).Scan(&c.Account, &c.OldName, &c.ModSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("index: rename folder %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if _, err := tx.exec(`UPDATE folders SET name=?, path=? WHERE id=?`, name, path, id); err != nil {
		return err
	}
	if c.OldName != name {
		tx.record(c)
	}
	return nil
}

// ResetRemoteState forgets a folder's upstream state (it was recreated
// upstream): its UIDs are matched again on the next sync.
func (tx *Tx) ResetRemoteState(id FolderID) error {
	if _, err := tx.exec(`UPDATE folders SET uidvalidity=0, uidnext=0, highestmodseq=0 WHERE id=?`, id); err != nil {
		return err
	}
	return tx.ClearUIDs(id)
}

// FolderByPath returns the folder whose Maildir is at path (relative to
// the store root, slash-separated, as rows record it) or ErrNotFound.
func (tx *ReadTx) FolderByPath(path string) (*Folder, error) {
	f, err := scanFolder(tx.queryRow(`SELECT `+folderCols+` FROM folders WHERE path=?`, path))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return f, err
}

// foldersByID returns the rows of the folders ids, each read once.
func (tx *ReadTx) foldersByID(ids ...FolderID) (map[FolderID]*Folder, error) {
	out := make(map[FolderID]*Folder, len(ids))
	for _, id := range ids {
		if out[id] != nil {
			continue
		}
		f, err := tx.Folder(id)
		if err != nil {
			return nil, fmt.Errorf("index: folder %d: %w", id, err)
		}
		out[id] = f
	}
	return out, nil
}
