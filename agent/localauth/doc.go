// Package localauth secures postfach's local endpoints (IMAP, POP3): the
// local login, the TLS certificate, and the check of every login attempt.
// It knows nothing of the config file or of the agent: the agent hands it
// plain values.
//
// # On-disk layout
//
// Everything lives in the store's state directory, <store>/.postfach
// (created 0700 if missing):
//
//	local-credentials   {"username": ..., "password": ...}, JSON, 0600:
//	                    the generated login, written on first use
//	local-cert.pem      the generated self-signed certificate, 0600
//	local-key.pem       its ECDSA P-256 private key (PKCS #8), 0600
//	localauth.lock      flock taken while the files above are created
//
// # Invariants
//
//   - A generated password is 160 random bits (32 base32 characters); a
//     file is written to a temporary name, synced and renamed, under the
//     flock, so that two processes (postfach run and postfach credentials)
//     never make two different logins or a certificate that does not match
//     its key. Files found with group or other permission bits are made
//     0600.
//   - The generated certificate names 127.0.0.1, ::1 and localhost, is
//     valid for 825 days (the most Apple's clients accept) and is made
//     anew, with a new fingerprint, when it has less than 30 days left. A
//     configured certificate is used as it is.
//   - A Checker accepts only the local login, compared in constant time,
//     and never an upstream account's password, even one configured as the
//     local password. Failed logins are counted and delayed per remote
//     address (IPv6: per /64), doubling from BaseDelay up to MaxDelay; while
//     an address is penalised its next attempts wait their turn (at most
//     MaxDelay; beyond that they are refused without being checked), so
//     that parallel connections guess no faster than one.
package localauth
