// Package pop3 is a POP3 client: it connects to an upstream mailbox, logs in,
// lists the messages with their unique ids and streams them down, so that the
// fetcher can file them into the local store and delete them upstream when the
// account's policy says so.
//
// # Protocols
//
//   - RFC 1939, POP3: USER/PASS, APOP, STAT, LIST, UIDL, RETR, TOP, DELE,
//     RSET, NOOP, QUIT.
//   - RFC 2449, extensions: CAPA, response codes ([IN-USE], [LOGIN-DELAY]),
//     PIPELINING (used by [Client.RetrMany] and [Client.DeleMany]), and the
//     255-octet command line limit.
//   - RFC 2595, STLS (Options.TLS = "starttls"); RFC 8314 implicit TLS is the
//     default for [Dial].
//   - RFC 3206, the [SYS/TEMP], [SYS/PERM] and [AUTH] response codes.
//   - RFC 5034, SASL AUTH, with PLAIN (RFC 4616) from github.com/emersion/go-sasl.
//
// # One command at a time, bodies streamed
//
// A [Client] is one POP3 session and is not safe for concurrent use, except
// that [Client.Close] may be called from any goroutine to abort whatever is in
// progress. Commands are sent and answered strictly in order; only RetrMany
// and DeleMany write several commands ahead, and only when the server
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
// Login, Auth, RetrMany, DeleMany) also take a context; cancelling it aborts
// the operation and the session.
package pop3
