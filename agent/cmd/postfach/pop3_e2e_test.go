package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestSyncPOP3: a pop3 account with keep = false is fetched into the store
// by `postfach sync`, emptied on the server, and reported in the JSON and
// text results and in status.
func TestSyncPOP3(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	const n = 60
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, n, corpus.Options{Folders: []string{"INBOX"}}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	pass, _ := d.Password(testenv.DefaultUser.Name)
	config := filepath.Join(dir, "postfach.toml")
	doc := fmt.Sprintf(`[store]
path = %q

[[accounts]]
name = "pop"
kind = "pop3"
host = %q
port = %d
tls = "none"
username = %q
password = %q
folder = "Fetched"
keep = false
`, store, d.Host, d.POP3Port, testenv.DefaultUser.Name, pass)
	if err := os.WriteFile(config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	r := mustRun(t, nil, "--config", config, "sync", "--json")
	var res map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("sync --json: line %q is not JSON: %v", line, err)
		}
		if ev["event"] == "result" {
			res = ev
		}
	}
	if res == nil || res["account"] != "pop" || res["new"] != float64(n) || res["deleted"] != float64(n) ||
		res["bytes"].(float64) <= 0 || res["error"] != nil {
		t.Fatalf("sync --json result: %v\n%s", res, r)
	}
	msgs, tmp := fileCounts(t, filepath.Join(store, "pop", "Fetched"))
	if msgs != n || tmp != 0 {
		t.Errorf("store holds %d messages and %d tmp files, want %d and 0", msgs, tmp, n)
	}

	r = mustRun(t, nil, "--config", config, "sync")
	if !strings.HasPrefix(r.stdout, "pop: 0 new (0 B), 0 deleted on the server in ") {
		t.Errorf("sync output: %q", r.stdout)
	}
	st := getStatus(t, config)
	if len(st.Accounts) != 1 || st.Accounts[0].Messages != n || st.Accounts[0].Error != "" ||
		len(st.Accounts[0].Folders) != 1 || st.Accounts[0].Folders[0].LastSync == "" {
		t.Errorf("status: %+v", st)
	}
}

// TestSyncDryRunFreshStore: the quick start's `postfach sync --dry-run`,
// on a store that never synced, with an IMAP and a POP3 account: it exits
// 0, prints each account's plan, stores nothing and deletes nothing; the
// real run that follows does what the plan said.
func TestSyncDryRunFreshStore(t *testing.T) {
	t.Parallel()
	popUser := testenv.User{Name: "popper", Password: "popper-pass"}
	d := testenv.StartDovecot(t, testenv.DefaultUser, popUser)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(6, 20, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	d.Seed(t, popUser.Name, corpus.Generate(7, 9, corpus.Options{Folders: []string{"INBOX"}}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	config := writeConfig(t, dir, "c.toml", store, imapAccount(d, "work"))
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[accounts]]\nname = \"pop\"\nkind = \"pop3\"\nhost = %q\nport = %d\ntls = \"none\"\nusername = %q\npassword = %q\nkeep = false\n",
		d.Host, d.POP3Port, popUser.Name, popUser.Password)
	f.Close()

	r := mustRun(t, nil, "--config", config, "sync", "--dry-run")
	for _, want := range []string{
		"work: dry run, nothing changed. A real run would:",
		"pop: dry run, nothing changed. A real run would download 9 messages (",
		") and delete 9 on the server\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sync --dry-run: no %q in\n%s", want, r)
		}
	}
	plans := map[string]map[string]any{}
	r = mustRun(t, nil, "--config", config, "sync", "--dry-run", "--json")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if ev["event"] == "result" {
			plans[ev["account"].(string)] = ev
		}
	}
	if msgs, _ := fileCounts(t, store); msgs != 0 {
		t.Errorf("the dry runs stored %d messages", msgs)
	}
	if p := plans["pop"]; p == nil || p["dry_run"] != true || p["new"] != float64(9) || p["deleted"] != float64(9) || len(p["plan"].([]any)) != 18 {
		t.Errorf("pop's plan: %v", p)
	}
	if p := plans["work"]; p == nil || p["dry_run"] != true || p["new"] != float64(20) || p["bytes"].(float64) <= 0 {
		t.Errorf("work's plan: %v", p)
	}
	r = mustRun(t, nil, "--config", config, "sync", "--json")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		json.Unmarshal([]byte(line), &ev)
		if ev["event"] != "result" {
			continue
		}
		p := plans[ev["account"].(string)]
		for _, k := range []string{"new", "bytes", "deleted", "uploaded", "flags", "expunged"} {
			if ev[k] != p[k] {
				t.Errorf("%s: %s: the dry run planned %v, the run did %v", ev["account"], k, p[k], ev[k])
			}
		}
	}
}
