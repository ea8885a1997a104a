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
