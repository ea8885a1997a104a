package index

import (
	"encoding/json"
)

// Queued upstream operations: what the local side changed that the sync
// has yet to carry to the server. The local endpoints queue expunges and
// moves as journal intents ("expunge", "move": see sync/imapsync,
// intents.go); new messages wait as rows without an upstream UID, flag
// changes as rows whose flags differ from their merge base (the
// messages_pending index holds exactly those rows).

// QueuedUpstream counts, in one query, an account's local changes waiting
// to go upstream: its open "expunge" and "move" intents, plus the messages
// of its synced folders (those with an upstream UIDVALIDITY) that have no
// upstream UID (to upload) or flags or keywords other than their merge
// base (to push). A moved message is counted once, by its intent.
func (tx *ReadTx) QueuedUpstream(acct AccountID) (int, error) {
	var n int
	err := tx.queryRow(`SELECT
		(SELECT count(*) FROM journal WHERE account_id=?1 AND op IN ('expunge','move'))
		+ (SELECT count(*) FROM folders f JOIN messages m INDEXED BY messages_pending ON m.folder_id=f.id
			WHERE f.account_id=?1 AND f.uidvalidity != 0
			AND (m.uid = 0 OR m.flags != m.synced_flags OR m.keywords != m.synced_kw)
			AND m.id NOT IN (SELECT message_id FROM journal
				WHERE account_id=?1 AND op='move' AND message_id IS NOT NULL))`, acct).Scan(&n)
	return n, err
}

// FolderQueued reports whether a folder has local changes waiting to go
// upstream: an open "expunge" or "move" intent from it, or a message
// without upstream UID or with flags or keywords other than its merge
// base.
func (tx *ReadTx) FolderQueued(folder FolderID) (bool, error) {
	var queued bool
	err := tx.queryRow(`SELECT
		EXISTS (SELECT 1 FROM journal WHERE folder_id=?1 AND op IN ('expunge','move'))
		OR EXISTS (SELECT 1 FROM messages INDEXED BY messages_pending
			WHERE folder_id=?1 AND (uid = 0 OR flags != synced_flags OR keywords != synced_kw))`, folder).Scan(&queued)
	return queued, err
}

// AccountIntents lists an account's open intents of the given ops, oldest
// first, in one query.
func (tx *ReadTx) AccountIntents(acct AccountID, ops ...string) ([]Intent, error) {
	return tx.intents(`SELECT id, account_id, coalesce(folder_id, 0), coalesce(message_id, 0), op, arg, created
		FROM journal WHERE account_id=? AND op IN (SELECT value FROM json_each(?)) ORDER BY id`, acct, jsonList(ops))
}

func jsonList(ss []string) string {
	b, _ := json.Marshal(ss)
	if ss == nil {
		return "[]"
	}
	return string(b)
}
