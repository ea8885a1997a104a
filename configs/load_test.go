package configs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// load writes doc to a config file in a temporary directory and loads it;
// errors name the file "FILE".
func load(t *testing.T, doc string) (*Config, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err == nil {
		return c, nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load: %v is not an ErrorList", err)
	}
	if c != nil {
		t.Errorf("Load returned a config and an error")
	}
	return nil, strings.Split(strings.ReplaceAll(err.Error(), path, "FILE"), "\n")
}

// account is a valid IMAP account to build test documents on.
const account = `[[accounts]]
name = "a"
kind = "imap"
host = "imap.example.org"
username = "u"
password = "p"
`

func TestLoadErrors(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"syntax", "[store]\npath = \"x\ny = 1\n", []string{
			"FILE:2:10: basic strings cannot have new lines"}},
		{"duplicate key", "[store]\npath = \"a\"\npath = \"b\"\n", []string{
			"FILE:3:1: key path is already defined"}},
		{"unknown keys", account + "hots = \"x\"\nfoo = 1\n[storage]\npath = \"x\"\n[store]\npaht = \"y\"\n", []string{
			`FILE:7: accounts[1].hots: unknown key (did you mean "host"?)`,
			"FILE:8: accounts[1].foo: unknown key",
			`FILE:9: storage: unknown key (did you mean "store"?)`,
			`FILE:12: store.paht: unknown key (did you mean "path"?)`}},
		{"unknown key in smtp", account + "[accounts.smtp]\nhost = \"s\"\nport = 587\ntls = \"starttls\"\nfrom = \"x\"\n", []string{
			"FILE:11: accounts[1].smtp.from: unknown key"}},
		{"wrong types", account + "port = \"993\"\ncreate_folders = \"yes\"\nfolders = [\"INBOX\", 3]\nmax_size = 1.5\nconnections = 2.0\n[accounts.folder_map]\n\"Sent Items\" = true\n[serve]\nimap = 1143\n", []string{
			"FILE:7: accounts[1].port: must be an integer, not a string",
			"FILE:8: accounts[1].create_folders: must be a boolean (true or false), not a string",
			"FILE:9: accounts[1].folders[2]: must be a string, not an integer",
			`FILE:10: accounts[1].max_size: must be an integer or a string like "10MB", not a float`,
			"FILE:11: accounts[1].connections: must be an integer, not a float",
			`FILE:13: accounts[1].folder_map."Sent Items": must be a string, not a boolean`,
			"FILE:15: serve.imap: must be a string, not an integer"}},
		{"wrong container types", "store = \"~/Mail\"\naccounts = 5\n[serve]\nimap = [\"a\"]\n", []string{
			"FILE:1: store: must be a table, not a string",
			"FILE:2: accounts: must be an array of tables ([[accounts]]), not an integer",
			"FILE:4: serve.imap: must be a string, not an array"}},
		{"account not a table", "accounts = [1]\n", []string{
			"FILE:1: accounts[1]: must be a table, not an integer"}},
		{"missing keys", "[store]\n\n[[accounts]]\nport = 993\n", []string{
			"FILE:3: accounts[1]: no password: set one of password, password_env or password_cmd (or token_cmd for an OAuth2 token)",
			"FILE:3: accounts[1].host: required",
			`FILE:3: accounts[1].kind: required ("imap" or "pop3")`,
			"FILE:3: accounts[1].name: required",
			"FILE:3: accounts[1].username: required"}},
		{"empty values", "[[accounts]]\nname = \"\"\nkind = \"imap\"\nhost = \"\"\nusername = \"\"\npassword_env = \"\"\n", []string{
			"FILE:2: accounts[1].name: must not be empty",
			"FILE:4: accounts[1].host: must not be empty",
			"FILE:5: accounts[1].username: must not be empty",
			"FILE:6: accounts[1].password_env: must not be empty"}},
		{"duplicate names", account + account + strings.Replace(account, `"a"`, `"A"`, 1), []string{
			`FILE:8: accounts[2].name: duplicate account name "a" (also at line 2)`,
			`FILE:14: accounts[3].name: duplicate account name "A" (also at line 2)`}},
		{"bad names", strings.Replace(account, `"a"`, `".x"`, 1) + strings.Replace(account, `"a"`, `"a/b"`, 1), []string{
			`FILE:2: accounts[1].name: must not start with "."`,
			`FILE:8: accounts[2].name: must not contain "/" or "\"`}},
		{"bad kind", strings.Replace(account, `"imap"`, `"maildir"`, 1), []string{
			`FILE:3: accounts[1].kind: must be "imap" or "pop3", not "maildir"`}},
		{"bad tls", account + "tls = \"ssl\"\n", []string{
			`FILE:7: accounts[1].tls: must be "implicit", "starttls" or "none", not "ssl"`}},
		{"tls none to remote host", account + "tls = \"none\"\n", []string{
			`FILE:7: accounts[1].tls: "none" sends the password in clear text to imap.example.org, which is not loopback; set allow_insecure = true to allow it`}},
		{"tls none in smtp", account + "[accounts.smtp]\nhost = \"10.0.0.1\"\ntls = \"none\"\n", []string{
			`FILE:9: accounts[1].smtp.tls: "none" sends the password in clear text to 10.0.0.1, which is not loopback; set allow_insecure = true to allow it`}},
		{"bad host", strings.Replace(account, `"imap.example.org"`, `"imap.example.org:993"`, 1) + strings.NewReplacer(`"imap.example.org"`, `"imap example"`, `"a"`, `"b"`).Replace(account), []string{
			"FILE:4: accounts[1].host: must not hold the port: set port = 993",
			`FILE:10: accounts[2].host: must be a host name or IP address, not "imap example"`}},
		{"two secrets", account + "password_cmd = \"pass x\"\npassword_env = \"X\"\n", []string{
			"FILE:7: accounts[1].password_cmd: conflicts with password (line 6): set only one of password, password_env or password_cmd",
			"FILE:8: accounts[1].password_env: conflicts with password (line 6): set only one of password, password_env or password_cmd"}},
		{"port range", account + "port = 0\n" + strings.Replace(account, `"a"`, `"b"`, 1) + "port = 70000\n", []string{
			"FILE:7: accounts[1].port: must be between 1 and 65535, not 0",
			"FILE:14: accounts[2].port: must be between 1 and 65535, not 70000"}},
		{"direction expunge", account + "direction = \"up\"\nexpunge = \"never\"\n", []string{
			`FILE:7: accounts[1].direction: must be "both", "pull" or "push", not "up"`,
			`FILE:8: accounts[1].expunge: must be "both", "local", "remote" or "none", not "never"`}},
		{"poll_interval", account + "poll_interval = \"5\"\n" + strings.Replace(account, `"a"`, `"b"`, 1) + "poll_interval = \"1s\"\n", []string{
			`FILE:7: accounts[1].poll_interval: "5" is not a duration (write it as 90s, 5m or 1h30m)`,
			"FILE:14: accounts[2].poll_interval: must be at least 10s, not 1s"}},
		{"poll_interval number", account + "poll_interval = 300\n", []string{
			`FILE:7: accounts[1].poll_interval: must be a duration in quotes with its unit, such as "300s" or "5m", not a bare number`}},
		{"idle_folders", account + "connections = 1\nidle_folders = [\"INBOX\", \"Lists\"]\n", []string{
			"FILE:8: accounts[1].idle_folders: 2 folders, but connections = 1: each IDLE holds a connection open, and the sync needs one"}},
		{"connections range", account + "connections = 0\n" + strings.Replace(account, `"a"`, `"b"`, 1) + "connections = 17\n", []string{
			"FILE:7: accounts[1].connections: must be between 1 and 16, not 0",
			"FILE:14: accounts[2].connections: must be between 1 and 16, not 17"}},
		{"imap limits", account + "max_delete_percent = 101\nmax_age_days = -1\nmax_size = \"10XB\"\n", []string{
			"FILE:7: accounts[1].max_delete_percent: must be between 0 and 100, not 101",
			"FILE:8: accounts[1].max_age_days: must not be negative",
			`FILE:9: accounts[1].max_size: must be a number of bytes or a string like "10MB" or "512k", not "10XB"`}},
		{"folders", account + "folders = [\"INBOX\", \"\", \"!\"]\n" + strings.Replace(account, `"a"`, `"b"`, 1) + "folders = []\n", []string{
			"FILE:7: accounts[1].folders[2]: empty pattern",
			"FILE:7: accounts[1].folders[3]: empty pattern",
			`FILE:14: accounts[2].folders: must not be empty (["*"] is every folder)`}},
		{"folder map", account + "[accounts.folder_map]\n\"Sent Items\" = \"Sent\"\n\"Sent Mail\" = \"Sent\"\nTrash = \"\"\n", []string{
			`FILE:9: accounts[1].folder_map."Sent Mail": maps to "Sent" like "Sent Items" (line 8): two server folders in one local folder`,
			"FILE:10: accounts[1].folder_map.Trash: must not be empty"}},
		{"namespace prefix", account + "namespace_prefix = \"INBOX.*\"\n" + strings.Replace(account, `"a"`, `"b"`, 1) + "namespace_prefix = \" INBOX.\"\n" +
			strings.Replace(account, `"a"`, `"c"`, 1) + "namespace_prefix = 1\n" + strings.Replace(account, `"a"`, `"d"`, 1) + "namespace_prefix = \"IN\\u0007BOX.\"\n", []string{
			`FILE:7: accounts[1].namespace_prefix: must not hold "*" or "%": it is a folder name, not a pattern (for example "INBOX.")`,
			"FILE:14: accounts[2].namespace_prefix: must not start or end with blanks",
			"FILE:21: accounts[3].namespace_prefix: must be a string, not an integer",
			"FILE:28: accounts[4].namespace_prefix: must not hold control characters"}},
		{"pop3 keys on imap", account + "keep = false\nfolder = \"INBOX\"\n", []string{
			`FILE:7: accounts[1].keep: only valid for kind = "pop3"`,
			`FILE:8: accounts[1].folder: only valid for kind = "pop3"`}},
		{"imap keys on pop3", strings.Replace(account, `"imap"`, `"pop3"`, 1) + "folders = [\"*\"]\nconnections = 2\n", []string{
			`FILE:7: accounts[1].folders: only valid for kind = "imap"`,
			`FILE:8: accounts[1].connections: only valid for kind = "imap"`}},
		{"pop3 delete without keep", strings.Replace(account, `"imap"`, `"pop3"`, 1) + "keep = false\ndelete_after_days = 7\n", []string{
			"FILE:8: accounts[1].delete_after_days: needs keep = true (with keep = false messages are deleted once downloaded)"}},
		{"smtp missing host", account + "\n[accounts.smtp]\nport = 587\n", []string{
			"FILE:8: accounts[1].smtp.host: required"}},
		{"smtp two secrets", account + "[accounts.smtp]\nhost = \"s\"\npassword = \"x\"\npassword_env = \"Y\"\n", []string{
			"FILE:10: accounts[1].smtp.password_env: conflicts with password (line 9): set only one of password, password_env or password_cmd"}},
		{"serve", "[serve]\nimap = \"localhost\"\npop3 = \"127.0.0.1:0\"\n", []string{
			`FILE:2: serve.imap: must be "host:port" (like "127.0.0.1:1143") or "", not "localhost"`,
			`FILE:3: serve.pop3: must be "host:port" (like "127.0.0.1:1110") or "", not "127.0.0.1:0"`}},
		{"backup", "[store]\npath = \"/m\"\n[backup]\npath = \"/m/backups\"\nschedule = \"daily 25:00\"\nkeep = -1\n", []string{
			"FILE:4: backup.path: must not be inside store.path (/m)",
			`FILE:5: backup.schedule: must be "hourly", "daily HH:MM" or "weekly DAY HH:MM" (DAY: mon..sun)`,
			"FILE:6: backup.keep: must not be negative"}},
		{"tilde user", "[store]\npath = \"~bob/Mail\"\n", []string{
			`FILE:2: store.path: "~bob/Mail": only "~" and "~/" are expanded, not ~user`}},
		{"inline accounts", "accounts = [\n  {name = \"a\", kind = \"imap\", host = \"h\", username = \"u\", password = \"p\"},\n  {name = \"b\", kind = \"imap\", username = \"u\", password = \"p\", smtp = {port = 1}},\n]\n", []string{
			"FILE:3: accounts[2].host: required",
			"FILE:3: accounts[2].smtp.host: required"}},
		{"dotted keys", account + "smtp.host = \"s\"\nsmtp.tls = \"bad\"\n", []string{
			`FILE:8: accounts[1].smtp.tls: must be "implicit", "starttls" or "none", not "bad"`}},
		{"everything at once", "[store]\npath = 1\n" + account + "port = 0\n[[accounts]]\nname = \"b\"\nkind = \"pop3\"\nhost = \"h\"\nusername = \"u\"\nfolders = [\"*\"]\n", []string{
			"FILE:2: store.path: must be a string, not an integer",
			"FILE:9: accounts[1].port: must be between 1 and 65535, not 0",
			"FILE:10: accounts[2]: no password: set one of password, password_env or password_cmd (or token_cmd for an OAuth2 token)",
			`FILE:15: accounts[2].folders: only valid for kind = "imap"`}},
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

