package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestConfigWarnings: `config check` prints each folder_map target that
// can collide as one warning line with file:line and key, and still exits
// 0; two server folders mapped to one local folder is an error.
func TestConfigWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"),
		account{name: "work", host: "127.0.0.1", port: 143, tls: "none", user: "me", password: "x"})
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(base), "\n")
	write := func(extra string) {
		if err := os.WriteFile(cfg, append(base, extra...), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("[accounts.folder_map]\nPosteingang = \"INBOX\"\n\"Sent Items\" = \"Sent\"\n")
	r := run(t, nil, "--config", cfg, "config", "check")
	want := cfg + ":" + strconv.Itoa(n+2) + `: accounts[1].folder_map.Posteingang: warning: maps to "INBOX", where the server's own INBOX lands too`
	if r.code != 0 || !strings.Contains(r.stdout, "ok (1 account,") || !strings.Contains(r.stdout, "1 warning)") ||
		strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("config check with a warning: %s\nwant exit 0 and one line starting %q", r, want)
	}

	write("[accounts.folder_map]\n\"Sent Items\" = \"Sent\"\n\"Gesendet\" = \"Sent\"\n")
	r = run(t, nil, "--config", cfg, "config", "check")
	want = cfg + ":" + strconv.Itoa(n+3) + `: accounts[1].folder_map.Gesendet: maps to "Sent" like "Sent Items" (line ` + strconv.Itoa(n+2) +
		"): two server folders in one local folder\n"
	if r.code == 0 || r.stderr != want {
		t.Errorf("config check with two server folders in one: %s\nwant a failure and stderr %q", r, want)
	}
}

// TestUsageErrors: a command given the wrong arguments says which
// command and how it is used, in one line; --version answers.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"search"}, "postfach: search: a query is needed, such as from:alice invoice (usage: postfach search "},
		{[]string{"restore"}, "postfach: restore: accepts 1 arg(s), received 0 (usage: postfach restore SNAPSHOT"},
		{[]string{"config", "check", "extra"}, "postfach: config check: "},
	} {
		r := run(t, nil, tc.args...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("postfach %s: %s\nwant a failure and one line starting %q", strings.Join(tc.args, " "), r, tc.want)
		}
	}
	// A config without accounts: sync says so and fails, status says so.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("[store]\npath = \""+filepath.Join(dir, "store")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, "--config", cfg, "sync"); r.code == 0 || !strings.Contains(r.stderr, cfg+" has no accounts to sync") {
		t.Errorf("sync without accounts: %s", r)
	}
	if r := run(t, nil, "--config", cfg, "status"); r.code != 0 || !strings.HasPrefix(r.stdout, "no accounts in "+cfg) {
		t.Errorf("status without accounts: %s", r)
	}
	r := run(t, nil, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "postfach ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("postfach --version: %s", r)
	}
}
