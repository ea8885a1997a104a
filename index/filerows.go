package index

import (
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// FileRows returns the id, key, file name and UID of every message of a
// folder, as FileRowList does, as Partial messages; Fill loads the other
// fields of those a caller needs.
func (tx *ReadTx) FileRows(folder FolderID) ([]*Message, error) {
	list, err := tx.FileRowList(folder)
	if err != nil {
		return nil, err
	}
	rows := make([]Message, len(list))
	out := make([]*Message, len(list))
	for i, r := range list {
		rows[i] = Message{ID: r.ID, Folder: folder, UID: r.UID, Key: r.Key, File: r.File, Partial: true}
		out[i] = &rows[i]
	}
	return out, nil
}

// FileRow is what a sync compares of a message with the Maildir listing
// and the server: its id, key, file name and UID. The rows of one
// FileRowList share one string for their keys and file names.
type FileRow struct {
	ID   MessageID
	UID  uint32
	Key  string
	File string // "cur/<name>" or "new/<name>"
}

// fileRowSQL is one row's part of the string that FileRowList and
// FileRowChunks read (see FileRowList; eachFileRow parses it).
const fileRowSQL = `id || ' ' || uid || ' ' ||
	CASE WHEN substr(CAST(file AS BLOB), 5, length(CAST(key AS BLOB))) = CAST(key AS BLOB)
		THEN '=' || length(CAST(key AS BLOB)) || ' ' || length(CAST(file AS BLOB)) || ' ' || file
		ELSE length(CAST(key AS BLOB)) || ' ' || length(CAST(file AS BLOB)) || ' ' || file || key END`

// FileRowList returns the FileRow of every message of a folder, from a
// covering index, in no particular order. A sync holds every folder's
// rows for a while, so they are compact: 48 bytes each, and their part of
// one string, where a key that begins the file's base name (as postfach
// names files) is not stored twice.
//
// The rows come as one length-prefixed string ("<id> <uid> <klen> <flen>
// <file><key>" each, where klen is "=<n>" and the key is left out when it
// begins the base name) rather than one result row each: for a folder of
// 10,000 messages that is about half the time, most of which is the
// driver's cost per result row.
func (tx *ReadTx) FileRowList(folder FolderID) ([]FileRow, error) {
	var all sql.NullString
	err := tx.queryRow(`SELECT group_concat(`+fileRowSQL+`, '') FROM messages WHERE folder_id=?`, folder).Scan(&all)
	if err != nil {
		return nil, err
	}
	// Two passes: the first counts the rows, so that the array the rows
	// live in is exactly as long (an estimate from the string's length was
	// 1.8 times too long: 24 MB more on a 100,000-message account).
	n, err := eachFileRow(all.String, func(FileRow) {})
	if err != nil {
		return nil, err
	}
	rows := make([]FileRow, 0, n)
	if _, err := eachFileRow(all.String, func(r FileRow) { rows = append(rows, r) }); err != nil {
		return nil, err
	}
	return rows, nil
}

// FileRowChunks calls fn with the FileRows of a folder (see FileRowList)
// in key order (SQLite's BINARY collation: byte order, as Go compares
// strings), at most n at a time, so that a caller comparing them with a
// sorted listing never holds them all. The slice is fn's only until it
// returns; the strings are its to keep (a kept one keeps its chunk's
// string in memory: strings.Clone what is kept long).
func (tx *ReadTx) FileRowChunks(folder FolderID, n int, fn func([]FileRow) error) error {
	var buf []FileRow
	var after *string
	for {
		var all sql.NullString
		var err error
		if after == nil {
			err = tx.queryRow(`SELECT group_concat(r, '') FROM (SELECT `+fileRowSQL+` AS r FROM messages
				INDEXED BY messages_folder_files WHERE folder_id=? ORDER BY key LIMIT ?)`, folder, n).Scan(&all)
		} else {
			err = tx.queryRow(`SELECT group_concat(r, '') FROM (SELECT `+fileRowSQL+` AS r FROM messages
				INDEXED BY messages_folder_files WHERE folder_id=? AND key > ? ORDER BY key LIMIT ?)`, folder, *after, n).Scan(&all)
		}
		if err != nil {
			return err
		}
		buf = buf[:0]
		if _, err := eachFileRow(all.String, func(r FileRow) { buf = append(buf, r) }); err != nil {
			return err
		}
		if len(buf) == 0 {
			return nil
		}
		// (group_concat's order is the subquery's in practice, not by
		// promise: sorted again, which costs nothing when it is.)
		if !slices.IsSortedFunc(buf, func(a, b FileRow) int { return strings.Compare(a.Key, b.Key) }) {
			slices.SortFunc(buf, func(a, b FileRow) int { return strings.Compare(a.Key, b.Key) })
		}
		last := buf[len(buf)-1].Key
		after = &last
		if err := fn(buf); err != nil {
			return err
		}
		if len(buf) < n {
			return nil
		}
	}
}

// eachFileRow calls fn with each row of FileRowList's string and returns
// how many there were.
func eachFileRow(s string, fn func(FileRow)) (int, error) {
	malformed := errors.New("index: file rows: malformed")
	token := func() (string, error) {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return "", malformed
		}
		t := s[:i]
		s = s[i+1:]
		return t, nil
	}
	num := func() (int64, error) {
		t, err := token()
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(t, 10, 64)
	}
	take := func(n int64) (string, error) {
		if n < 0 || n > int64(len(s)) {
			return "", malformed
		}
		v := s[:n]
		s = s[n:]
		return v, nil
	}
	count := 0
	for s != "" {
		id, err := num()
		if err != nil {
			return 0, err
		}
		uid, err := num()
		if err != nil {
			return 0, err
		}
		kt, err := token()
		if err != nil {
			return 0, err
		}
		inName := strings.HasPrefix(kt, "=")
		klen, err := strconv.ParseInt(strings.TrimPrefix(kt, "="), 10, 64)
		if err != nil {
			return 0, err
		}
		flen, err := num()
		if err != nil {
			return 0, err
		}
		file, err := take(flen)
		if err != nil {
			return 0, err
		}
		var key string
		switch {
		case !inName:
			key, err = take(klen)
		case klen == 0:
		case klen > 0 && int64(len(file)) >= 4+klen:
			key = file[4 : 4+klen]
		default:
			err = malformed
		}
		if err != nil {
			return 0, err
		}
		fn(FileRow{ID: MessageID(id), UID: uint32(uid), Key: key, File: file})
		count++
	}
	return count, nil
}
