// Package pop3d is postfach's local POP3 endpoint: it serves one folder of
// each account (Options.Folder, "INBOX" by default) of the local store to
// POP3 clients, so that a program that only speaks POP3 reads the mail
// postfach mirrors. It keeps nothing on disk of its own: it reads rows and
// files through the store (package index) and removes messages only
// through the store's door; its state (sessions, maildrop locks, counted
// sizes) lives in memory and is gone with the process.
//
// # Protocol
//
//   - RFC 1939: USER/PASS, STAT, LIST, RETR, DELE, NOOP, RSET, QUIT, TOP,
//     UIDL. APOP is not offered (the endpoint never holds a password in the
//     clear to compute it with).
//   - RFC 2449: CAPA, RESP-CODES, PIPELINING (replies are flushed when the
//     client has no whole command line queued), [IN-USE]; RFC 3206:
//     AUTH-RESP-CODE, [AUTH] and [SYS/TEMP]. No LOGIN-DELAY or EXPIRE.
//   - RFC 2595: STLS, when Options.TLS is set and the connection is not TLS
//     yet (implicit TLS is the caller's: it wraps the listener). Input the
//     client sent after STLS in the clear ends the session: it is never
//     read as a command under TLS. Over a plain connection from an address that is
//     not loopback, no login is offered nor accepted before STLS.
//   - RFC 5034: AUTH PLAIN (RFC 4616), with an initial response or after a
//     "+ " continuation ("*" cancels); a bare AUTH lists the mechanisms.
//
// # Logins and maildrops
//
// A login name "<username>" opens the first account's maildrop,
// "<username>+<account>" the named account's (the longest account name
// that ends the login after a '+'). Options.Auth judges username and
// password (it must be safe for concurrent use); it delays and counts
// failures itself. A connection gets at most maxAuthFailures (3) failed
// logins and maxBadCommands (10) commands refused in a row before it is
// closed; before login, only CAPA, STLS, USER, PASS, AUTH and QUIT are
// answered. Nothing the client sends is echoed back.
//
// One session per maildrop at a time: a second login to a maildrop in use
// is refused with [IN-USE]; QUIT frees it before its reply goes out. The maildrop is a snapshot of the folder's rows
// taken at login, numbered in arrival order (local UID): messages arriving
// during the session are not shown, as RFC 1939 has it; a message removed
// meanwhile (by the sync or another client) answers RETR and TOP with
// -ERR, and its DELE has nothing left to do.
//
// # Sizes, bodies, unique ids
//
// Sizes in STAT, LIST and the RETR status line are wire sizes (CRLF line
// ends): the row's RFC822Size, or for a row without one the size of its
// file counted once with CRLF line ends and kept in memory (by message id
// and file size). RETR and TOP stream the file from disk (index
// OpenMessage) through a fixed buffer, turning LF into CRLF and
// dot-stuffing on the fly; nothing holds a whole message in memory.
//
// UIDL is the message's Maildir key (the stable part of its file name,
// kept by flag changes and moves, and found again by a rescan after the
// index is rebuilt) when it is 1 to 70 characters of 0x21-0x7E, as RFC
// 1939 requires; otherwise "~" and the hex SHA-256 of the key (65
// characters). So it is stable across restarts and index rebuilds, and
// never depends on the index's numbering.
//
// # Deletion
//
// DELE only marks a message; RSET unmarks. Marked messages are removed at
// QUIT (the UPDATE state), through the store's Expunge (the door: file and
// row, and an expunge intent for the upstream copy, which the account's
// sync then carries out by its policy). A session that ends any other way
// (a dropped connection, a timeout, Server.Close) removes nothing.
//
// # Limits
//
// Command lines are at most 4096 bytes, CRLF included (longer ones end the
// connection); the client must send each command within 10 minutes (RFC
// 1939's autologout) and take each chunk of a reply within 2 minutes; at
// most 100 connections are served at once (more are told [SYS/TEMP] and
// closed). See defaultLimits.
package pop3d
