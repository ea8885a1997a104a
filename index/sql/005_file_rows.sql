-- Schema version 5: what an incremental sync reads of a folder, from
-- indexes alone.
--
-- The covering index of version 3 also holds the UID, so FileRows (id, key,
-- file name and UID of every message, compared with the Maildir and the
-- server) reads no table rows.
DROP INDEX messages_folder_key_file;
CREATE INDEX messages_folder_files ON messages (folder_id, key, file, uid);

-- The messages that wait for the sync (PendingRows, SyncCounts): not
-- upstream yet, or with flags not synced. A partial index: it holds only
-- them, so finding them costs nothing however large the folder is.
CREATE INDEX messages_pending ON messages (folder_id)
	WHERE uid = 0 OR flags != synced_flags OR keywords != synced_kw;
