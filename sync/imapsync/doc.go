// Package imapsync keeps the folders of one IMAP account and the local
// store (package maildir for content, package index for state) in step, in
// both directions.
//
// # One run
//
//  1. LIST the account's folders (with SPECIAL-USE and, where the server has
//     LIST-STATUS, each folder's MESSAGES/UIDNEXT/UIDVALIDITY/HIGHESTMODSEQ
//     in the same round trip) and keep those the include/exclude patterns
//     select (Match). The STATUS serves to skip folders unchanged on both
//     sides (step 4): it is not asked when no known folder can be, every
//     one having changed here since its stamp (vouch); it would cost the
//     server a look into each folder, one after the other, that the
//     folders' SELECTs then make again side by side (at 100,000 messages,
//     a quarter of a second of Dovecot's time before any folder starts). Server names become local names by one mapping, both
//     ways (FolderNames): the personal namespace prefix ("INBOX." on many
//     hosting providers' servers) dropped, the delimiter made '/', then
//     folder_map; the prefix in use is the account's, recorded in
//     <account>/.postfach-namespace (namespace.go). Meanwhile every known
//     folder's directory listing and index rows are read (prescan): only
//     key, file name and UID of each row, from a covering index, held
//     compact (index.FileRow), and of the listing only how it differs from
//     the rows. Whole rows are loaded later only for the messages a run
//     touches: a folder's plan holds the others by UID and id alone
//     (quietRows), so memory follows the change, not the mailbox. A folder whose
//     stamp vouches for its listing is not read at all: the identity and
//     times of its cur/ and new/, with its row count and largest row id,
//     equal to those recorded when a run last found listing and rows equal
//     between two equal stamps (maildir.Stamp, index.FolderStamp; a stamp
//     younger than the filesystem's clock tick, with a wide margin,
//     vouches for nothing: maildir.Stamp.Racy). So a no-change run of a
//     large mailbox reads no listing and loads no rows. A run that changes
//     a folder records its stamp at its end too (end stamps, endstamp.go:
//     on Linux, the folder watched with inotify from before its scan, and
//     every key touched meanwhile checked on disk and in the index), so
//     the next run reads it only if another program changed it since.
//     A folder that was changed is compared, where it can be, with the
//     image of its rows (index.RowImage: per row its id, UID and a hash of
//     its key and file name, recorded as of a local MODSEQ and brought up
//     to date with the rows changed since) instead of with the rows
//     themselves (imagediff.go): only the files the image lacks and the
//     rows no file matched are looked up; where the image cannot tell (a
//     key with two files, counts that do not add up), the rows are read.
//     As soon as the prescan or the LIST shows a folder to plan, the index
//     file is asked into the page cache (index.Store.Prefetch): the plans
//     read and write rows all over it under the store's one writer, and
//     out of the cache each row was a disk read of its own (at 100,000
//     messages, a quarter of an incremental run's time after a while idle).
//  2. Folder level (folderops.go): folders created, renamed or deleted on
//     either side are carried over; the actions are planned first and then
//     carried out, so a dry run lists exactly what a real run does. Server
//     folders that would share one local folder (folder_map, the look-alike
//     of '/' under another delimiter, INBOX in another case) are not synced
//     at all, with one error line. A rename is recognized by UIDVALIDITY,
//     which the server keeps across RENAME and the Maildir records in
//     .postfach-uidvalidity, confirmed by the folder's content (two folders
//     may share a UIDVALIDITY), so no message moves. A folder missing from
//     the LIST is gone only once STATUS confirms it. Removing a folder is
//     deleting its messages: past MaxDeletePercent unless Force, and a
//     local file without a copy upstream is moved to Recovered/<folder>
//     instead of being deleted. A folder action the server refuses (CREATE,
//     RENAME, DELETE answered NO) fails that folder alone: it is reported,
//     left out of the run and tried again on the next; so is a folder whose
//     SELECT is refused. Only a lost connection ends the account's run.
//  3. Queued changes, then moves. What the local endpoints changed through
//     the store's door and queued as journal intents (intents.go: "expunge",
//     "move") is carried out first: STORE \Deleted UNCHANGEDSINCE the
//     recorded HIGHESTMODSEQ and UID EXPUNGE of exactly the UIDs expunged
//     here, UID MOVE (one per destination) of the messages moved here, the
//     moved rows taking their new UIDs from COPYUID. Then (moves.go) a file
//     that left one local folder for another (same Maildir key) becomes a
//     UID MOVE upstream. So no plan uploads a moved message again or
//     fetches an expunged one. Their flag changes through the door
//     (index.Store.SetFlags without a merge base) are ordinary local flag
//     changes, pushed by step 4. From its first connection to its end, a
//     run (not a dry run) holds the account's turn (index.Store.SyncTurn):
//     the local endpoints' changes wait, so what the run read of the
//     Maildir and the index is what it acts on; a listing read before the
//     turn is read again if a local change came in between.
//  4. Per folder (skip.go, plan.go), in parallel over Options.Connections
//     connections (dialed by sync/imapconn, with a MULTIAPPEND uploader
//     beside them where the server has it, dialed as soon as the prescan
//     finds files or rows to upload, its folders' APPENDs pipelined, and
//     logged out of beside the others; those of the folders changed
//     here are dialed as soon as the stamps tell, beside the first, the
//     others once the LIST shows what changed upstream). A folder whose LIST-STATUS equals the recorded state, whose
//     Maildir still matches the index and that has nothing to push is done
//     without a SELECT: a no-change resync is one LIST plus a few stat(2)
//     calls and row counts per folder, the counts read with the stamps
//     while the server is dialed, and one commit of the folders' sync
//     times (job.go: releaseAll). Otherwise: SELECT (made ahead while
//     the Maildir is read when the LIST asked no STATUS, the largest
//     folder's on the first connection, the others' on the connections
//     dialed ahead: ahead.go); ask what changed
//     upstream (CONDSTORE CHANGEDSINCE for flags and UID SEARCH for
//     expunges, the SEARCH sent behind the FETCH without waiting for its
//     answer, and, when new local files may be copies of a few new server
//     messages, the FETCH of those messages' identities behind them);
//     reconcile the Maildir with the index while the answers come in
//     (files the index does not know are indexed from disk, renames by
//     other programs are flag changes, missing files are local deletions:
//     plan.go open, serverread.go earlyRead); or, on a first run, after a
//     lost index or a UIDVALIDITY change, reconcile first, then one FETCH
//     of UID/FLAGS/RFC822.SIZE of the whole folder. Commands sent in a row are read side by side
//     where more than one can carry FETCH responses: Dovecot answers the
//     first only after the responses of the last, and go-imap's reader
//     stops at 128 unread responses of a command, or at a literal.
//     Then merge and apply, below: local deletions are expunged upstream
//     first, then the new local messages go up on the uploader while the
//     folder's own connection applies the flag changes, the server's
//     deletions and the downloads (expunges first: the state the refresh
//     after a push proves is the server's own only when its last change
//     is one a FETCH shows).
//  5. New server messages are fetched: a few by the folder's own worker, in
//     the folder it has selected, after its flag changes; more in chunks
//     that any worker may take, queued as soon as the folder's plan knows
//     them, before its flag changes are carried out (plan.go queueAhead:
//     those new since the last run; a worker done with its own folder
//     takes them meanwhile).
//     Bodies stream from the socket into tmp/ (CRLF turned into LF, hashed on
//     the way); nothing holds a whole message in memory. A body that ends
//     before the size its literal announced (the connection died in the
//     middle of it) is an error and is never committed: the next run fetches
//     the message again (fetch.go, readMessage). So is a body larger than
//     the server's RFC822.SIZE allows (see Hostile servers). One committer
//     hands each batch to the store's door (index.Store.Deliver): BatchSize
//     messages, or fewer when 250 ms passed since the first, when no
//     FETCH of bodies is left running, or, once the task streaming is the
//     run's last, whenever nothing more waits. The door makes the batch
//     durable (maildir.Syncer: one syncfs for the files of 128 or more not
//     synced yet, else an fsync per file; each file's fsync is started as
//     its body arrives, maildir.Delivery.SyncAhead, while fewer than 128
//     wait, or 512 when no chunk of downloads is queued: an incremental
//     run's downloads then need no syncfs, which writes back every dirty
//     page of the file system), renames the files into cur/ (`<key>,U=<uid>:2,<flags>`)
//     or, unread (no \Seen), into new/ (`<key>,U=<uid>`, see
//     maildir.Dir.Commit; a mail reader's move to cur/ is then a flag
//     change like any rename), syncs the directories, and only then
//     commits the batch's rows in one transaction.
//  6. When every chunk of a folder is committed, its UIDNEXT and
//     HIGHESTMODSEQ are recorded.
//
// # Partial runs
//
// Options.Only names the folders a push saw change (the agent's IDLE and
// file watchers): such a run LISTs as usual but skips step 2, reads only
// the named folders (and, if a named folder has new or vanished files,
// the others' listings for step 3) and plans only them. Anything about a
// named folder that step 2 would have to decide (not listed, never
// synced, a new UIDVALIDITY, its Maildir gone) makes the run a full one,
// so a partial run never takes an absent folder for a deleted one
// (only.go). The agent's periodic full run remains the source of truth.
//
// # Push
//
// IdleWatcher (watch.go) keeps the account's idle folders in IMAP IDLE,
// one connection each, and names a folder whenever the server reports a
// change there, for the agent to sync it alone (Options.Only). It holds
// no state and writes nothing.
//
// # Merge rules
//
// The base of every decision is the last state both sides agreed on (index
// columns uid and synced_flags/synced_kw).
//
//	flags, per flag and keyword   changed on one side only: that side's value
//	                              changed on both: they agree (a bit can only flip one way)
//	new on either side            copied to the other (APPEND upstream; download locally)
//	deleted here, untouched there deleted there (STORE \Deleted + UID EXPUNGE of exactly it)
//	deleted there, untouched here deleted here (file first, then row)
//	deleted here, changed there   kept: fetched again with the server's flags
//	                              (flags equal to this side's own are no change there)
//	deleted there, changed here   kept: uploaded again with the local flags
//	                              (\Deleted alone is no change: deleted here too)
//	moved here between folders    UID MOVE upstream
//	expunged here (queued)        deleted there, unless changed there since the
//	                              last sync (MODSEQ): kept, fetched again
//	moved here (queued)           UID MOVE upstream; source gone: uploaded;
//	                              expunged here since: deleted there
//
// With Options.Archive (archive.go) nothing is deleted here: a message
// deleted there moves to the local-only archive view
// (index.ArchiveFolder), one deleted here is first fetched into it, then
// deleted there; a folder deleted there stays here. The archive folders
// are never synced.
//
// Options.Direction limits which side is written ("pull": never upstream;
// "push": never locally); Options.Expunge limits where deletions are
// carried out. A run that would delete more than MaxDeletePercent of a
// folder on either side stops that folder unless Force is set; so does
// removing a folder of 5 messages or more (folderops.go). A Maildir T
// flag is \Deleted like any flag: postfach never expunges a message because
// of it; deleting the file is what deletes.
//
// # Identity
//
// A message's upstream UID is trusted only under the UIDVALIDITY it was
// issued in: rows under the folder's recorded one, file ,U= tags under the
// Maildir's .postfach-uidvalidity (written before any file carrying one of
// its UIDs), and tags of files that appeared on disk only after checking the
// server's size for that UID (verifyTags: a mail client may have moved the
// file from another folder). Everything else is matched by content identity
// (Message-ID and size; internal date and size without Message-ID), so a
// lost index, a lost state file or a new UIDVALIDITY re-matches messages
// instead of copying them again in either direction.
//
// One UID belongs to one row of a folder (the index enforces it). A second
// file carrying a UID another file holds is a copy: a new local message,
// uploaded, so deleting either copy later deletes only that copy. A file
// whose row is gone but whose bytes are that row's (a program rewrote it
// under a new key, with or without the tag) takes the row's place: the
// message is neither deleted upstream nor uploaded again (claimTags,
// rematch).
//
// # Crash safety
//
// A kill at any instant leaves either a file in tmp/ (removed on the next
// run, under the store's sync lock), or a file in cur/ whose row is not
// committed (the next run indexes it from disk, reading its UID from the
// ,U= tag, so it is neither lost nor fetched again). Flag changes are
// idempotent and are written upstream first, locally second, and the new
// base last; a local change that renames a file is journaled first (its
// new flags and base), so that a kill between the rename and the commit is
// not taken for a change made here (recoverFlags). Every APPEND is written ahead into the journal with the
// folder's UIDNEXT before it; an APPEND whose result was not recorded is
// found on the server by content on the next run (recoverAppends), not
// repeated; if its file was deleted meanwhile, the copy found is deleted
// upstream, not fetched again. Local changes go through the store's door (index.Store's
// SetFlags, Move, Remove), which changes the file and then commits the
// row: server expunges remove the file first, then the row (a kill in
// between leaves a row without a file, which the next run drops, since the
// server has no such message any more); upstream expunges drop the row
// after the server confirmed. A queued expunge or move (intents.go) is
// committed by the door's caller before any command; its outcome and its
// removal commit together after the server's answer, and the next run
// finishes an open one (a UID gone is done, one flagged \Deleted is
// expunged, a moved copy whose new UID was not recorded is adopted by
// content).
//
// # Hostile servers
//
// Nothing a server sends is trusted to be small. UID sets in SEARCH,
// ESEARCH, COPYUID and APPENDUID answers are counted range by range before
// they are walked, never expanded by go-imap (uidset.go): a SEARCH answer
// with more UIDs than the folder's EXISTS is refused with the folder's
// error. A body literal larger than RFC822.SIZE plus 10% (at least 64 KiB;
// Exchange's sizes are a little off) or than MaxSize is not stored (not
// even in part) and is the folder's error, while the rest of the folder
// syncs (fetch.go, bodyLimit); header sections collected in memory are
// bounded by MaxCollected. go-imap's deadlines are idle timeouts (the
// connections are sync/imapconn's): a large body on a slow link arrives,
// a dead link fails after 30 s (a response) or Endpoint.LiteralTimeout (a
// body) without a byte. A FETCH given up half read leaves none of go-imap's
// goroutines behind (abortFetch).
//
// # Dry run
//
// Options.DryRun goes through the same code with the index opened through
// a view (index.Store.DryRun) whose transactions all run inside one that is
// rolled back at the end, so the run sees its own writes as a real run does
// (a store that never synced works: the account and folder rows exist for
// the rest of the run), and every server command that modifies and every
// file operation gated. A folder the run would create upstream is planned
// as an empty server folder (all its messages uploaded); a Maildir the run
// would create is read as empty. The Result then says what a real run
// would do: counts and bytes per folder (the RFC822.SIZE of what would be
// downloaded, asked for where the plan does not know it), and per message
// the Actions (download, upload, flags on either side, deletions on either
// side, re-indexing), recorded at the same points as in a real run, so that
// a dry run's Actions and counts equal those of the real run that follows
// it (TestDryRunParity).
package imapsync
