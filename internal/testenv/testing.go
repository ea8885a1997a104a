package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/corpus"
)

// Option configures StartDovecot. A User is an Option that adds the user.
type Option interface {
	apply(*Config)
}

func (u User) apply(c *Config) { c.Users = append(c.Users, u) }

type optionFunc func(*Config)

func (f optionFunc) apply(c *Config) { f(c) }

// WithTLS serves STARTTLS and implicit TLS with a certificate shaped by mode.
func WithTLS(mode TLSMode) Option { return optionFunc(func(c *Config) { c.TLS = mode }) }

// WithDebug turns on Dovecot's auth and mail debug logging.
func WithDebug() Option { return optionFunc(func(c *Config) { c.Debug = true }) }

// WithConfig appends raw lines to dovecot.conf, overriding earlier settings.
func WithConfig(extra string) Option {
	return optionFunc(func(c *Config) { c.Extra += extra + "\n" })
}

// WithNamespace serves the personal namespace with the given prefix and
// hierarchy separator: WithNamespace("INBOX.", '.') is the shape of many
// hosting providers' servers (every folder below INBOX; CREATE of a
// top-level name refused).
func WithNamespace(prefix string, sep rune) Option {
	return optionFunc(func(c *Config) { c.NamespacePrefix, c.NamespaceSep = prefix, sep })
}

// HiddenExtensions are the extensions WithoutExtensions hides.
var HiddenExtensions = []string{"CONDSTORE", "QRESYNC", "MOVE", "LIST-STATUS", "ESEARCH"}

// WithoutExtensions makes IMAP announce Dovecot's capabilities without
// CONDSTORE, QRESYNC, MOVE, LIST-STATUS and ESEARCH (and the ESEARCH
// forms CONTEXT=SEARCH and ESORT), as many servers lack them. Dovecot 2.3's
// imap_capability replaces the list (only "+" adds), so the list is
// written out: Dovecot 2.3.19's own, less those. (Dovecot still accepts
// the commands; a client that goes by the capabilities never sends them.)
func WithoutExtensions() Option {
	return optionFunc(func(c *Config) { c.Capability = strings.Join(plainCapabilities, " ") })
}

// plainCapabilities is Dovecot 2.3.19's post-login capability list
// without HiddenExtensions (nor ESORT and CONTEXT=SEARCH, which are ESEARCH).
var plainCapabilities = []string{"IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT",
	"SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=REFS", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND", "URL-PARTIAL",
	"CATENATE", "UNSELECT", "CHILDREN", "NAMESPACE", "UIDPLUS", "LIST-EXTENDED", "I18NLEVEL=1", "WITHIN",
	"SEARCHRES", "BINARY", "LITERAL+", "NOTIFY", "SAVEDATE", "PREVIEW=FUZZY", "PREVIEW", "SNIPPET=FUZZY", "STATUS=SIZE"}

// DefaultUser is created when StartDovecot is given no User.
var DefaultUser = User{Name: "test", Password: "test-pass"}

// NeedDovecot skips the test when the dovecot binary is missing, or fails
// it when the environment has CI=true (a missing peer is a failure there).
func NeedDovecot(t testing.TB) {
	t.Helper()
	if _, err := FindDovecot(""); err != nil {
		if errors.Is(err, exec.ErrNotFound) && os.Getenv("CI") != "true" {
			t.Skipf("skipping: needs Dovecot (apt-get install dovecot-imapd dovecot-pop3d): %v", err)
		}
		t.Fatal(err)
	}
}

// StartDovecot starts a private Dovecot for the test (see NewDovecot) in a
// directory below t.TempDir(), and stops it in t.Cleanup, logging the
// Dovecot log if the test failed. Without a User option it creates
// DefaultUser.
//
// When the dovecot binary is missing the test is skipped, or fails when the
// environment has CI=true.
func StartDovecot(t testing.TB, opts ...Option) *Dovecot {
	t.Helper()
	NeedDovecot(t)
	var cfg Config
	for _, o := range opts {
		o.apply(&cfg)
	}
	if len(cfg.Users) == 0 {
		cfg.Users = []User{DefaultUser}
	}
	cfg.Dir = testDir(t)
	d, err := NewDovecot(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
		d.issuer.close()
		if t.Failed() {
			t.Logf("Dovecot %s log (%s):\n%s", d.Version, d.LogFile, d.Log())
		}
	})
	return d
}

