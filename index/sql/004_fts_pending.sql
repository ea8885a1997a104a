-- Schema version 4: full-text indexing off the sync's critical path. A
-- message stored with NewMessage.DeferText gets a row here instead of its
-- full-text entry; IndexPending (run by `postfach search`, `postfach
-- index`, and later the daemon when idle) reads the file and fills it in.
CREATE TABLE fts_pending (
	message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE
);
