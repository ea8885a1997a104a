// Package migrate copies one account into another IMAP account through the
// local store: source account -> local store -> destination server,
// idempotent, resumable and verified.
//
// The caller (agent.Migrate) first syncs the source account into the store
// without changing the source: IMAP with Direction "pull" (SELECT
// read-only, no STORE, APPEND, EXPUNGE or folder change upstream), POP3
// with Keep (no DELE). Run then works from the store's index and files
// alone on the source side, and talks IMAP to the destination.
//
// # One run
//
//  1. Source: the index rows of the selected folders of the source account
//     (Options.Folders, default all), each with its file, flags and
//     keywords, internal date and RFC822.SIZE. Folders are grouped by
//     destination folder: the same name, or Options.Map's; several source
//     folders may share one destination folder (their union is its source).
//     The rows are read one at a time and kept as a fixed-size record of
//     about 64 bytes: the row's id, the identity (its key as a 128-bit
//     hash, see ident.go, and the size), the internal date, the flags and a
//     hash of the keywords; no strings. What checking and copying a
//     message need besides (its file, its keywords) is read from the index
//     500 rows at a time when they are needed, and dropped after.
//  2. LIST the destination once: its delimiter and its folders; ask
//     NAMESPACE unless Options.DestNamespacePrefix is set. Destination
//     names are postfach names ('/'-separated, without namespace prefix),
//     turned into the server's by imapsync.FolderNames, the mapping sync
//     uses: folder_map inverted, the delimiter, and the personal namespace
//     prefix (Lists/golang is INBOX.Lists.golang on a server whose prefix
//     is "INBOX." with '.' between levels; INBOX stays INBOX). A name that
//     does not round-trip (one holding the server's delimiter, such as
//     "INBOX.Archive" there) fails its folder with a hint. An IMAP
//     source's folders are in the store under their local names, without
//     the source server's prefix (see sync/imapsync), so between two
//     differently-shaped servers folder maps to folder.
//  3. Plan, per destination folder, in parallel over Options.Connections
//     connections: CREATE it if missing; else EXAMINE it and FETCH 1:*
//     (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS
//     (MESSAGE-ID)]) once; match the source messages against that set (see
//     Identity) to find the ones it lacks. A missing message whose stored
//     copy is damaged (see Identity) is left out of the copy. The
//     destination's messages are kept as fixed-size records too, sorted by
//     identity, for the folder's plan (and its verification) only.
//  4. Copy: APPEND each missing message, in source order, with its flags
//     and keywords and its internal date, the stored LF file turned back
//     into CRLF on the fly through a reused buffer (no message is held in
//     memory), 500 messages read from the index at a time. APPENDs are
//     pipelined: up to Options.Window commands are out before the first
//     answer is awaited. A literal above 4 KiB still waits for the
//     server's continuation, a round trip each: go-imap (v2.0.0-beta.9)
//     sends only smaller ones without it, LITERAL+ or not.
//     Where the destination has MULTIAPPEND with LITERAL+, one connection
//     shared by the folders sends many messages per command instead
//     (imapconn.Uploader). A NO to one APPEND is counted and the others go
//     on. The destination is dialed as the sync dials (sync/imapconn: the
//     same TLS modes and defaults, retries and error classes).
//  5. Verify: FETCH the destination's identities again and match once more:
//     per folder the Report gives source and destination counts and bytes,
//     Missing (source messages without a destination copy), Extra
//     (destination messages matching no source message) and Differ
//     (matched, but flags or internal date differ), and Damaged (the
//     damaged messages left out, which count as Missing; the folder then
//     fails with an error naming the first). The caller exits non-zero
//     when anything is Missing.
//
// DryRun stops after step 3 without CREATE: the Report then says what a
// run would copy (Copied, CopiedBytes) and would create.
//
// # Identity
//
// A message is its Message-ID plus its RFC822.SIZE (the size with CRLF
// line ends); a message without Message-ID is its internal date (to the
// second) plus its size, the same rule sync/imapsync uses to re-match
// messages. Identities are counted as a multiset: two identical source
// messages need two destination copies, and a destination copy matches at
// most one source message. Verification is by these identities, never by
// counts: a destination copy of another size is another message.
//
// The size of a source message is the one the index recorded (the source
// server's RFC822.SIZE). Should the destination have the Message-ID with
// another size, the size of the stored file as it would be sent is tried
// too, but only when it is larger: the store turns an original's bare LF
// into CRLF, which only adds bytes. A stored file that is smaller in wire
// form than the recorded size is damaged: a download cut short (postfach
// before issue 8 committed such files) or a file changed on disk. It is
// never copied and never taken as the message, so a truncated copy that an
// earlier run uploaded is not mistaken for it either (it counts as Extra);
// the report lists it under Damaged and counts it Missing. A source server
// whose RFC822.SIZE overstates a message (some report it inexactly) makes
// its stored copy look damaged too: it is refused the same way, with the
// sizes in the error, rather than risk verifying a truncated copy.
//
// Internal dates: an IMAP source's rows carry the source's INTERNALDATE; a
// POP3 source's rows carry the date of the topmost Received field, else of
// the Date field, else the time of the download (sync/pop3 sets it so).
// A row without a date falls back to its Date header, then to its file's
// modification time, so that the date APPENDed, and hence the identity of
// a message without Message-ID, is the same on every run.
//
// # Resuming needs no journal
//
// Run keeps no state between runs: every run recomputes what the
// destination lacks from what the destination holds. An APPEND either
// completes on the server (the message is there, whether or not its
// answer reached us) or leaves nothing (a literal cut short by a crash or
// a broken connection is discarded by the server). So after a kill -9 at
// any instant, the next run finds each message that made it by its
// identity and copies only the others: nothing is copied twice, nothing
// lost. The same holds for a plain rerun, which copies nothing. (Unlike
// sync/imapsync's upload of local messages, no write-ahead intent is
// needed: no local state records "this message is on the destination",
// so there is nothing to get out of step.)
//
// What identity cannot tell apart, accepted: messages with the same key,
// that is the same Message-ID and size, or without Message-ID the same
// internal date (to the second) and size. Byte-identical copies are no
// problem: multiplicities are counted, and because messages are APPENDed
// and matched in the same (source) order, an interrupted run's copies are
// matched to the messages that were actually copied. Only a destination
// that already held a look-alike before the first run (a different message
// with the same key) is taken to hold the source's message. A destination
// server that does not keep the APPENDed internal date would make every
// message without Message-ID look missing to the next run (Dovecot keeps
// it, as IMAP asks; the tests check). Messages whose flags changed on
// either side after being copied are not copied again nor updated: they
// count as Differ.
package migrate
