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
//  3. opens one connection to the relay for all the messages due, and
//     those queued while it sends them (implicit TLS or STARTTLS per RFC 8314, the certificate verified; a
//     relay configured for STARTTLS that does not offer it is an error,
//     never a plaintext session; AUTH with the account's credentials:
//     tls = "none" to a host not loopback needs allow_insecure in the
//     config, which checks it), and sends each: claims it ("sending",
//     written ahead of MAIL FROM, in one commit with any result not
//     recorded yet), MAIL FROM
//     (SMTPUTF8 when the message needs it; one that needs it to a relay
//     without it fails at once with that reason), RCPT TO per pending
//     recipient, DATA; the final replies per recipient are recorded, with what is
//     to be filed after them, in a transaction begun before the final
//     "." goes out (see below);
//  4. files the copies to Sent and the notices in one delivery whose
//     commit also records them filed (index.Store.OutboxFile). Filing
//     never waits for a sync run of the account (it holds the account's
//     turn for minutes, and no mail would leave meanwhile): the
//     follow-ups stay recorded, and Run files them as soon as the run
//     ends (fileAfterRun waits for its end without the outbox lock,
//     then files them ahead of a next run), or at a later pass.
//
// A recipient answered 2xx is sent; 5xx fails it at once; 4xx and network
// errors leave it pending, retried after a capped exponential backoff
// (RetryMin doubling per attempt up to RetryMax) until the message is
// older than Expiry (then it fails with the last reply); once it is older
// than Warn a warning notice is filed, once. While no TCP connection to
// the relay can be made (refused, timed out), Run looks again every
// ConnRetry (10 s for a relay on a loopback or private address, 5 minutes
// otherwise), whatever the backoff: a relay back while the network never
// dropped gets the mail within that; these probes change no schedule.
// A Nudge (a new message, the network back) tries them too, but reads
// them only once a relay answers: while none does, a nudge costs one
// dial and leaves their rows as they are, however long the queue
// written offline. A failure or warning notice
// is a short RFC 3464 report (multipart/report; report-type=
// delivery-status, with the original's header) delivered into the
// account's local INBOX through the door (index.Store.OutboxFile: as
// Store.Append does, a new row with UID 0 that the account's sync
// uploads); after the first recipient takes a message its copy goes into
// the account's Sent folder (SentFolder, else the folder with special
// use \Sent, else "Sent", created if missing) the same way, unless
// SaveSent is off. The stored message has no Bcc field
// (the submission removed it), so neither has the copy.
//
// # Exactly once, as far as SMTP allows
//
// A recipient is sent again only while its row says "pending". The only
// windows in which a relay can have the message while the row still says
// so are: a crash (or kill) after the final "." of DATA went out and
// before the commit that records the relay's reply; and a connection lost after the final
// "." and before that reply (RFC 1047's case: the relay may have taken
// the message). Both resend to the pending recipients and show in the
// message's Interrupted count (see index.OutboxMessage). A stop (ctx
// done) closes the connection at once except from the final "." to its
// reply: that reply is awaited (at most finalReplyGrace) and recorded,
// and the sender stops after it. The transaction that records the reply
// takes the store's write lock before the final "." is sent
// (index.Store.OutboxCommitAfter), so the window from the "." to the
// commit is the relay's own work on the message and one fsync, never a
// wait for another writer of the store; a reply later than
// heldReplyLimit (500 ms) gives the lock up and is recorded with the next
// commit. Measured against Postfix on the project machine, the relay
// takes a median 1.3 ms from the "." to its reply, of a 3.6 ms
// transaction: a kill at a random moment while mail flows hits the
// window about a third of the time, and no SMTP client can close the
// relay's part of it. A commit
// that fails (the index busy past its timeout, a full disk) stops the
// pass: its outcomes stay in the Sender and the next pass commits them
// (with retries) before it recovers or claims anything, so the message
// is not sent again; they are counted in the report once committed (a
// crash, or another process's pass, in between still sees the row
// "sending": Interrupted). Follow-ups are filed once: the commit that
// adds them to their folders clears them, and a crash between that
// delivery's renames and its commit leaves files the next filing finds
// by their key (index.FollowupKey) and does not repeat.
package outbox
