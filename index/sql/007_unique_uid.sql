-- Schema version 7: at most one row per upstream UID in a folder.
--
-- Two rows holding one UID (two syncs of one account racing, or a copy of a
-- message file that kept its ,U= tag) made deleting one local copy delete
-- the server's message, and then the other copy. From now on the index
-- refuses a second row with a UID a row of its folder holds: a second file
-- with that tag is a new local message (a copy), indexed with UID 0.
--
-- Rows that already share a UID all lose it (UID 0: not known upstream).
-- The sync then matches one present copy to the server message again by
-- content (Message-ID and size), uploads the other copies as new messages,
-- and forgets rows whose file is gone, so no copy and no server message is
-- deleted because of the duplicate.
UPDATE messages SET uid = 0
WHERE uid != 0 AND (folder_id, uid) IN (
	SELECT folder_id, uid FROM messages WHERE uid != 0
	GROUP BY folder_id, uid HAVING COUNT(*) > 1
);
CREATE UNIQUE INDEX messages_folder_uid_once ON messages (folder_id, uid) WHERE uid != 0;
