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
// count and local MODSEQ, as recorded when the listing and the rows were
// last found equal. Every change to a row (added, removed, moved, its
// flags, key, file or UID changed) moves the MODSEQ (see rowimage.go), so
// equal MODSEQs are rows unchanged.
type FolderStamp struct {
	Dir    string // maildir.Stamp's String
	Rows   int
	ModSeq uint64
}

// String is the form recorded. Its "3;" says what vouched for it: since
// version 2, a listing in which every file is the message of its key
// (none hidden nor second, see maildir.Listing.Sorted); since 3, the rows
// by their MODSEQ. A stamp recorded before never equals one of now, so
// its folder is read once more.
func (s FolderStamp) String() string { return fmt.Sprintf("3;%s;%d;%d", s.Dir, s.Rows, s.ModSeq) }

// RowsStamp returns the folder's row count and local MODSEQ (a
// FolderStamp's Rows and ModSeq), without a scan of its rows (the count
// is kept by triggers: see sql/016_folder_counts.sql).
func (tx *ReadTx) RowsStamp(folder FolderID) (rows int, modseq uint64, err error) {
	err = tx.queryRow(`SELECT f.local_modseq, coalesce(c.rows, 0) FROM folders f
		LEFT JOIN folder_counts c ON c.folder_id=f.id WHERE f.id=?`, folder).Scan(&modseq, &rows)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return 0, 0, fmt.Errorf("index: folder %d: %w", folder, err)
	}
	return rows, modseq, nil
}

// FolderStamp returns the stamp recorded for the folder ("" when none)
// and the folder's current one for the rows (Dir empty): the listing
// is vouched for when the recorded one equals Dir of a fresh
// maildir.Stamp with these Rows and ModSeq.
func (tx *ReadTx) FolderStamp(folder FolderID) (recorded string, now FolderStamp, err error) {
	err = tx.queryRow(`SELECT stamp FROM folder_stamps WHERE folder_id=?`, folder).Scan(&recorded)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", now, fmt.Errorf("index: %w", err)
	}
	now.Rows, now.ModSeq, err = tx.RowsStamp(folder)
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

// FileRowsByKey returns the FileRow of each of the folder's rows whose key
// is in keys (keys without a row are not in the map). Each key is looked
// up as it is, byte for byte: a key need not be valid UTF-8 (another
// program's file name), which a JSON list would not keep; so they go in
// as parameters, byKeyChunk at a time.
func (tx *ReadTx) FileRowsByKey(folder FolderID, keys []string) (map[string]FileRow, error) {
	out := make(map[string]FileRow, len(keys))
	err := fileRowsIn(tx, folder, "key", keys, func(r FileRow) { out[r.Key] = r })
	return out, err
}

// FileRowsByID returns the FileRow of each row of the folder whose id is
// in ids (ids of rows removed, or now in another folder, are not in the
// map).
func (tx *ReadTx) FileRowsByID(folder FolderID, ids []MessageID) (map[MessageID]FileRow, error) {
	out := make(map[MessageID]FileRow, len(ids))
	err := fileRowsIn(tx, folder, "id", ids, func(r FileRow) { out[r.ID] = r })
	return out, err
}

// fileRowsIn calls fn with the folder's rows whose column col is one of
// vals, asking byKeyChunk at a time.
func fileRowsIn[V any](tx *ReadTx, folder FolderID, col string, vals []V, fn func(FileRow)) error {
	for len(vals) > 0 {
		chunk := vals[:min(len(vals), byKeyChunk)]
		vals = vals[len(chunk):]
		// As many parameters as the next power of two (the last value
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
		rows, err := tx.query(fileRowsQuery(col, n), args...)
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
		for rows.Next() {
			var r FileRow
			if err := rows.Scan(&r.ID, &r.UID, &r.Key, &r.File); err != nil {
				rows.Close()
				return fmt.Errorf("index: %w", err)
			}
			fn(r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}

// fileRowsQuery is fileRowsIn's query for n values of col. By key the
// (folder_id, key) index finds each row; by id the rowid does, and the
// folder is only checked ("+folder_id": not a condition the planner may
// take an index for, else it takes messages_folder_files and reads the
// whole folder's entries: at 40,000 rows 2 ms, where the rowid lookups
// take a few µs each).
func fileRowsQuery(col string, n int) string {
	folder := "folder_id=?"
	if col == "id" {
		folder = "+folder_id=?"
	}
	return `SELECT id, uid, key, file FROM messages WHERE ` + folder + ` AND ` + col + ` IN (?` + strings.Repeat(",?", n-1) + `)`
}

// byKeyChunk is how many values one query of fileRowsIn looks up.
const byKeyChunk = 256
