// Package pop3 is a POP3 client: it connects to an upstream mailbox, logs in,
// lists the messages with their unique ids and streams them down; and the
// fetcher ([Fetch]), which files them into a local folder of the store and
// deletes them upstream when the account's policy says so.
//
// # Protocols
//
//   - RFC 1939, POP3: USER/PASS, APOP, STAT, LIST, UIDL, RETR, TOP, DELE,
//     RSET, NOOP, QUIT.
//   - RFC 2449, extensions: CAPA, response codes ([IN-USE], [LOGIN-DELAY]),
//     PIPELINING (used by [Client.RetrMany], [Client.TopMany] and
//     [Client.DeleMany]), and the 255-octet command line limit.
//   - RFC 2595, STLS (Options.TLS = "starttls"); RFC 8314 implicit TLS is the
//     default for [Dial].
//   - RFC 3206, the [SYS/TEMP], [SYS/PERM] and [AUTH] response codes.
//   - RFC 5034, SASL AUTH, with PLAIN (RFC 4616) from github.com/emersion/go-sasl.
//
// # One command at a time, bodies streamed
//
// A [Client] is one POP3 session and is not safe for concurrent use, except
// that [Client.Close] may be called from any goroutine to abort whatever is in
// progress. Commands are sent and answered strictly in order; only RetrMany,
// TopMany and DeleMany write several commands ahead, and only when the server
// advertises PIPELINING.
//
// Message bodies are never held in memory by this package: [Client.Retr] and
// [Client.Top] return a reader that takes the message off the connection as
// it is read, undoing the dot-stuffing on the fly, with a fixed 32 KiB buffer
// whatever the size of the message. Because the body is still on the wire,
// that reader must be read to io.EOF or closed before the next command;
// until then every other method returns [ErrBodyOpen]. Close reads and
// discards the rest of the message (it does not cut the connection), so closing
// the reader of a 50 MB message early still costs the download of 50 MB; to
// abandon a transfer, close the whole Client instead.
//
// Bodies come back byte for byte as the server sent them, without the
// dot-stuffing and without the terminating ".": CRLF line ends stay CRLF and a
// lone CR or LF is kept as it is. (net/textproto's DotReader is not used,
// because it rewrites CRLF to LF.)
//
// Status lines and the lines of multi-line listings (CAPA, LIST, UIDL) longer
// than 8 KiB are a protocol violation; message lines may be of any length.
//
// # Deleting
//
// DELE only marks a message. The server removes marked messages when the
// session ends with QUIT ([Client.Quit]); a session that ends any other way,
// including [Client.Close], a dropped connection or a process crash, deletes
// nothing. If Quit fails with anything but a *[Error], the reply was lost and
// the deletions may or may not have happened: the next session's UIDL tells.
//
// # Errors and time limits
//
// A -ERR reply is returned as *[Error] (see [IsAuthError] and [IsTemporary])
// and leaves the session usable. Anything else that goes wrong on the wire, a
// network error, a timeout, a cancelled context or a *[ProtocolError], leaves
// the session in an unknown state: the Client closes the connection and every
// later call reports that first error.
//
// Options.Timeout bounds every wait for the network: each write and each read
// must make progress within it, so a large message that keeps arriving is not
// cut off while a stalled server is. The methods that may take long (Dial,
// Login, Auth, RetrMany, TopMany, DeleMany) also take a context; cancelling
// it aborts the operation and the session.
//
// # Fetching
//
// [Fetch] makes one pass over a mailbox:
//
//  1. Complete the downloads an interrupted run left pending (below), then
//     remove our leftover files from the folder's tmp/ (CleanOwnTmp).
//  2. Dial, Login, UIDL and LIST. Each message gets an identity: its UIDL;
//     when the server has no UIDL (UIDL answers -ERR; logged as a warning),
//     or for the second and later messages with the same UIDL, the hash of
//     its header (TOP n 0) and its LIST size, written "sha256 <hex> <size>"
//     (the space keeps it apart from any UIDL). A message whose identity
//     repeats an earlier one's (identical header and size) is skipped and
//     counted in FetchResult.Skipped: it cannot be told apart, so it is
//     neither fetched nor deleted. UIDLs that break RFC 1939 (over 70
//     octets, odd bytes) are used as they are.
//  3. The messages whose identity is not in the index (pop3_uidls) are
//     retrieved with pipelined RETR and streamed, CRLF turned into LF, into
//     maildir Deliveries in tmp/. A -ERR to one RETR skips that message
//     (FetchResult.Failed, and an error at the end) and goes on.
//  4. Every BatchSize messages (and at the end, also after a cancelled or
//     broken download, for the messages that arrived whole) the batch is
//     committed: (a) SyncBatch makes the files durable; (b) transaction 1
//     records the intent, one pop3_pending row (identity -> Maildir key) per
//     message; (c) the files are renamed into cur/ (no U= tag, no flags);
//     (d) SyncDir makes the names durable; (e) transaction 2 adds the
//     messages rows (parsed header, full-text, SHA-256, internal date from
//     the topmost Received field, else Date, else now), the pop3_uidls rows,
//     and deletes the pending rows.
//  5. Deletion: DELE the messages whose pop3_uidls row is committed and
//     whose time has come (Keep false: all of them; Keep with
//     DeleteAfterDays: those stored at least that many days ago), then QUIT,
//     and only after QUIT succeeded record deleted_at. Nothing that is not
//     committed locally is ever marked for deletion. A DELE refused with
//     -ERR makes the run RSET and delete nothing this time. Stored
//     identities no longer on the server are marked deleted as well.
//
// # Crash safety
//
// The invariant: a message counts as stored exactly when its pop3_uidls row
// is committed, and that row is committed together with the message row,
// only after the file and its name in cur/ are durable. So a crash (or a
// cancel, or a broken connection) at any instant ends in one of these states,
// each resolved by the next run without loss or duplicate:
//
//   - Before (b): files only in tmp/, no rows. CleanOwnTmp removes them; the
//     UIDLs are unknown, so the messages are fetched again (they are still on
//     the server: nothing is deleted before step 5).
//   - Between (b) and (e): pending rows name the keys. At the start of the
//     next run, a pending key whose file is in cur/ or new/ is completed
//     from the file (SyncDir, read back, message row + UIDL row + pending row
//     deleted, in one transaction): the message is not downloaded again. A
//     pending key without such a file (the rename did not happen or was not
//     durable) is dropped and its message fetched again; its file, if any,
//     is still in tmp/ and CleanOwnTmp removes it.
//   - After (e): the message is stored and will not be fetched again.
//   - Deletion: DELE takes effect only at QUIT, and only for committed
//     messages. A crash before QUIT deletes nothing; a lost QUIT reply
//     leaves deleted_at unset, and the next run, not seeing the messages
//     in the listing any more, records them as deleted.
//
// Without the pending rows, a crash between the rename and transaction 2
// would leave a file the index does not know, and the next run would
// download the message a second time. Keys, not file names, are recorded,
// because another mail program may rename a file (flags) meanwhile.
//
// Fetch expects the caller to hold the store's sync lock (one fetcher per
// account and folder at a time), as the agent does.
package pop3
