-- Schema version 2: POP3 downloads in flight.
--
-- The POP3 fetcher commits a row here (UIDL -> Maildir key) before it renames
-- the downloaded file from tmp/ into cur/, and replaces it with the messages
-- row and the pop3_uidls row in one later transaction. A row still here at
-- the start of a run marks the crash window between the rename and that
-- transaction: if the file with the key is in cur/ or new/, the run indexes
-- it instead of downloading the message again; otherwise the row is dropped.
CREATE TABLE pop3_pending (
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	uidl        TEXT NOT NULL,
	folder_id   INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
	key         TEXT NOT NULL,              -- Maildir key of the file
	rfc822_size INTEGER NOT NULL DEFAULT 0, -- size as LIST reported it, 0 unknown
	created     INTEGER NOT NULL,
	PRIMARY KEY (account_id, uidl)
);
