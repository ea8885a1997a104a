-- Schema version 1: the catalogue of the local store.
--
-- Every table keeps state that is either rebuildable from the Maildir (messages,
-- flags, headers) or cheap to refetch from the server (folder sync state). The
-- only rows that cannot be rebuilt are the upstream journal (local changes not
-- yet pushed) and the POP3 UIDL list (which messages we already have).

CREATE TABLE accounts (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	last_sync  INTEGER NOT NULL DEFAULT 0, -- unix seconds of the last run that reached the server
	last_error TEXT NOT NULL DEFAULT ''    -- why the last run failed as a whole (e.g. login)
);

-- One row per mirrored folder. remote_* is the upstream state as of the last
-- completed sync step; local_* is our own numbering for the local endpoints.
CREATE TABLE folders (
	id                INTEGER PRIMARY KEY,
	account_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name              TEXT NOT NULL,              -- UTF-8, '/'-separated
	path              TEXT NOT NULL,              -- Maildir path relative to the store root
	special_use       TEXT NOT NULL DEFAULT '',   -- \Sent, \Drafts, ... as LISTed upstream
	uidvalidity       INTEGER NOT NULL DEFAULT 0, -- upstream UIDVALIDITY (0: never selected)
	uidnext           INTEGER NOT NULL DEFAULT 0, -- upstream UIDs below this are known
	highestmodseq     INTEGER NOT NULL DEFAULT 0, -- upstream CONDSTORE state (0: none)
	local_uidvalidity INTEGER NOT NULL,
	local_uidnext     INTEGER NOT NULL DEFAULT 1,
	local_modseq      INTEGER NOT NULL DEFAULT 1,
	last_sync         INTEGER NOT NULL DEFAULT 0, -- unix seconds of the last successful sync
	last_error        TEXT NOT NULL DEFAULT '',
	UNIQUE (account_id, name)
);

-- One row per message file. key is the Maildir unique key (stable across flag
-- renames); file is the last known base name and sub ("cur" or "new").
CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	folder_id     INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
	key           TEXT NOT NULL,
	file          TEXT NOT NULL,
	uid           INTEGER NOT NULL DEFAULT 0,  -- upstream UID, 0 when not (yet) upstream
	local_uid     INTEGER NOT NULL,
	flags         INTEGER NOT NULL DEFAULT 0,  -- maildir.Flags bit set
	keywords      TEXT NOT NULL DEFAULT '',    -- space-separated, sorted
	synced_flags  INTEGER NOT NULL DEFAULT 0,  -- flags of the last common state (merge base)
	synced_kw     TEXT NOT NULL DEFAULT '',
	size          INTEGER NOT NULL,            -- bytes on disk (LF line ends)
	rfc822_size   INTEGER NOT NULL DEFAULT 0,  -- upstream RFC822.SIZE (CRLF), 0 unknown
	internal_date INTEGER NOT NULL DEFAULT 0,  -- unix seconds
	modseq        INTEGER NOT NULL,            -- local MODSEQ of the last change
	message_id    TEXT NOT NULL DEFAULT '',
	date          INTEGER NOT NULL DEFAULT 0,
	from_addr     TEXT NOT NULL DEFAULT '',
	to_addr       TEXT NOT NULL DEFAULT '',
	cc_addr       TEXT NOT NULL DEFAULT '',
	subject       TEXT NOT NULL DEFAULT '',
	sha256        BLOB NOT NULL,
	UNIQUE (folder_id, key)
);
CREATE INDEX messages_folder_uid ON messages (folder_id, uid);
CREATE INDEX messages_folder_local_uid ON messages (folder_id, local_uid);
CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_sha256 ON messages (sha256);

-- Full-text search over decoded headers and text bodies; rowid = messages.id.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	subject, from_addr, to_addr, body,
	content = '', contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 2'
);

-- Local changes waiting to be pushed upstream, in order (drained by sync).
CREATE TABLE journal (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	folder_id  INTEGER,
	message_id INTEGER,
	op         TEXT NOT NULL,   -- append | flags | expunge | move | create | rename | delete
	arg        TEXT NOT NULL DEFAULT '',
	state      TEXT NOT NULL DEFAULT 'pending', -- pending | sent (intent recorded, result unknown)
	created    INTEGER NOT NULL
);

-- POP3: which server messages we already stored.
CREATE TABLE pop3_uidls (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	uidl       TEXT NOT NULL,
	message_id INTEGER,            -- messages.id of the stored copy (NULL if removed locally)
	stored_at  INTEGER NOT NULL,
	deleted_at INTEGER NOT NULL DEFAULT 0, -- when deleted on the server
	PRIMARY KEY (account_id, uidl)
);
