-- Schema version 9: what the local IMAP endpoint needs of a message that
-- its messages row does not hold, computed once from the file (see
-- imapview.go) and kept beside the row.
--
-- A side table rather than columns of messages: the sync reads messages
-- rows in bulk (SyncRows, FileRows), and a kilobyte or more of view and
-- header per row would spread them over many more pages. It is keyed by
-- the row's id: a message moved to another folder keeps its id, and so
-- its view; a removed row takes its view along (ON DELETE CASCADE).
-- sha256 is the row's hash when the view was computed: a view whose
-- row's hash differs since is stale and computed again.
--
-- Rows made before this version have no view: IMAPView computes it on
-- first use, Store.IndexIMAP for a whole folder. SearchLocal answers the
-- keys that need it (BCC, HEADER other than From/To/Cc/Subject, the
-- Date header's own day) for messages without one as documented there.
CREATE TABLE IF NOT EXISTS imap_views (
	message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
	sha256     BLOB NOT NULL,    -- messages.sha256 when the view was computed
	size       INTEGER NOT NULL, -- RFC822.SIZE: the message with CRLF line ends
	sent_day   INTEGER,          -- Date: header's day in its own zone (days since 1970-01-01); NULL: none
	header     BLOB NOT NULL,    -- the header block as stored (at most 64 KiB): HEADER, BCC and TEXT
	view       BLOB NOT NULL     -- ENVELOPE and BODYSTRUCTURE (JSON, see imapview.go)
);
-- (The small columns first: a search that reads only them does not
-- follow a row's overflow pages, and one that reads the header stops
-- before the view.)

-- SEARCH by flags, keywords and internal date (UNSEEN at every SELECT of
-- many clients) reads the index alone: the (folder, local UID) index also
-- holds them. Its name stays; it still serves look-ups by local UID.
DROP INDEX IF EXISTS messages_folder_local_uid;
CREATE INDEX messages_folder_local_uid ON messages (folder_id, local_uid, flags, keywords, internal_date);
