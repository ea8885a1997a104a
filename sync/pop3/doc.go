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
//   - RFC 5034, SASL AUTH, with PLAIN (RFC 4616) from github.com/emersion/go-sasl,
//     and OAUTHBEARER (RFC 7628) or XOAUTH2 with an OAuth2 token (SignIn,
//     through sync/auth: a refused token is fetched again and tried once more).
//
// Fetch words its connection and login failures as [ConnError], one line
// with a hint (package nethint, shared with imapsync); a plain-text dial
// (starttls, none) that has no greeting after 2 s checks on a second
// connection whether the port speaks TLS, and if so fails at once saying
// so instead of waiting out the timeout.
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
// A listing is also bounded in all (2^21 lines, 64 MiB), since it is kept in
// memory. A message body is bounded by its LIST size ([LimitBody]): one
// longer than that plus 10% (at least 64 KiB: servers count loosely) is a
// *[TooLargeError]; Fetch stores nothing of it, reports it and goes on with
// the next message, unless the body goes on for 16 MiB more (an endless
// reply), which ends the session.
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
//  3. Forget: a stored identity (pop3_uidls) that the listing lacks names a
//     message that left the server; its row is deleted, as fetchmail does
//     (the local copy stays). A server may give the identity to a new
//     message later (sequential or header-hash UIDLs, a move to another
//     backend), and that message must then count as new.
//  4. Plan: a message whose identity is unknown is to be downloaded. One
//     whose identity is known is the message stored under it only if its
//     LIST size equals the size recorded with the identity, and, when its
//     header is read, if the header (TOP n 0, CRLF read as LF) equals the
//     one recorded (a hash of the stored copy's header, see headerHasher);
//     otherwise it is a new message that reuses the identity: it is
//     downloaded too (FetchResult.Reused), and the identity is re-pointed
//     at the new copy when it is committed. The header is read for the
//     known messages due for deletion (step 6), and for all known messages
//     when one of them has changed its size (the server is reusing
//     identities then). A known message due for deletion must also be
//     proven stored: its row and file exist, the row's size is the listed
//     size, and the file's header is the TOP header. A message due for
//     deletion whose identity is a content hash (its header and size
//     already) is proven by its body: it is downloaded again, and if the
//     download equals the stored file it is proven and not stored twice,
//     else it is new. A
//     message that cannot be proven (local copy deleted or changed, TOP
//     refused) stays on the server and is not downloaded again
//     (FetchResult.Unproven, a warning).
//  5. The messages to download are retrieved with pipelined RETR and
//     streamed, CRLF turned into LF, into maildir Deliveries in tmp/. A
//     -ERR to one RETR skips that message (FetchResult.Failed, and an error
//     at the end) and goes on. A connection that ends before a message's
//     terminating "." is an error for that message (the body reader never
//     reports a cut as the end): it is not committed.
//  6. Every BatchSize messages (and at the end, also after a cancelled or
//     broken download, for the messages that arrived whole) the batch is
//     committed through the store's door (index.Store.Deliver): (a) the
//     store's maildir.Syncer makes the files durable; (b) transaction 1
//     (Deliver's BeforeRename) records the intent, one pop3_pending row
//     (identity -> Maildir key) per message; (c) the files are renamed
//     into new/ (unread: no U= tag, no flags); (d) SyncDir makes the names
//     durable; (e) transaction 2 adds the messages rows (parsed header,
//     SHA-256, internal date from the topmost Received field, else Date,
//     else now, which is also given to the file as its modification time;
//     full text deferred), and, in Deliver's WithRows, the pop3_uidls rows
//     (with the LIST size and the header hash) and deletes the pending
//     rows.
//  7. Deletion: DELE goes only to a message whose own content is stored:
//     one downloaded and committed in this session, or one proven in step
//     4; and only when its time has come (Keep false: at once; Keep with
//     DeleteAfterDays: that many days after it was stored). Then QUIT, and
//     only after QUIT succeeded are the deleted messages' identities
//     forgotten. A DELE refused with -ERR makes the run RSET and delete
//     nothing this time.
//
// With Keep and no DeleteAfterDays, a new message that reuses an identity
// with the same size as the message it named, in a run where no other
// known message changed its size, is not noticed: it stays on the server,
// where it is not lost, but it is not downloaded either.
//
// # Dry run
//
// FetchOptions.DryRun goes through steps 1 to 4 as a real run does (USER/
// PASS, UIDL, LIST, TOP; nothing else is sent) with the index opened through
// its dry-run view (rolled back at the end) and without creating or
// touching any file, and reports what steps 5 to 7 would do: the messages
// to download (FetchResult.New, Bytes and Plan) and those to delete on the
// server (Deleted and Plan), including the ones a real run would download
// and then delete in the same session. It skips the completion of an
// interrupted run's downloads, and a message that can only be proven by
// its body is planned as a download; in both cases the real run may
// download less.
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
//     identities are unknown (or still name the earlier message whose size
//     or header differs), so the messages are fetched again (they are still
//     on the server: nothing is deleted before step 7).
//   - Between (b) and (e): pending rows name the keys. At the start of the
//     next run, a pending key whose file is in cur/ or new/ is completed
//     from the file (index.Store.IndexFile: SyncDir, read back, message
//     row, internal date from the file's modification time + identity row
//     with the pending LIST size and the file's header hash + pending row
//     deleted, in one transaction): the message is not downloaded again. A
//     pending key without such a file (the rename did not happen or was not
//     durable) is dropped and its message fetched again; its file, if any,
//     is still in tmp/ and CleanOwnTmp removes it.
//   - After (e): the message is stored and will not be fetched again.
//   - Deletion: DELE takes effect only at QUIT, and only for messages whose
//     content is stored. A crash before QUIT deletes nothing. If QUIT's
//     reply is lost, or the run ends before it forgets the deleted
//     identities, they stay known: the next listing either lacks them
//     (forgotten then) or still shows them, and then they are proven again
//     (step 4) before another DELE; a message that took such an identity
//     meanwhile fails the proof (its size, header or, for a content
//     identity, body differs) and is downloaded.
//
// Without the pending rows, a crash between the rename and transaction 2
// would leave a file the index does not know, and the next run would
// download the message a second time. Keys, not file names, are recorded,
// because another mail program may rename a file (flags) meanwhile.
//
// Fetch expects the caller to hold the store's sync lock (one fetcher per
// account and folder at a time), as the agent does.
package pop3
