package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A config holding a password: readable by group or others it loads with a
// warning every command prints (as fetchmail warns); owned by another user
// it is refused. Without a password in it, its mode does not matter.
func TestSecretFilePermissions(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	envAccount := strings.Replace(account, `password = "p"`, `password_env = "X"`, 1)
	tests := []struct {
		name     string
		doc      string
		mode     os.FileMode
		otherUID bool
		warn     string // "" = none
		err      string // "" = loads
	}{
		{"private", account, 0o600, false, "", ""},
		{"group readable", account, 0o640, false, "FILE: warning: holds a password, and group or others can read it (mode 0640): chmod 600 FILE", ""},
		{"world readable", account, 0o644, false, "FILE: warning: holds a password, and group or others can read it (mode 0644): chmod 600 FILE", ""},
		{"group writable", account, 0o620, false, "FILE: warning: holds a password, and group or others can change it (mode 0620): chmod 600 FILE", ""},
		{"smtp password", envAccount + "[accounts.smtp]\nhost = \"s\"\npassword = \"q\"\n", 0o644, false, "FILE: warning: holds a password, and group or others can read it (mode 0644): chmod 600 FILE", ""},
		{"no password", envAccount, 0o644, false, "", ""},
		{"other owner", account, 0o600, true, "", "FILE: holds a password but is owned by uid %d, not by you (uid %d): refused; own it and chmod 600 it"},
		{"other owner, no password", envAccount, 0o644, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.otherUID {
				// The file is ours: pretend we are someone else.
				me := os.Geteuid()
				geteuid = func() int { return me + 1 }
				t.Cleanup(func() { geteuid = os.Geteuid })
				tt.err = strings.Replace(strings.Replace(tt.err, "%d", itoa(me), 1), "%d", itoa(me+1), 1)
			}
			c, err := Load(path)
			if tt.err != "" {
				var list ErrorList
				if !errors.As(err, &list) || strings.ReplaceAll(err.Error(), path, "FILE") != tt.err {
					t.Fatalf("Load: %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range c.Warnings {
				if w.Always {
					got = append(got, strings.ReplaceAll(w.Error(), path, "FILE"))
				}
			}
			want := []string{}
			if tt.warn != "" {
				want = append(want, tt.warn)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("warnings every command prints: %q, want %q", got, want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A POP3 folder must stay below the account's folder, and the local
// endpoints listen on loopback only unless allow_remote (see serve_test.go).
func TestFolderAndServeChecks(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	pop := "[[accounts]]\nname = \"p\"\nkind = \"pop3\"\nhost = \"pop.example.org\"\nusername = \"u\"\npassword = \"p\"\n"
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"dotdot", pop + "folder = \"../../x\"\n", []string{
			`FILE:7: accounts[1].folder: "../../x" has a ".." level: a folder is below the account's folder, like "INBOX" or "Lists/pop"`}},
		{"dot", pop + "folder = \"a/./b\"\n", []string{
			`FILE:7: accounts[1].folder: "a/./b" has a "." level: a folder is below the account's folder, like "INBOX" or "Lists/pop"`}},
		{"absolute", pop + "folder = \"/x\"\n", []string{
			`FILE:7: accounts[1].folder: "/x" has an empty level (a leading, trailing or double "/")`}},
		{"control", pop + "folder = \"a\\u001b[2Jb\"\n", []string{
			`FILE:7: accounts[1].folder: "a\x1b[2Jb" holds a control character`}},
		{"serve any", "[serve]\nimap = \"0.0.0.0:1143\"\npop3 = \":1110\"\nsubmission = \"192.168.1.2:1587\"\n", []string{
			`FILE:2: serve.imap: "0.0.0.0:1143" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1143")`,
			`FILE:3: serve.pop3: ":1110" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1110")`,
			`FILE:4: serve.submission: "192.168.1.2:1587" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1587")`}},
		{"serve loopback", "[serve]\nimap = \"localhost:1143\"\npop3 = \"[::1]:1110\"\nsubmission = \"127.0.0.2:1587\"\n", nil},
		{"nested folder", pop + "folder = \"Lists/pop\"\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := load(t, tt.doc)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// CheckEnvironment finds what a run would fail on outside the file: a
// missing or invalid ca_file, an unset or empty password_env.
func TestCheckEnvironment(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate\n"), 0o600)
	t.Setenv("POSTFACH_TEST_SET", "pw")
	t.Setenv("POSTFACH_TEST_EMPTY", "")
	doc := `[[accounts]]
name = "a"
kind = "imap"
host = "imap.example.org"
username = "u"
password_env = "POSTFACH_TEST_UNSET"
ca_file = "` + filepath.Join(dir, "missing.pem") + `"

[[accounts]]
name = "b"
kind = "imap"
host = "imap.example.org"
username = "u"
password_env = "POSTFACH_TEST_EMPTY"
ca_file = "` + bad + `"

[accounts.smtp]
host = "smtp.example.org"
password_env = "POSTFACH_TEST_UNSET2"

[[accounts]]
name = "c"
kind = "imap"
host = "imap.example.org"
username = "u"
password_env = "POSTFACH_TEST_SET"
`
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte(doc), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range c.CheckEnvironment() {
		got = append(got, strings.ReplaceAll(strings.ReplaceAll(e.Error(), path, "FILE"), dir, "DIR"))
	}
	want := []string{
		"FILE:6: accounts[1].password_env: environment variable POSTFACH_TEST_UNSET is not set here",
		"FILE:7: accounts[1].ca_file: DIR/missing.pem: no such file or directory",
		"FILE:14: accounts[2].password_env: environment variable POSTFACH_TEST_EMPTY is empty here",
		"FILE:15: accounts[2].ca_file: DIR/bad.pem holds no PEM certificate",
		"FILE:19: accounts[2].smtp.password_env: environment variable POSTFACH_TEST_UNSET2 is not set here",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
