// Package testenv runs real mail servers for tests: a private Dovecot
// (IMAP and POP3) on 127.0.0.1, and helpers to fill it with a corpus.
//
// # Dovecot
//
// NewDovecot starts one instance from a generated configuration; StartDovecot
// is the testing wrapper (temporary directory, cleanup, log dump on failure,
// skip or fail when Dovecot is missing); Stop and Start make an outage
// (same ports, same mail). cmd/dovecotd runs the same instance
// outside tests.
//
// Layout of Config.Dir:
//
//	dovecot.conf      generated configuration (Dovecot 2.3 syntax, or 2.4 when the binary is 2.4)
//	users             passwd-file: name:{PLAIN}password:uid:gid::home::
//	dovecot.log       everything Dovecot logs
//	run/  state/      base_dir and state_dir (sockets, pid file)
//	mail/<user>/      the user's Maildir++ root (INBOX); other folders are .Name.Sub dirs
//	home/<user>/      the user's home
//	ca.pem, cert.pem, key.pem   with TLS only: the CA that signed cert.pem, and the server pair
//	oauth2.conf.ext   with OAuth2 only: the oauth2 passdb's settings (introspection endpoint; see oauth2.go)
//
// Invariants and choices:
//   - Dovecot listens on 127.0.0.1 only, on free ports chosen at start
//     (IMAP, POP3 and, with TLS, implicit-TLS IMAPS and POP3S).
//   - The mailbox hierarchy separator is '/', and folder names are stored
//     on disk in modified UTF-7, as Dovecot 2.3 does by default.
//   - Run as root, mail belongs to nobody:nogroup (Dovecot refuses uid 0 for
//     mail); Config.Dir and its parents must be searchable by other users.
//     Run as another user, every Dovecot process runs as that user.
//   - Plaintext authentication is allowed without TLS; failed logins are
//     answered after 0.5 s with no growing per-IP penalty (real servers do
//     penalize); mail_fsync = never: the instance is fast and disposable, not
//     durable.
//   - Many connections per user and IP are allowed (100, not 10).
//   - With OAuth2 (WithOAuth2), XOAUTH2 and OAUTHBEARER are offered too and
//     accept only tokens from Dovecot.IssueToken, checked by an HTTP
//     introspection endpoint the harness runs on 127.0.0.1.
//   - pop3_uidl_format = %08Xu%08Xv: UID and UIDVALIDITY in hex, which
//     Dovecot writes in lower case ("00000001" + "6b082624").
//
// # Filling a mailbox
//
// Two ways, with the same result as seen over IMAP:
//   - Appender (Dovecot.Seed): IMAP MULTIAPPEND batches per folder with
//     flags and internal dates, creating folders on first use. Realistic:
//     Dovecot assigns UIDs and writes its own files.
//   - MaildirWriter (Dovecot.SeedFiles): writes Maildir++ files straight into
//     the user's Maildir (flags and keywords in the file name, mtime = internal
//     date), which Dovecot picks up on its next sync. Much faster for large
//     corpora.
package testenv
