-- Schema version 8: what changed in a folder since a MODSEQ, in one query.
--
-- Every change to a message (added, flags or keywords changed, moved out
-- or in, removed) gives it, or for a removal its tombstone, the folder's
-- next local MODSEQ (folders.local_modseq). A removed message (or one
-- moved to another folder) leaves a tombstone here with its local UID, so
-- the local endpoints can report it as expunged (IDLE, CONDSTORE, later
-- QRESYNC's VANISHED). Local UIDs are never reused (local_uidnext only
-- grows), so (folder_id, local_uid) names one message for good. A
-- folder's tombstones go with its row.
--
-- IF NOT EXISTS: an index set back to an older version (a test that builds
-- an older schema's state does) migrates again.
CREATE TABLE IF NOT EXISTS tombstones (
	folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
	local_uid INTEGER NOT NULL,
	modseq    INTEGER NOT NULL, -- the folder's local MODSEQ of the removal
	PRIMARY KEY (folder_id, local_uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones_folder_modseq ON tombstones (folder_id, modseq);

-- ChangesSince reads the messages changed since a MODSEQ from this index.
CREATE INDEX IF NOT EXISTS messages_folder_modseq ON messages (folder_id, modseq);
