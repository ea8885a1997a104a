-- Schema version 11: the search language (query.go).
--
-- The full-text table gets separate To and Cc columns and the attachment
-- names; its text is folded (searchtext.go). It is rebuilt: every message
-- is queued in fts_pending, and IndexPending (postfach search first, the
-- agent when idle) fills in its entry, its parts and their names again.
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	subject, from_addr, to_addr, cc_addr, body, attachments,
	content = '', contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 2'
);
INSERT OR IGNORE INTO fts_pending(message_id) SELECT id FROM messages;

-- The MIME parts of each message (leaves, not multiparts): their type
-- (lower case, no parameters), file name (decoded; '' for none) and
-- whether it is an attachment (Content-Disposition attachment or a file
-- name). Written with the full-text entry (IndexPending).
CREATE TABLE IF NOT EXISTS parts (
	message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
	mime_type  TEXT NOT NULL,
	name       TEXT NOT NULL DEFAULT '',
	attachment INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS parts_message ON parts (message_id);
CREATE INDEX IF NOT EXISTS parts_mime_type ON parts (mime_type);
CREATE INDEX IF NOT EXISTS parts_attachment ON parts (message_id) WHERE attachment = 1;

-- A message's date for search (querycompile.go sortDate: keep equal):
-- newest first, before:/after:/date:.
CREATE INDEX IF NOT EXISTS messages_sort_date ON messages ((CASE WHEN date != 0 THEN date ELSE internal_date END));
CREATE INDEX IF NOT EXISTS messages_folder_sort_date ON messages (folder_id, (CASE WHEN date != 0 THEN date ELSE internal_date END));
