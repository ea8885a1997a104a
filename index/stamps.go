package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// FolderStamp is what vouches for a folder's listing without reading it
// (see maildir.Stamp): the directories' stamp, with the folder's row
// count and largest row id, as recorded when the listing and the rows
// were last found equal.
type FolderStamp struct {
	Dir   string // maildir.Stamp's String
	Rows  int
	MaxID MessageID
}

// String is the form recorded. Its "2;" says what vouched for it: since
// version 2, a listing in which every file is the message of its key
// (none hidden nor second, see maildir.Dir.ScanHidden); a stamp recorded
// before never equals one of now, so its folder is read once more.
func (s FolderStamp) String() string { return fmt.Sprintf("2;%s;%d;%d", s.Dir, s.Rows, s.MaxID) }

// RowsStamp returns the folder's row count and largest row id (a
// FolderStamp's Rows and MaxID).
func (tx *ReadTx) RowsStamp(folder FolderID) (rows int, maxID MessageID, err error) {
	var max sql.NullInt64
	if err := tx.queryRow(`SELECT count(*), max(id) FROM messages WHERE folder_id=?`, folder).Scan(&rows, &max); err != nil {
		return 0, 0, fmt.Errorf("index: %w", err)
	}
	return rows, MessageID(max.Int64), nil
}

// FolderStamp returns the stamp recorded for the folder ("" when none)
// and the folder's current one for the rows (Dir empty): the listing
// is vouched for when the recorded one equals Dir of a fresh
// maildir.Stamp with these Rows and MaxID.
func (tx *ReadTx) FolderStamp(folder FolderID) (recorded string, now FolderStamp, err error) {
	err = tx.queryRow(`SELECT stamp FROM folder_stamps WHERE folder_id=?`, folder).Scan(&recorded)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", now, fmt.Errorf("index: %w", err)
	}
	now.Rows, now.MaxID, err = tx.RowsStamp(folder)
	return recorded, now, err
}

// SetFolderStamp records the folder's stamp (see FolderStamp).
func (s *Store) SetFolderStamp(ctx context.Context, folder FolderID, st FolderStamp) error {
	return s.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO folder_stamps(folder_id, stamp) VALUES(?, ?)
			ON CONFLICT(folder_id) DO UPDATE SET stamp=excluded.stamp`, folder, st.String())
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
		return nil
	})
}

// FilesByKey returns the file name ("cur/<name>") of each of the folder's
// rows whose key is in keys (keys without a row are not in the map). Each
// key is looked up as it is, byte for byte: a key need not be valid UTF-8
// (another program's file name), which a JSON list would not keep; so
// they go in as parameters, filesByKeyChunk at a time.
func (tx *ReadTx) FilesByKey(folder FolderID, keys []string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), filesByKeyChunk)]
		keys = keys[len(chunk):]
		// As many parameters as the next power of two (the last key
		// again): few statements to prepare and cache.
		n := 1
		for n < len(chunk) {
			n *= 2
		}
		args := make([]any, 0, n+1)
		args = append(args, folder)
		for i := range n {
			args = append(args, chunk[min(i, len(chunk)-1)])
		}
		rows, err := tx.query(`SELECT key, file FROM messages WHERE folder_id=? AND key IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		for rows.Next() {
			var k, f string
			if err := rows.Scan(&k, &f); err != nil {
				rows.Close()
				return nil, fmt.Errorf("index: %w", err)
			}
			out[k] = f
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	return out, nil
}

// filesByKeyChunk is how many keys one query of FilesByKey looks up.
const filesByKeyChunk = 256
