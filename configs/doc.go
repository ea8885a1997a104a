// Package configs reads, checks and completes postfach's configuration file.
//
// The file is TOML (see example.toml, embedded as [Example]): a [store]
// table, one [[accounts]] table per upstream account (kind "imap" or "pop3",
// each with an optional [accounts.smtp] table for outbound mail), the local
// endpoints in [serve] and the backup policy in [backup]. [Load] parses the
// file, fills in every default, expands "~" in paths and checks the result;
// the other packages receive a complete, valid [Config] and never see the
// file format.
//
// # Errors
//
// A bad file yields an [ErrorList] holding every problem at once, one per
// line, sorted by line:
//
//	FILE:LINE: KEY: MESSAGE
//
// KEY is the dotted path of the offending key, with 1-based indexes in the
// order of the file for arrays (accounts[2].port, accounts[1].folders[3]) and
// keys that are not bare TOML keys quoted (accounts[1].folder_map."Sent
// Items"). LINE is the line of that key or, when a required key is missing,
// the line of the table header it belongs in. Unknown keys and values of the
// wrong type are reported like every other error. A TOML syntax error stops
// the parse and is reported alone, with a column: FILE:LINE:COL: MESSAGE.
// Files over 256 KiB are refused, and at most 100 errors are listed.
//
// A file that loads may still carry warnings (Config.Warnings, same format
// with "warning: " before MESSAGE): settings that work but may not do what
// their author expects, such as folder_map targets that can put two server
// folders into one local folder (see folderMap). `postfach config check`
// prints them; they never stop a run.
//
// Load checks what the file says. Whether a ca_file can be read or an
// environment variable is set depends on the machine: [Config.CheckEnvironment]
// tries them (`postfach config check` does), and a run finds out when it
// uses the value ([Account.TLSConfig], [Account.Secret], [Account.Token]),
// as it does whether a password_cmd or token_cmd succeeds.
//
// A file that holds a password itself is checked as fetchmail checks its
// rc file: owned by another user than the effective one it is refused;
// open to group or others it loads with a warning marked Always, which
// every command prints. POP3 folders stay below the account's folder (no
// "." or ".." level).
//
// # Local endpoints
//
// The [serve] endpoints are off unless their address is set (`postfach
// init` writes a config that sets IMAP and POP3 on 127.0.0.1). An address
// that is not loopback needs allow_remote = true and TLS ("starttls", the
// default, or "implicit"); tls = "none" is for loopback only. A [serve]
// password equal to an account's password is refused: local clients never
// learn an upstream password. See [Serve].
//
// # Archive
//
// archive = true on an IMAP account (default false) keeps every message
// that ever arrived: a message expunged upstream, or deleted locally (its
// file removed by a mail client, or expunged through the local IMAP
// endpoint), moves to the local-only folder ".Archive-Deleted/<folder>"
// of the account instead of being deleted, still indexed and searchable.
// That folder is never synced upstream. `postfach purge` removes messages
// from it for good.
//
// # Backup schedule
//
// [backup] schedule ("hourly", "daily HH:MM", "weekly DAY HH:MM", local
// time; "" for none) is when `postfach run` takes a backup (see
// [Backup.Next]); one missed while the machine slept is taken once when it
// wakes.
//
// # Paths
//
// store.path, backup.path and ca_file accept "~" and "~/..." for the home
// directory; relative paths are relative to the directory of the config
// file. The results are absolute and cleaned.
package configs
