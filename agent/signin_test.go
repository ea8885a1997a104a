package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/postfach/postfach/configs"
)

// TestSMTPCredentials: the SMTP relay signs in with the table's token_cmd,
// inherited from the account, or with its password.
func TestSMTPCredentials(t *testing.T) {
	doc := `[store]
path = "/tmp/postfach-signin-test"

[[accounts]]
name = "gmail"
kind = "imap"
host = "imap.example.org"
username = "me@example.org"
token_cmd = "printf 'tok-1\n'"
[accounts.smtp]
host = "smtp.example.org"

[[accounts]]
name = "work"
kind = "imap"
host = "imap.example.org"
username = "me"
token_cmd = "false"
[accounts.smtp]
host = "smtp.example.org"
username = "me@work"
password = "pw"
`
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := smtpCredentials(cfg.Accounts[0].SMTP)
	if c.Username != "me@example.org" || c.Password != nil || c.Token == nil {
		t.Fatalf("token_cmd account: %+v", c)
	}
	if tok, err := c.Token(ctx); tok != "tok-1" || err != nil {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	c = smtpCredentials(cfg.Accounts[1].SMTP)
	if c.Username != "me@work" || c.Token != nil || c.Password == nil {
		t.Fatalf("password smtp: %+v", c)
	}
	if pw, err := c.Password(ctx); pw != "pw" || err != nil {
		t.Fatalf("Password = %q, %v", pw, err)
	}
}
