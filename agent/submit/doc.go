// Package submit is postfach's local submission endpoint: an SMTP server
// (RFC 6409 submission, on go-smtp) inside `postfach run` that takes mail
// from local programs and queues it in the outbox of the account it is
// sent from, for the account's sender (sync/outbox) to deliver. It keeps
// nothing of its own: a message it accepts is in the queue (its file and
// rows committed through index.Store.Enqueue) before the client hears
// 250, and nothing is kept of one it refuses.
//
// # Protocol and rules
//
//   - AUTH is required, always: MAIL, RCPT and DATA before a successful
//     AUTH are refused (MAIL with 530 5.7.0; RCPT and DATA then fail for
//     want of an accepted MAIL), so the endpoint is never an open relay.
//     Options.Auth judges the login (the local credentials; it delays and
//     counts failures itself); a connection gets maxAuthFailures (3) failed
//     AUTHs: a further AUTH is answered 421 and the connection closed.
//   - AUTH PLAIN (RFC 4616) and LOGIN are offered over TLS (STARTTLS with
//     Options.TLS) or to a loopback client; a client elsewhere on a plain
//     connection is offered no AUTH and refused one (538 5.7.11) until it
//     has done STARTTLS.
//   - The account is chosen by the login name when it names one
//     ("<username>+<account>", as the POP3 endpoint reads logins: every
//     message of the session goes out through that account, whatever
//     its sender), else by the envelope sender (MAIL FROM): the first
//     account in Options.Accounts whose Addresses hold it (ignoring case);
//     with a single account, that one whatever the sender. A sender no
//     account holds, with several accounts, is refused with 553 5.7.1.
//   - The message is read with outbox.ReadSubmission: Bcc and Resent-Bcc
//     fields are removed before anything is stored (the Bcc recipients
//     are in the envelope, RCPT TO, and get the message). A malformed
//     header is refused (554 5.6.0); a message over Options.MaxSize
//     (35 MiB by default, announced in SIZE) with 552 5.3.4; a store that
//     cannot queue answers 451 4.3.0 (try again), never 250.
//   - After a message is queued, Options.Nudge(account) tells the
//     account's sender.
//
// Close lets the mail transactions under way finish (closeGrace: a
// message being read is queued and acknowledged, not sent again by its
// client), closing the connections between transactions at once.
//
// Implicit TLS is the caller's: it wraps the listener.
package submit
