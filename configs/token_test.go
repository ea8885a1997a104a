package configs

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	for _, tt := range []struct {
		name, cmd, want, wantErr string
	}{
		{"cmd", `printf 'ya29.tok\r\nrest\n'`, "ya29.tok", ""},
		{"cmd fails", `printf 'leaked'; echo 'invalid_grant' >&2; exit 2`, "", `account "a": token_cmd failed (exit status 2)`},
		{"prints nothing", `true`, "", `account "a": token_cmd printed no token`},
		{"none", "", "", `account "a": no token_cmd`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := Account{Name: "a", TokenCmd: tt.cmd}
			got, err := a.Token(t.Context())
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("Token = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Token = %q, %v; want error %q", got, err, tt.wantErr)
			}
			var ce *CmdError
			if errors.As(err, &ce) && (ce.Setting() != "token_cmd" || ce.Stderr != "invalid_grant") {
				t.Errorf("CmdError %+v", ce)
			}
		})
	}
}

func TestTokenCmdConfig(t *testing.T) {
	imap := strings.Replace(account, `password = "p"`, `token_cmd = "oama access u@example.org"`, 1)
	c, errs := load(t, imap+"[accounts.smtp]\nhost = \"smtp.example.org\"\n")
	if errs != nil {
		t.Fatal(errs)
	}
	a := c.Accounts[0]
	if a.TokenCmd != "oama access u@example.org" || a.Password != "" || a.SMTP.TokenCmd != a.TokenCmd || a.SMTP.Password != "" {
		t.Fatalf("account token_cmd %q password %q; smtp token_cmd %q password %q", a.TokenCmd, a.Password, a.SMTP.TokenCmd, a.SMTP.Password)
	}
	if tok, err := a.SMTP.Token(t.Context()); err == nil || tok != "" || !strings.HasPrefix(err.Error(), `account "a" smtp: token_cmd failed`) {
		t.Fatalf("SMTP.Token = %q, %v", tok, err)
	}

	// The SMTP table's own password replaces the account's token_cmd.
	c, errs = load(t, imap+"[accounts.smtp]\nhost = \"smtp.example.org\"\npassword_env = \"X\"\n")
	if errs != nil {
		t.Fatal(errs)
	}
	if s := c.Accounts[0].SMTP; s.TokenCmd != "" || s.PasswordEnv != "X" {
		t.Fatalf("smtp token_cmd %q password_env %q", s.TokenCmd, s.PasswordEnv)
	}
	// And its own token_cmd the account's password.
	c, errs = load(t, account+"[accounts.smtp]\nhost = \"smtp.example.org\"\ntoken_cmd = \"t\"\n")
	if errs != nil {
		t.Fatal(errs)
	}
	if s := c.Accounts[0].SMTP; s.TokenCmd != "t" || s.Password != "" {
		t.Fatalf("smtp token_cmd %q password %q", s.TokenCmd, s.Password)
	}
}

func TestTokenCmdConflicts(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		want      []string
	}{
		{"with password", account + "token_cmd = \"t\"\n", []string{
			"FILE:7: accounts[1].token_cmd: conflicts with password (line 6): token_cmd signs in with an OAuth2 token instead of a password; set either token_cmd or one of password, password_env or password_cmd"}},
		{"before password_cmd in smtp", account + "[accounts.smtp]\nhost = \"s\"\ntoken_cmd = \"t\"\npassword_cmd = \"p\"\n", []string{
			"FILE:10: accounts[1].smtp.password_cmd: conflicts with token_cmd (line 9): token_cmd signs in with an OAuth2 token instead of a password; set either token_cmd or one of password, password_env or password_cmd"}},
		{"empty", strings.Replace(account, `password = "p"`, `token_cmd = ""`, 1), []string{
			"FILE:6: accounts[1].token_cmd: must not be empty"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, got := load(t, tt.doc)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
