// Package maildir keeps postfach's message files: Maildir folders on disk,
// durable streaming delivery, flag letters, the ",U=<uid>" tag in file names
// and scanning. It knows nothing of SQLite or IMAP sessions: package index
// owns the state and calls in here to touch files. go-maildir (imported as
// gomaildir) supplies the flag letters; delivery, naming and scanning are our
// own, because go-maildir neither fsyncs nor knows the ,U= tag.
//
// # On-disk layout
//
//	<root>/<account>/<Folder>/<Sub>/{cur,new,tmp}/
//	<root>/<account>/<Folder>/.postfach-uidvalidity    decimal UIDVALIDITY + "\n"
//	<root>/<account>/.postfach-account                 the account name + "\n": postfach's own (AccountMarker)
//
// The account name is one path component (EncodeName). A folder name is the
// IMAP name with '/' separators; each component is encoded by EncodeFolder:
// the bytes '%', '\\', NUL, the other ASCII control bytes and bytes that are
// not valid UTF-8 are written as %XX (upper-case hex); so are a leading '.',
// a trailing ' ', and the first letter of a component named cur, new or tmp in
// any case; an empty component is written as a lone "%". Everything else,
// non-ASCII letters included, is kept as is ("Entwürfe" stays "Entwürfe").
// DecodeFolder accepts only what EncodeFolder produces, so folder names and
// directories correspond one to one. A folder's subfolders are siblings of its
// cur/new/tmp; names starting with '.' are never folders.
//
// # File names
//
//	name  = key *("," field) [":" info]
//	key   = 1*<any byte but "/" "," ":">       ; never starts with "."
//	field = "U=" uid | <foreign field such as "S=1234" or "W=1300">
//	info  = "2," *letter                        ; any other info means no flags
//
// Our deliveries are named key ",U=" uid ":2," letters in cur/, with
// ",U=<uid>" left out while the uid is 0; unread ones (no S flag) go to new/
// as key ",U=" uid, without info unless they carry other flags (Commit); the keys we make look like
// <unix>.<pid>_<counter>.<random hex>.<host>. Names made by other programs
// (mutt, notmuch, Dovecot: "<x>:2,FS", "<x>,S=1234,W=1300:2,S", a bare name
// in new/) parse by the same grammar. The rule for keys: the key is the name
// up to the first ',' or ':', so Find(key) finds the file again whatever flags
// and fields it carries later. Renames keep foreign fields and foreign info
// letters (Dovecot's lowercase keyword letters, for example) and replace only
// the U= field and our letters D F P R S T.
//
// # Durability
//
// go-maildir does not fsync; this package does, at points the caller picks:
//
//  1. NewDelivery creates tmp/<key> (O_EXCL, mode 0600); Write streams into it
//     through a bufio.Writer, converting CRLF to LF, hashing and counting, and
//     keeping at most 64 KiB of header in memory, whatever the message size.
//  2. Close flushes and closes the file; it does not fsync.
//  3. Syncer.Sync (many deliveries: a full batch by one syncfs(2) on Linux
//     through a descriptor of the store root kept open for the whole run,
//     so that a writeback error is never reported to another run instead;
//     a smaller one, or elsewhere, by one fsync per file, several at once)
//     or DeliverSync (one delivery, one fsync) makes the contents durable.
//     SyncAhead, right after Close, starts that fsync in the background
//     (bounded, all deliveries together); the sync of step 3 then waits for
//     it and takes its outcome instead of making its own.
//  4. Commit moves tmp/<key> to cur/<name> (new/<name> for an unread
//     message) and never replaces an existing file
//     (renameat2 RENAME_NOREPLACE on Linux, else link and unlink).
//  5. SyncDir fsyncs cur/ and new/, which makes the new names durable.
//
// Crash-safety invariants. A message appears in cur/ or new/ only at step 4, with its
// contents already durable, so a crash at any point leaves at most a stray
// file in tmp/ (CleanTmp removes it later) or a committed file the index does
// not know yet (the index reconciles by scanning; the key and the ,U= tag say
// what the file is). A commit whose directory was not synced yet may be lost
// in a crash; the index commits its row only after SyncDir, so it never
// points at such a file. SetFlags and SetUID rename without fsync (call
// SyncDir after a batch): after a crash the file has its old name or its new
// one, never both and never neither, and Find locates it by key either way.
// Remove and SetUIDValidity fsync the directory themselves.
//
// # Stamps
//
// Dir.Stamp reads the identity and modification times of cur/ and new/.
// Every file created, renamed or removed in them moves those times, so a
// Stamp equal to one taken when the listing was known vouches for that
// listing without reading it, unless it is Racy (younger than 100 ms, or
// three seconds on a filesystem that keeps whole seconds: a filesystem's
// clock is coarse). A program that changes the files and
// then sets the directories' times back defeats it; mail programs do not.
// Dir.FileTime tells the time the folder's filesystem gives a change now
// (a probe file, tmp/.postfach-clock.<pid>.*, created and removed at once;
// a killed process's is cleaned as our own): a stamp older than it
// differs from any stamp taken after a later change. Listing.Sorted
// counts the new/ files a scan leaves out because cur/ has their key.
//
// A Dir holds nothing but its path and is safe for concurrent use; a Delivery
// is not. One process (the agent) writes a store, but other mail programs may
// rename files at any time, so operations on an Entry look the file up again
// by key when its name has changed.
package maildir