// testDir returns a directory for Dovecot: below t.TempDir() when Dovecot
// can use that path, else a fresh one in os.TempDir().
func testDir(t testing.TB) string {
	dir := t.TempDir()
	if strings.ContainsAny(dir, "%$\"\\ \t\n{}") {
		var err error
		dir, err = os.MkdirTemp("", "testenv-dovecot-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if os.Geteuid() == 0 {
		// t.TempDir's parent is private (0700); nobody and dovenull must
		// pass through it.
		for _, p := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// Client returns a client logged in as user over plaintext IMAP, logged out
// and closed in t.Cleanup.
func (d *Dovecot) Client(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	c, err := d.Dial(user)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Logout().Wait()
		c.Close()
	})
	return c
}

// Seed APPENDs msgs to user's mailbox over IMAP with their flags and
// internal dates, creating missing folders, keeping their order within each
// folder (so UIDs follow it). See Appender.
func (d *Dovecot) Seed(t testing.TB, user string, msgs []corpus.Message) {
	t.Helper()
	if err := d.AppendMessages(user, msgs); err != nil {
		t.Fatal(err)
	}
}

// AppendMessages is Seed for use outside tests.
func (d *Dovecot) AppendMessages(user string, msgs []corpus.Message) error {
	a, err := d.Appender(user)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := a.Append(m); err != nil {
			a.Close()
			return err
		}
	}
	return a.Close()
}

// Appender returns an Appender logged in as user. The caller must Close it.
func (d *Dovecot) Appender(user string) (*Appender, error) {
	pass, ok := d.users[user]
	if !ok {
		return nil, fmt.Errorf("testenv: no user %q", user)
	}
	return DialAppender(d.IMAPAddr(), user, pass)
}

// SeedFiles writes msgs straight into user's Maildir (see MaildirWriter),
// then checks with IMAP STATUS that Dovecot counts them in every folder.
func (d *Dovecot) SeedFiles(t testing.TB, user string, msgs []corpus.Message) {
	t.Helper()
	c := d.Client(t, user)
	before := map[string]uint32{}
	for _, m := range msgs {
		f := folderName(m.Folder)
		if _, ok := before[f]; !ok {
			before[f] = numMessages(c, f)
		}
	}
	w := d.MaildirWriter(user)
	want := map[string]uint32{}
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		want[folderName(m.Folder)]++
	}
	for f, n := range want {
		if got := numMessages(c, f); got != before[f]+n {
			t.Fatalf("SeedFiles: Dovecot counts %d messages in %q, want %d", got, f, before[f]+n)
		}
	}
}

// MaildirWriter writes into user's Maildir with the right owner.
func (d *Dovecot) MaildirWriter(user string) *MaildirWriter {
	return NewMaildirWriter(d.MailDir(user), d.uid, d.gid)
}

// numMessages is STATUS MESSAGES, 0 for a missing mailbox.
func numMessages(c *imapclient.Client, mailbox string) uint32 {
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil {
		return 0
	}
	return *st.NumMessages
}

func folderName(f string) string {
	if f == "" || strings.EqualFold(f, "INBOX") {
		return "INBOX"
	}
	return f
}

// Folders returns the folders of msgs in first-seen order.
func Folders(msgs []corpus.Message) []string {
	var fs []string
	for _, m := range msgs {
		if f := folderName(m.Folder); !slices.Contains(fs, f) {
			fs = append(fs, f)
		}
	}
	return fs
}

// String describes the instance in one line.
func (d *Dovecot) String() string {
	s := fmt.Sprintf("Dovecot %s imap=%s pop3=%s", d.Version, d.IMAPAddr(), d.POP3Addr())
	if d.IMAPSPort != 0 {
		s += fmt.Sprintf(" imaps=%s pop3s=%s tls=%s", d.IMAPSAddr(), d.POP3SAddr(), d.TLS)
	}
	return s + " dir=" + d.Dir
}
