// Package clienttest checks an IMAP and POP3 endpoint with real mail
// clients and with an independent, differential conformance check against
// Dovecot. It is test harness code: production code never imports it.
//
// # Targets and endpoints
//
// A Target is an endpoint's addresses (IMAP, POP3), one account's
// credentials and how to reach it (plaintext, STARTTLS, implicit TLS, with
// the CA file the clients trust). An Endpoint is a fixture that gives a
// fresh, empty account on an endpoint per call (INBOX only, no mail).
// DovecotEndpoint serves accounts from a private Dovecot (internal/testenv);
// DovecotTarget describes one Dovecot user. To check another server, write
// an Endpoint for it and hand it to the functions below in place of the
// Dovecot one.
//
// # Real clients
//
// Each runs the real program against a Target and returns what it saw, for
// tests to compare with the seeded mail and with the same run on Dovecot:
//
//   - RunIMAPLib: Python's imaplib (scripts/imaplib_session.py, embedded):
//     SELECT; FETCH of every part kind; SEARCH with header, date, flag and
//     text keys; STORE; APPEND; COPY; MOVE; EXPUNGE; IDLE while a second
//     connection appends. Each command's result is kept and normalised;
//     CompareClientSteps compares two runs; ClientStep.Items extracts
//     values (BODY[] by UID) for byte-for-byte checks.
//   - RunPoplib: Python's poplib (scripts/poplib_session.py): CAPA,
//     USER/PASS, STAT, LIST, UIDL, RETR and TOP of every message, DELE.
//   - Fetchmail: Debian's fetchmail with keep and uidl, delivering through
//     a shell MDA into numbered files; its recorded UIDLs are returned.
//   - Mbsync: Debian's mbsync mirroring every folder into a fresh Maildir
//     (Sync All, Create Near, Expunge None); SetFlags changes a flag in the
//     Maildir; run again to sync flags both ways; ServerFlags reads the
//     server's side.
//
// The clients expect the account to hold ClientCorpus; Seed APPENDs it (or
// any corpus) over IMAP through the target itself, keeping flags, internal
// dates and order.
//
// # Differential conformance check
//
// Scripted IMAP sessions (sessions/*.imap, format in session.go) and POP3
// sessions (sessions/*.pop3, pop3session.go) are sent line by line over
// raw sockets, so that every untagged response is seen exactly as sent. Differential runs a session against a reference and a
// target seeded with the same messages, normalises both transcripts (what
// may legitimately differ is listed in normalize.go and events.go:
// UIDVALIDITY values, capability lists, response text, order of FETCH
// items other than UID first, quoting, the order of EXPUNGEs, ...; what
// only the target does and the RFCs allow is accepted per option, see
// Options and accept.go) and returns the commands answered differently;
// CheckConformance does this for every session as parallel subtests.
// CLIENTTEST_DUMP=dir writes both transcripts of each session, raw and
// normalised, into dir.
//
// # Pointing the harness at postfach
//
// postfach_test.go does it: postfachEndpoint starts agent/imapd and
// agent/pop3d over a fresh store; TestPostfachConformance runs
//
//	CheckConformance(t, sharedEndpoint(0), postfachEndpoint, nil, postfachOptions)
//
// where postfachOptions declare what postfach does differently from
// Dovecot and the RFCs allow (extra UID in FETCH, FLAGS without the
// mailbox's keywords, STORE echoes, no ID, ...: see its comment);
// TestPostfachClients runs imaplib, poplib, fetchmail and mbsync against
// it, seeded with ClientCorpus, checking the results as this package's
// tests do for Dovecot.
//
// Invariants: nothing here is skipped: a missing Dovecot fails with
// CI=true (testenv.NeedDovecot), a missing python3, mbsync or fetchmail
// always fails. Every run has a deadline (WaitTimeout per response).
package clienttest
