-- Schema version 12: the archive view of `archive = true` accounts.
--
-- A message expunged upstream, or deleted locally, in an archive account
-- is not removed: it moves to the local-only folder
-- ".Archive-Deleted/<folder>" of its account (Store.Archive), and
-- gone_upstream records when (unix seconds; 0: an ordinary message).
-- accounts.archive is the account's `archive` setting as the agent or the
-- last sync recorded it (Tx.SetArchive): the local endpoints' expunge reads
-- it.
ALTER TABLE messages ADD COLUMN gone_upstream INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN archive INTEGER NOT NULL DEFAULT 0;
