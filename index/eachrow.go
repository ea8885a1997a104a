package index

// EachRow calls fn with each message row of a folder, ordered as Messages
// orders them (by upstream UID, messages not upstream first), with the
// fields Fill loads and the Date header: one row at a time, so that a
// caller keeping little of each (sync/migrate) never holds the folder's
// rows. The Message is fn's only until it returns (it is reused); its
// strings are fn's to keep. fn may run other queries in tx, but not
// EachRow (see query).
func (tx *ReadTx) EachRow(folder FolderID, fn func(*Message) error) error {
	rows, err := tx.query(`SELECT `+syncCols+`, date FROM messages WHERE folder_id=? ORDER BY uid, id`, folder)
	if err != nil {
		return err
	}
	defer rows.Close()
	var m Message
	for rows.Next() {
		var date int64
		m = Message{}
		if err := scanSyncRow(rows, &m, &date); err != nil {
			return err
		}
		m.Header.Date = fromUnix(date)
		if err := fn(&m); err != nil {
			return err
		}
	}
	return rows.Err()
}
