package configs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Account is one [[accounts]] table: an upstream IMAP or POP3 account.
type Account struct {
	Name string // unique; also the account's folder under Store.Path
	Kind string // "imap" | "pop3"

	Host string
	Port int // default: imap 993 (tls = "implicit") or 143; pop3 995 or 110
	// TLS is "implicit" (the default), "starttls" or "none". "none" to a
	// host that is not loopback (localhost, 127.0.0.0/8, ::1) is an error
	// unless AllowInsecure is set.
	TLS           string
	AllowInsecure bool
	CAFile        string // extra trusted CA certificates (PEM), absolute; read by TLSConfig

	// Username and exactly one secret source: Password (the password
	// itself), PasswordEnv (an environment variable holding it) or
	// PasswordCmd (a shell command printing it), see Secret; or TokenCmd
	// (a shell command printing an OAuth2 access token, for XOAUTH2 and
	// OAUTHBEARER sign-in), see Token.
	Username, Password, PasswordCmd, PasswordEnv string
	TokenCmd                                     string

	// IMAP only.

	// Folders are the remote folders to sync, as LIST patterns ("*" and "%"
	// wildcards); a pattern starting with "!" excludes what it matches.
	// Default ["*"]; Load puts "*" first when the list has exclusions only,
	// so there is always an including pattern.
	Folders       []string
	Direction     string // "both" (default) | "pull" | "push"
	Expunge       string // "both" (default) | "local" | "remote" | "none"
	CreateFolders bool   // default true
	RemoveFolders bool   // default false
	// Archive keeps every message that ever arrived: one expunged upstream
	// or deleted locally moves to the local-only folder
	// ".Archive-Deleted/<folder>" instead of being deleted (only `postfach
	// purge` removes it for good). Default false.
	Archive          bool
	MaxAgeDays       int               // 0: no limit
	MaxSize          int64             // bytes, 0: no limit; the file may say 10485760, "10MB" or "512k" (1k = 1024)
	FolderMap        map[string]string // remote name -> local name
	MaxDeletePercent int               // a run deleting more of a folder stops; default 25, 0..100
	Connections      int               // default 4, 1..16
	// NamespacePrefix is the server's personal namespace prefix as local
	// folder names are made under it ("INBOX.": server folder INBOX.Archive
	// is local folder Archive); nil when not set: the server's NAMESPACE
	// answer, or what the account recorded.
	NamespacePrefix *string
	// IdleFolders are the local folder names `postfach run` keeps an IMAP
	// IDLE connection open on (within Connections, keeping one for the
	// sync); default ["INBOX"], none when Connections is 1.
	// The other folders are polled every PollInterval.
	IdleFolders []string

	// PollInterval is how often `postfach run` checks the server when
	// nothing pushed a change (IMAP folders without IDLE, POP3 accounts);
	// default 5 minutes, at least 10 seconds.
	PollInterval time.Duration

	// POP3 only.

	Folder          string // local folder filled, default "INBOX"
	Keep            bool   // leave messages on the server; default true
	DeleteAfterDays int    // with Keep: delete from the server after this many days; 0: never

	SMTP *SMTP // [accounts.smtp], nil when absent
	// Addresses are the account's sender addresses (addresses): a
	// message submitted from one of them leaves through this account.
	// Default: the username when it holds an "@", else none.
	Addresses []string

	Line int // line of the account's [[accounts]] header in the file
}

// SMTP is an [accounts.smtp] table: where the account's outgoing mail goes.
type SMTP struct {
	Host          string
	Port          int    // default 465 (tls = "implicit"), 587 (starttls), 25 (none)
	TLS           string // as Account.TLS
	AllowInsecure bool
	CAFile        string
	// Username defaults to the account's. When the table sets no secret
	// source (password, password_env, password_cmd, token_cmd), the
	// account's is used.
	Username, Password, PasswordCmd, PasswordEnv string
	TokenCmd                                     string

	// The outbox (sync/outbox): SaveSent (save_sent, default true) files
	// a copy of each sent message in SentFolder (sent_folder; "" = the
	// folder with special use \Sent, else "Sent"); a message still not
	// sent after QueueWarn (queue_warn, default 4h) gets a warning notice,
	// after QueueExpiry (queue_expiry, default 120h) it fails.
	SaveSent               bool
	SentFolder             string
	QueueExpiry, QueueWarn time.Duration

	Line    int    // line of the [accounts.smtp] header (or of the smtp key)
	account string // for error messages
}

// Addr returns "host:port".
func (a *Account) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// Addr returns "host:port".
func (s *SMTP) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSConfig returns the TLS settings for the account's server: ServerName
// Host, at least TLS 1.2, and the system roots plus the certificates of
// CAFile. It fails when CAFile cannot be read or holds no certificate.
func (a *Account) TLSConfig() (*tls.Config, error) {
	return tlsConfig(fmt.Sprintf("account %q", a.Name), a.Host, a.CAFile)
}

// TLSConfig is Account.TLSConfig for the SMTP server.
func (s *SMTP) TLSConfig() (*tls.Config, error) {
	return tlsConfig(fmt.Sprintf("account %q smtp", s.account), s.Host, s.CAFile)
}

func tlsConfig(who, host, caFile string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: ca_file: %w", who, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: ca_file %s: no PEM certificate in it", who, caFile)
		}
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}
