// Package imapsync mirrors the folders of one IMAP account into the local
// store (package maildir for content, package index for state).
//
// # One run
//
//  1. LIST the account's folders (with SPECIAL-USE and, where the server has
//     LIST-STATUS, each folder's MESSAGES/UIDNEXT/UIDVALIDITY/HIGHESTMODSEQ
//     in the same round trip) and keep those the include/exclude patterns
//     select. A folder whose status equals the state recorded after the last
//     run, and whose Maildir still matches the index, is done: a no-change
//     resync costs one LIST for the whole account.
//  2. For each other folder (in parallel, one connection per worker, at most
//     Options.Connections): SELECT it, reconcile the Maildir with the index
//     (files the index does not know are indexed from disk; flags changed by
//     other programs are picked up), then plan:
//     - UIDVALIDITY unchanged and CONDSTORE available: flags changed since the
//     recorded HIGHESTMODSEQ (FETCH CHANGEDSINCE); expunges only when the
//     message counts disagree (UID SEARCH); new mail is UIDs from the
//     recorded UIDNEXT on.
//     - otherwise (first run, lost index, UIDVALIDITY changed): one FETCH of
//     UID/FLAGS/RFC822.SIZE for the whole folder, and the local rows are
//     matched to it by UID (when the Maildir's recorded UIDVALIDITY is the
//     server's) or by Message-ID and size (when it is not).
//  3. New messages are fetched in chunks that any worker may take, so one
//     large folder still uses every connection. Bodies stream from the socket
//     into tmp/ (CRLF turned into LF, hashed on the way); nothing holds a
//     whole message in memory.
//  4. One committer makes each batch durable with a single filesystem sync,
//     renames the files into cur/ (name `<key>,U=<uid>:2,<flags>`), syncs the
//     directories and only then commits the batch's rows in one transaction.
//  5. When every chunk of a folder is committed, its UIDNEXT and
//     HIGHESTMODSEQ are recorded.
//
// # Crash safety
//
// A kill at any instant leaves either a file in tmp/ (removed on the next
// run), or a file in cur/ whose row is not committed: the next run's
// reconcile indexes it from disk, reading its UID from the `,U=` tag, so it is
// neither lost nor fetched again. The folder's UIDVALIDITY is written to the
// Maildir (`.postfach-uidvalidity`) before any file carrying a UID of it, so a
// `,U=` tag is trusted only under the UIDVALIDITY it was issued in. Local
// expunges remove the row first, then the file.
//
// # Flags
//
// Flags are merged three ways against the last state both sides agreed on
// (index column synced_flags): a flag changed on one side only takes that
// side's value; changed on both, the server wins. This package's pull
// direction applies the result locally; pushing local changes up is the job
// of the push half (see Options.Direction).
package imapsync
