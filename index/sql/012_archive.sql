-- Schema version 12: the archive view of `archive = true` accounts.
--
-- A message expunged upstream, or deleted locally, in an archive account
-- is not removed: it moves to the local-only folder
-- ".Archive-Deleted/<folder>" of its account (Store.Archive), and
-- archived records it, with when (unix seconds): the row is gone
-- upstream. archive_accounts holds the accounts whose `archive` setting
-- is on, as the agent or the last sync recorded it (Tx.SetArchive): the
-- local endpoints' expunge reads it. Both go with their row (foreign
-- keys are on).
--
-- IF NOT EXISTS: an index set back to an older version migrates again.
CREATE TABLE IF NOT EXISTS archived (
	message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
	at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS archive_accounts (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE
);