func TestLoadAccepts(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	tests := []struct{ name, doc string }{
		{"no accounts", ""},
		{"tls none to localhost", strings.Replace(account, `"imap.example.org"`, `"LOCALHOST"`, 1) + "tls = \"none\"\n"},
		{"tls none to 127/8", strings.Replace(account, `"imap.example.org"`, `"127.1.2.3"`, 1) + "tls = \"none\"\n"},
		{"tls none to ::1", strings.Replace(account, `"imap.example.org"`, `"::1"`, 1) + "tls = \"none\"\n"},
		{"tls none allowed", account + "tls = \"none\"\nallow_insecure = true\n"},
		{"ca_file not read at load", account + "ca_file = \"/nonexistent/ca.pem\"\n"},
		{"password_cmd", strings.Replace(account, `password = "p"`, `password_cmd = "false"`, 1)},
		{"namespace prefix", account + "namespace_prefix = \"INBOX.\"\n"},
		{"no namespace prefix", account + "namespace_prefix = \"\"\n"},
		{"serve off", "[serve]\nimap = \"\"\npop3 = \"[::1]:1110\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, errs := load(t, tt.doc); errs != nil {
				t.Errorf("errors:\n%s", strings.Join(errs, "\n"))
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	doc := account + `
[[accounts]]
name = "b"
kind = "pop3"
host = "pop.example.org"
tls = "starttls"
username = "u"
password_env = "B"

[accounts.smtp]
host = "smtp.example.org"
`
	c, errs := load(t, doc)
	if errs != nil {
		t.Fatalf("errors:\n%s", strings.Join(errs, "\n"))
	}
	want := &Config{
		File:  c.File,
		Store: Store{Path: filepath.Join(home, "Mail")},
		Accounts: []Account{{
			Name: "a", Kind: "imap", Host: "imap.example.org", Port: 993, TLS: "implicit",
			Username: "u", Password: "p",
			Folders: []string{"*"}, Direction: "both", Expunge: "both", CreateFolders: true,
			MaxDeletePercent: 25, Connections: 4, Line: 1,
			IdleFolders: []string{"INBOX"}, PollInterval: 5 * time.Minute,
		}, {
			Name: "b", Kind: "pop3", Host: "pop.example.org", Port: 110, TLS: "starttls",
			Username: "u", PasswordEnv: "B",
			Folder: "INBOX", Keep: true, PollInterval: 5 * time.Minute,
			SMTP: &SMTP{Host: "smtp.example.org", Port: 465, TLS: "implicit", Username: "u", PasswordEnv: "B", Line: 16, account: "b",
				SaveSent: true, QueueExpiry: 5 * 24 * time.Hour, QueueWarn: 4 * time.Hour},
			Line: 8,
		}},
		Serve:  Serve{TLS: "starttls"}, // every endpoint off
		Backup: Backup{Path: filepath.Join(home, "MailBackups"), Keep: 14},
		name:   c.name,
		env:    []envCheck{{key: "accounts[2].password_env", line: 14, env: "B"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
		for i := range c.Accounts {
			t.Errorf("account %d:\ngot  %+v\nwant %+v", i, c.Accounts[i], want.Accounts[i])
		}
	}
	if !filepath.IsAbs(c.File) {
		t.Errorf("File %q is not absolute", c.File)
	}
	if a, ok := c.Account("b"); !ok || a != &c.Accounts[1] {
		t.Errorf("Account(b) = %p, %v", a, ok)
	}
	if _, ok := c.Account("c"); ok {
		t.Error("Account(c) found")
	}
	if got := c.Accounts[0].Addr(); got != "imap.example.org:993" {
		t.Errorf("Addr = %q", got)
	}
}

func TestValues(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	doc := `[store]
path = "mail"
[backup]
path = "~"
schedule = "weekly Sun 03:00"
keep = 0
` + account + `port = 1993
ca_file = "~/ca.pem"
folders = ["!Spam", "!Trash"]
max_size = "1.5M"
remove_folders = true
create_folders = false
[accounts.folder_map]
"[Gmail]/Sent Mail" = "Sent"
[accounts.smtp]
host = "::1"
tls = "none"
username = "other"
password_cmd = "echo x"
`
	c, errs := load(t, doc)
	if errs != nil {
		t.Fatalf("errors:\n%s", strings.Join(errs, "\n"))
	}
	a := c.Accounts[0]
	if want := filepath.Join(filepath.Dir(c.File), "mail"); c.Store.Path != want {
		t.Errorf("store.path = %q, want %q", c.Store.Path, want)
	}
	if c.Backup.Path != home || c.Backup.Schedule != "weekly Sun 03:00" || c.Backup.Keep != 0 {
		t.Errorf("backup = %+v", c.Backup)
	}
	if a.Port != 1993 || a.CAFile != filepath.Join(home, "ca.pem") || a.MaxSize != 3<<19 || !a.RemoveFolders || a.CreateFolders {
		t.Errorf("account = %+v", a)
	}
	if want := []string{"*", "!Spam", "!Trash"}; !reflect.DeepEqual(a.Folders, want) {
		t.Errorf("folders = %q, want %q", a.Folders, want)
	}
	if want := map[string]string{"[Gmail]/Sent Mail": "Sent"}; !reflect.DeepEqual(a.FolderMap, want) {
		t.Errorf("folder_map = %q", a.FolderMap)
	}
	s := a.SMTP
	if s.Addr() != "[::1]:25" || s.Username != "other" || s.PasswordCmd != "echo x" || s.Password != "" {
		t.Errorf("smtp = %+v", s)
	}
}

func TestExample(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, errs := load(t, string(Example))
	if errs != nil {
		t.Fatalf("example.toml:\n%s", strings.Join(errs, "\n"))
	}
	if len(c.Accounts) != 1 || c.Accounts[0].PasswordEnv == "" {
		t.Fatalf("accounts = %+v", c.Accounts)
	}
	a := c.Accounts[0]
	t.Setenv(a.PasswordEnv, "s3cret")
	if pw, err := a.Secret(t.Context()); err != nil || pw != "s3cret" {
		t.Errorf("Secret = %q, %v", pw, err)
	}
	if pw, err := a.SMTP.Secret(t.Context()); err != nil || pw != "s3cret" {
		t.Errorf("SMTP.Secret = %q, %v", pw, err)
	}
	if c.Store.Path != filepath.Join(home, "Mail") {
		t.Errorf("store.path = %q", c.Store.Path)
	}
	// The file on disk is what is embedded.
	onDisk, err := os.ReadFile("example.toml")
	if err != nil || string(onDisk) != string(Example) {
		t.Errorf("Example differs from example.toml (%v)", err)
	}
}

func TestLoadLimits(t *testing.T) {
	_, errs := load(t, strings.Repeat("# comment\n", 30000))
	if want := []string{"FILE: larger than 256 KiB: not a postfach config file"}; !reflect.DeepEqual(errs, want) {
		t.Errorf("big file: %q", errs)
	}
	_, errs = load(t, strings.Repeat("[[accounts]]\n", 50))
	if len(errs) != maxErrors+1 || errs[maxErrors] != "FILE: 150 more errors" {
		t.Errorf("%d errors, last %q", len(errs), errs[len(errs)-1])
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("HOME", "/home/me")
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if got := DefaultPath(); got != "/xdg/postfach/config.toml" {
		t.Errorf("DefaultPath = %q", got)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative")
	if got := DefaultPath(); got != "/home/me/.config/postfach/config.toml" {
		t.Errorf("DefaultPath = %q", got)
	}
}

func TestErrorFormat(t *testing.T) {
	l := ErrorList{
		{File: "c.toml", Line: 3, Key: "accounts[1].port", Msg: "bad"},
		{File: "c.toml", Line: 1, Col: 5, Msg: "syntax"},
		{File: "c.toml", Key: "store.path", Msg: "no home"},
	}
	want := "c.toml:3: accounts[1].port: bad\nc.toml:1:5: syntax\nc.toml: store.path: no home"
	if l.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", l.Error(), want)
	}
	var e *Error
	if !errors.As(error(l), &e) || e != l[0] {
		t.Error("errors.As does not find the first Error")
	}
}

// TestNoHome: without a home directory (cron, env -i) the defaults under
// "~" cannot apply: a config without [store] gets one clear error, one
// with it loads, with no backup path, never a crash.
func TestNoHome(t *testing.T) {
	t.Setenv("HOME", "")
	account := "[[accounts]]\nname = \"a\"\nkind = \"imap\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n"
	if _, errs := load(t, account); len(errs) != 1 || !strings.Contains(errs[0], "store.path: not set, and its default, ~/Mail, needs a home directory") {
		t.Errorf("no [store], no home: errors %q", errs)
	}
	c, errs := load(t, "[store]\npath = \"/srv/mail\"\n\n"+account)
	if len(errs) != 0 {
		t.Fatalf("[store] set, no home: errors %q", errs)
	}
	if c.Store.Path != "/srv/mail" || c.Backup.Path != "" {
		t.Errorf("store %q, backup %q; want /srv/mail and none", c.Store.Path, c.Backup.Path)
	}
}
