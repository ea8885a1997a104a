// Package backup takes snapshots of a postfach store, in three formats,
// verifies them and the live store, and turns any of them back into a
// snapshot directory (Materialize) for a restore.
//
// # On-disk layout
//
//	<backup dir>/.lock                          flock: one backup at a time writes here
//	<backup dir>/<YYYY-MM-DDTHHMMSSZ>[-N]/      a directory snapshot (--format dir), named by its start (UTC)
//	    .postfach/index.db                      the index as of one instant (SQLite online backup)
//	    .postfach/outbox/cur/<name>             the outbox's files
//	    <account>/.postfach-account
//	    <account>/<Folder>/.postfach-uidvalidity
//	    <account>/<Folder>/{cur,new,tmp}/<name> the message files, as the store lays them out
//	    MANIFEST                                path, size, SHA-256 of every other file; written last
//	<backup dir>/<YYYY-MM-DDTHHMMSSZ>[-N].tar.zst
//	                                            a tar.zst snapshot (--format tar.zst): one file
//	<backup dir>/<YYYY-MM-DDTHHMMSSZ>[-N].tar.zst.part, .tar.zst.work/
//	                                            a tar.zst being written, and its index copy
//	<backup dir>/<YYYY-MM-DDTHHMMSSZ>[-N].mbox/ an mbox export (--format mbox)
//	    <account>/<Folder>.mbox                 one mbox per folder (names encoded as the store's)
//	    MANIFEST                                path, size, SHA-256 of each mbox; written last
//
// Everything is owner-only: directories 0700, files 0600. A directory
// snapshot restores by copying its tree (without MANIFEST) to a store
// root; Materialize makes one of a tar.zst or an mbox export.
//
// # tar.zst
//
// A tar (POSIX; PAX records only where a name needs them) compressed
// with zstd, holding what a directory snapshot holds: a directory entry
// for each Maildir (and cur/, new/, tmp/) and its parents, the marker
// files, the message and outbox files, then .postfach/index.db, then
// MANIFEST (which lists every other regular file) last. Nothing else: no
// links, no devices; Materialize and verify refuse any other entry, and
// any path that is not clean and relative. It is written one file at a
// time (memory does not grow with the store, only the manifest's lines
// do) into <name>.tar.zst.part, fsynced, then renamed to <name>.tar.zst
// and the directory fsynced: a .part is never a snapshot, and the next
// backup removes it. The index copy it takes (as a directory snapshot
// does) is made in <name>.tar.zst.work/ and removed. Its files are never
// shared with another snapshot: each tar.zst is whole.
//
// # mbox
//
// An export for other mail tools: one mbox per folder, in mboxrd form
// (each line of a message that matches ^>*From  gets one more '>', so
// that every message, whatever its bytes, reads back identical). Each
// message is
//
//	From <envelope sender> <internal date: UTC, asctime, e.g. Mon Jan  2 15:04:05 2006>
//	X-Postfach-Export: v=1; added=<n>; flags=<Maildir letters, or ->; eol=<yes|no>; sha256=<hex>
//	Status: RO                      always; R when \Seen, O: not new
//	X-Status: AFTD                  \Answered \Flagged \Draft \Deleted; left out when none
//	X-Keywords: $Forwarded kw ...   $Forwarded (the P flag) and the keywords; left out when none
//	<the message file's bytes, quoted>
//	<a newline, when the file does not end with one (eol=no)>
//	<an empty line>
//
// The envelope sender is the address of the message's Return-Path
// header, MAILER-DAEMON without one. Status, X-Status and X-Keywords are
// what mutt, Dovecot's mbox and Thunderbird read. The X-Postfach-Export
// line says how many of the lines after it (added) the export added
// besides it: an import removes exactly those, and gets the Maildir
// flags from flags=, the keywords from X-Keywords (a keyword's '%',
// spaces, controls and non-ASCII bytes as %XX), the internal date from
// the From_ line, and checks the bytes against sha256=. A message
// without that line (another tool's mbox) is imported whole, with the
// flags its first Status, X-Status and X-Keywords lines give (in its
// first 64 KiB). An import streams each message into its delivery,
// hashing it on the way: its memory does not grow with a message or a
// line, and a line it must hold whole (a From_ line, a line the export
// added) is refused past 1 MiB. The outbox is not exported. An empty folder has an empty mbox.
// The export's MANIFEST is written last, as a directory snapshot's: a
// <name>.mbox/ without one is incomplete and is removed by the next
// backup. Restored through the store's door, a message file is
// byte-identical to the exported one when it came through the door
// (which stores LF line ends); a file another program put in the store
// with CRLF line ends comes back with LF ones.
//
// # Keep
//
// Backup.Keep counts the complete snapshots of every format together.
// Only directory snapshots share files (below): the newest complete one
// is the base of the next directory snapshot.
//
// # Consistency
//
// A backup runs while postfach run may be writing. It first copies the
// index (index.Store.SnapshotInto: one read transaction, holding up no
// writer), then fetches the file of each row of that copy, never a file
// the copy has no row for: so every row has its file and every file its
// row, as of the instant of the copy. A file renamed since (a flag
// change: the content of a Maildir file never changes, only its name) is
// found by its Maildir key and stored under the name the copy's row
// records, so a snapshot's file names agree with its index; a message
// moved to another folder since is found through its row in the live
// index (a moved message keeps its row id). A row whose file is gone
// meanwhile (expunged between the copy and the fetch) is dropped from
// the copy's index (Result.Dropped names it): the snapshot is then the
// instant of the copy less that message, never a row without its file.
// Files in the store that no row names yet (a mail reader's delivery the
// watcher has not indexed) go into the next snapshot after they are
// indexed; verify of the live store names them. A tar.zst and an mbox
// export are taken from an index copy the same way (a tar.zst holds it,
// less the dropped rows; an mbox export leaves the dropped messages out).
//
// # Incremental
//
// A message file is shared (hard-linked) with the newest complete
// snapshot when that snapshot holds a file for the same folder and
// Maildir key whose manifest size and SHA-256 equal the row's: the index
// records each file's SHA-256 when it is stored, and a Maildir file's
// content never changes under its key, so the bytes are known to be
// equal without reading the live file (reading and hashing every file
// every night would make a backup of an unchanged store as slow as the
// first) and without trusting inode numbers and times of the live store
// (the snapshot holds copies, never links to live files: a live file
// damaged in place must not damage the backups, and a store copied to a
// new disk has new inodes but the same content). Every other file is
// copied from the live store and hashed as it is copied; one whose bytes
// differ from its row's SHA-256 is stored as found and named in
// Result.Mismatched. Outbox files are always copied (few, short-lived).
//
// # Completeness
//
// The manifest is written last, to MANIFEST.tmp, made durable with
// every other file of the snapshot (one syncfs(2) on Linux), then
// renamed into place and the directory fsynced: a snapshot without it is
// incomplete, is never a base for the next one nor counted by Keep, and
// is removed by the next backup. After a complete
// snapshot, all but the Keep newest complete ones are removed (their
// manifest first).
package backup
