package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every bad [serve] value is one line naming the file, the line and the
// key: a non-loopback address without allow_remote, or with tls = "none",
// is refused.
func TestServeErrors(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"bad tls", "[serve]\ntls = \"ssl\"\n", []string{
			`FILE:2: serve.tls: must be "starttls", "implicit" or "none", not "ssl"`}},
		{"remote without allow_remote", "[serve]\nimap = \"192.0.2.1:1143\"\ntls = \"implicit\"\n", []string{
			`FILE:2: serve.imap: "192.0.2.1:1143" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1143")`}},
		{"remote without tls", "[serve]\npop3 = \"[::]:1110\"\ntls = \"none\"\nallow_remote = true\n", []string{
			`FILE:3: serve.tls: "none" sends passwords and mail in clear text, but pop3 = "[::]:1110" is not a loopback address: use "starttls" or "implicit"`}},
		{"host name is not loopback", "[serve]\nimap = \"mail.example.org:1143\"\n", []string{
			`FILE:2: serve.imap: "mail.example.org:1143" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1143")`}},
		{"bad address", "[serve]\nimap = \"1143\"\npop3 = \"127.0.0.1:99999\"\n", []string{
			`FILE:2: serve.imap: must be "host:port" (like "127.0.0.1:1143") or "", not "1143"`,
			`FILE:3: serve.pop3: must be "host:port" (like "127.0.0.1:1110") or "", not "127.0.0.1:99999"`}},
		{"wrong types", "[serve]\nallow_remote = \"yes\"\nusername = 5\n", []string{
			"FILE:2: serve.allow_remote: must be a boolean (true or false), not a string",
			"FILE:3: serve.username: must be a string, not an integer"}},
		{"empty values", "[serve]\nusername = \"\"\npassword = \"\"\npop3_folder = \"\"\n", []string{
			"FILE:2: serve.username: must not be empty",
			"FILE:3: serve.password: must not be empty",
			"FILE:4: serve.pop3_folder: must not be empty"}},
		{"two secrets", "[serve]\npassword_cmd = \"pass local\"\npassword = \"x\"\n", []string{
			"FILE:3: serve.password: conflicts with password_cmd (line 2): set only one of password or password_cmd"}},
		{"control characters", "[serve]\nusername = \"a\\tb\"\npassword = \"a\\nb\"\n", []string{
			"FILE:2: serve.username: must not hold control characters",
			"FILE:3: serve.password: must not hold control characters (a client could not send it)"}},
		{"upstream password", account + "[serve]\npassword = \"p\"\n", []string{
			`FILE:8: serve.password: is the password of account "a": local clients must never learn an upstream password; choose another, or leave it out and postfach generates one`}},
		{"upstream smtp password", strings.Replace(account, `password = "p"`, `password_env = "X"`, 1) + "[accounts.smtp]\nhost = \"s\"\npassword = \"q\"\n[serve]\npassword = \"q\"\n", []string{
			`FILE:11: serve.password: is the password of the smtp server of account "a": local clients must never learn an upstream password; choose another, or leave it out and postfach generates one`}},
		{"cert without key", "[serve]\ncert_file = \"cert.pem\"\n", []string{
			"FILE:2: serve.cert_file: needs key_file (the certificate's private key, PEM) beside it"}},
		{"key without cert", "[serve]\nkey_file = \"key.pem\"\n", []string{
			"FILE:2: serve.key_file: needs cert_file (the certificate, PEM) beside it"}},
		{"pop3 folder", "[serve]\npop3_folder = \"../x\"\n", []string{
			`FILE:2: serve.pop3_folder: "../x" has a ".." level: a folder is below the account's folder, like "INBOX" or "Lists/pop"`}},
		{"unknown key", "[serve]\nallow_remotes = true\n", []string{
			`FILE:2: serve.allow_remotes: unknown key (did you mean "allow_remote"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := load(t, tt.doc)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Without [serve] nothing listens; what a [serve] table says is decoded
// with paths made absolute; a remote address loads with allow_remote and
// TLS.
func TestServeValues(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, errs := load(t, account)
	if errs != nil {
		t.Fatal(errs)
	}
	if want := (Serve{TLS: "starttls"}); c.Serve != want || c.Serve.Enabled() {
		t.Errorf("no [serve]: %+v (enabled %v), want every endpoint off", c.Serve, c.Serve.Enabled())
	}

	c, errs = load(t, account+`[serve]
imap = "0.0.0.0:993"
pop3 = "[::1]:1110"
username = "me"
password_cmd = "echo local-pw"
tls = "implicit"
cert_file = "~/cert.pem"
key_file = "key.pem"
allow_remote = true
pop3_folder = "Lists/pop"
`)
	if errs != nil {
		t.Fatal(errs)
	}
	want := Serve{IMAP: "0.0.0.0:993", POP3: "[::1]:1110", Username: "me", PasswordCmd: "echo local-pw", TLS: "implicit",
		CertFile: filepath.Join(home, "cert.pem"), KeyFile: filepath.Join(filepath.Dir(c.File), "key.pem"), AllowRemote: true, POP3Folder: "Lists/pop"}
	if c.Serve != want {
		t.Errorf("serve = %+v\nwant    %+v", c.Serve, want)
	}
	if pw, err := c.Serve.Secret(t.Context()); pw != "local-pw" || err != nil {
		t.Errorf("Secret = %q, %v", pw, err)
	}
	if pw, err := (&Serve{}).Secret(t.Context()); pw != "" || err != nil {
		t.Errorf("Secret with none configured = %q, %v", pw, err)
	}
	// The certificate is read by config check, not by Load.
	var got []string
	for _, e := range c.CheckEnvironment() {
		got = append(got, strings.ReplaceAll(strings.ReplaceAll(e.Error(), c.File, "FILE"), filepath.Dir(c.File), "DIR"))
	}
	wantEnv := []string{"FILE:13: serve.cert_file: " + filepath.Join(home, "cert.pem") + ": no such file or directory"}
	if !reflect.DeepEqual(got, wantEnv) {
		t.Errorf("CheckEnvironment:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantEnv, "\n"))
	}
}

// A certificate with tls = "none" is a warning; a [serve] password makes
// the file one that must be private.
func TestServeWarnings(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	path := filepath.Join(t.TempDir(), "config.toml")
	doc := "[serve]\nimap = \"127.0.0.1:1143\"\ntls = \"none\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\npassword = \"local\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, strings.ReplaceAll(w.Error(), path, "FILE"))
	}
	want := []string{
		"FILE: warning: holds a password, and group or others can read it (mode 0644): chmod 600 FILE",
		`FILE:4: serve.cert_file: warning: unused: tls = "none" serves no TLS`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
