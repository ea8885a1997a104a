// Package smtptest runs a real SMTP relay for tests: a private Postfix
// (Debian's postfix package) on a free 127.0.0.1 port, with STARTTLS (or
// implicit TLS) under a certificate signed by a fresh test CA, AUTH
// required, and every message it accepts delivered to a sink inside the
// test process, where Delivered reads it back with its envelope.
//
// # Pieces
//
// Postfix does the SMTP side for real: its smtpd speaks to the client
// under test, queues what it accepts and relays it with its smtp client.
// (OpenSMTPD was not chosen: its control socket and spool paths are
// compiled in, so two instances cannot run at once.) Three small servers
// in the test process, each on its own 127.0.0.1 port, stand where a
// production Postfix would have other daemons:
//   - auth: Dovecot's authentication protocol (smtpd_sasl_type = dovecot),
//     PLAIN and LOGIN against the one user of the relay (and XOAUTH2 and
//     OAUTHBEARER with RelayOptions.Token);
//   - policy: a Postfix policy service (check_policy_service) that answers
//     RCPT TO with the codes set by Reject;
//   - sink: a go-smtp server, the relay's only destination
//     (default_transport), keeping every message with its envelope.
//
// # Layout of Relay.Dir
//
//	etc/main.cf, etc/master.cf   generated configuration (config_directory)
//	etc/ca.pem                   the test CA (Relay.CAFile)
//	etc/cert.pem, etc/key.pem    the relay's certificate (127.0.0.1, localhost) and key
//	queue/                       queue_directory (root's), with its subdirectories made as
//	                             Postfix's postfix-files lists them ("postfix check" takes seconds)
//	data/                        data_directory (owned by the postfix user)
//	maillog                      everything Postfix logs (maillog_file)
//	master.out                   the master daemon's stdout and stderr
//
// Invariants and choices:
//   - Postfix runs as root (its master must), with the package's postfix
//     user and postdrop group, no chroot, and its own queue, so several
//     relays run at once without touching the system's Postfix.
//   - Relaying needs AUTH (smtpd_relay_restrictions = permit_sasl_authenticated,
//     reject_unauth_destination), and AUTH needs TLS (smtpd_tls_auth_only).
//   - The relay adds its own Received field on top; Delivered.Data is the
//     message without it, as the client sent it (Raw keeps it). Nothing
//     else is changed: no header field is dropped (message_drop_headers is
//     empty, so a Bcc field the client sent arrives) or added (no header
//     rewriting for local clients).
//   - Postfix's smtpd listens on a UNIX socket (queue/public/smtpd); Port
//     is a front door in the test process that passes bytes through. So
//     no TCP port is chosen, freed and bound again by Postfix (another
//     test could take it in between). Stop binds the port without
//     listening (SO_REUSEPORT, beside the front door, so the port is
//     never free for an instant), then closes the front door and drops
//     its connections: connections are refused and the kernel hands the
//     port to no one else. Postfix keeps running behind: what it accepted is
//     still delivered to the sink, and no delivery is cut in the middle,
//     so a message the relay accepted once arrives once. (postfix reload
//     to drop the service left the queue manager idle for many seconds.)
//   - Reject answers per recipient at RCPT TO time, right away (no reload).
//   - StartRelay puts Dir in /dev/shm when there is one (TempDir): the
//     queue lives in memory, as fast as a test peer should be; durability
//     across a crash of the machine is no concern of a test.
//   - Errors are not slowed down (smtpd_error_sleep_time = 0) and failed
//     deliveries to the sink are retried within seconds.
//   - Delivered holds one entry per delivery transaction: Postfix sends a
//     message's recipients together (in its own order, not the client's).
//     Delivery follows acceptance in the background: WaitDelivered waits.
//   - The configuration files are dated a minute back: Postfix rereads a
//     file younger than 2 s until it is older (seconds of start-up).
//   - NewRelay and Close work outside tests (the bench); StartRelay is
//     the testing wrapper (directory, cleanup, log on failure, skip or
//     fail when Postfix or root is missing).
package smtptest
