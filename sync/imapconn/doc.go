// Package imapconn is postfach's one connection layer for IMAP: dialing
// and logging in, TLS, idle deadlines, the MULTIAPPEND uploader and the
// classes of connection errors. The sync engine (sync/imapsync), the
// migration (sync/migrate) and, next, the outbox and the agent's IDLE
// watcher all reach a server through it, so a server is reached, and a
// failure reads and is retried, the same way everywhere.
//
// It holds no state between connections, writes nothing to disk, and
// imports no postfach package but sync/nethint (the wording and the
// temporary-or-permanent classification it shares with POP3) and
// sync/auth (SASL sign-in with an OAuth2 token): it must never import
// imapsync or migrate.
//
// # Dialing
//
// An Endpoint is an address, a TLSMode and credentials. The tls setting
// is parsed once (ParseTLSMode; the zero TLSMode is TLSImplicit) and every
// later decision switches on the constant. The TLS configuration is
// nethint.TLSConfig's, as for POP3: the caller's base (the account's CA
// file) or the system roots, at least TLS 1.2, ServerName the host of the
// address.
// Endpoint.Dial dials, does implicit TLS or STARTTLS, waits for the
// greeting and logs in: LOGIN with the password, or, with Endpoint.Token
// (token_cmd), AUTHENTICATE OAUTHBEARER or XOAUTH2, a refused token
// fetched again and tried once more before the refusal counts (signin.go;
// the MULTIAPPEND connection signs in the same way). A plain-text dial to
// a port that speaks TLS fails within seconds with a hint
// (nethint.WatchTLSPort). DialRetry retries
// temporary failures with backoff; Logout (and Uploader.Close) sends
// LOGOUT and returns, its answer read in the background for at most
// logoutWait, so that a server that does not answer holds nobody up.
//
// # Deadlines
//
// go-imap bounds each wait with a fixed deadline (30 s for a response, 5
// minutes for a whole literal). The connection handed to it is a
// progressConn that turns each into an idle timeout moved forward by every
// byte (deadline.go): a large message on a slow link arrives, a dead link
// fails after 30 s, or Endpoint.LiteralTimeout for a literal, without a
// byte. The uploader's connection is one too.
//
// # MULTIAPPEND
//
// Uploader is a small client of its own on a second connection (go-imap
// has no MULTIAPPEND): many messages per APPEND command, which a server
// stores in one transaction. It is used only where the server has
// MULTIAPPEND and LITERAL+; a refused command is sent again one message
// per command so that a refusal is its own message's (AppendAll). The
// folders' commands are pipelined on it: each goes out whole as soon as
// the one before it is written, not answered, and whoever waits reads
// the answers for all. It takes the server's capabilities from the
// greeting and the LOGIN's answer where they are there. A
// broken uploader is never handed out again (LazyUploader); the caller
// then APPENDs one message at a time on its go-imap connection.
//
// # Errors
//
// Failures to connect or log in are *ConnError: one line naming the
// server and what failed, worded by nethint. ConnError.Permanent answers
// nethint.Permanent, the one classification the agent's backoff uses:
// a refused login (AUTHENTICATIONFAILED, or any NO or BAD to LOGIN or
// AUTHENTICATE but UNAVAILABLE, INUSE, LIMIT, SERVERBUG; for a token, its
// second refusal), a server without a mechanism for the token, a refused
// STARTTLS, a certificate that does not verify, a TLS port spoken to in
// plain text and an unknown tls mode (*ModeError) are permanent; a refused or dropped connection, a
// timeout, a BYE and "not now" codes are temporary. An error after which
// a connection cannot be used again wraps ErrConnLost.
package imapconn
