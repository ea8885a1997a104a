// Package outbox sends an account's queued mail (index's outbox, filled
// by index.Store.Enqueue) through its SMTP relay, and reads submitted
// messages for queueing (ReadSubmission).
//
// One Sender per account. Run sends what is due, then waits for the next
// due time or a Nudge; Flush sends everything queued now. Each pass holds
// the account's outbox lock (index.Store.LockOutbox: an flock, so passes
// of Run, Flush and of another postfach process take turns), and
//
//  1. puts back in the queue the messages a crash left "sending"
//     (counted per message as Interrupted: possible duplicates);
//  2. files what earlier sends left to file (the copy to Sent, notices);
//  3. opens one connection to the relay for all the messages due
//     (implicit TLS or STARTTLS per RFC 8314, the certificate verified; a
//     relay configured for STARTTLS that does not offer it is an error,
//     never a plaintext session; AUTH with the account's credentials,
//     never in plaintext except to a loopback address), and sends each:
//     claims it ("sending", written ahead of MAIL FROM), MAIL FROM
//     (SMTPUTF8 when the message needs it; one that needs it to a relay
//     without it fails at once with that reason), RCPT TO per pending
//     recipient, DATA, and records the final replies per recipient in one
//     commit with what is to be filed after it.
//
// A recipient answered 2xx is sent; 5xx fails it at once; 4xx and network
// errors leave it pending, retried after a capped exponential backoff
// (RetryMin doubling per attempt up to RetryMax) until the message is
// older than Expiry (then it fails with the last reply); once it is older
// than Warn a warning notice is filed, once. A failure or warning notice
// is a short RFC 3464 report (multipart/report; report-type=
// delivery-status, with the original's header) delivered into the
// account's local INBOX through index.Store.Append; after the first
// recipient takes a message its copy goes into the account's Sent folder
// (SentFolder, else the folder with special use \Sent, else "Sent") the
// same way, unless SaveSent is off. The stored message has no Bcc field
// (the submission removed it), so neither has the copy.
//
// # Exactly once, as far as SMTP allows
//
// A recipient is sent again only while its row says "pending". The only
// windows in which a relay can have the message while the row still says
// so are: a crash (or kill) between the relay's reply to the end of DATA
// and the commit that records it; and a connection lost after the final
// "." and before that reply (RFC 1047's case: the relay may have taken
// the message). Both resend to the pending recipients; the first shows as
// the message's Interrupted count (see index.OutboxMessage). Follow-ups
// are filed at least once: a crash between filing one and recording it
// filed files it again (a second copy in Sent or INBOX, never a second
// send).
package outbox
