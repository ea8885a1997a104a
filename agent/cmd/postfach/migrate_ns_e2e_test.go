package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestMigrateIntoNamespace: `postfach migrate` from POP3 into an IMAP
// account whose server keeps folders below "INBOX." (with '.' between
// levels): the dry run names the server folder INBOX.Imported.Old, the
// run puts the mail there and verifies it, a rerun copies nothing; the
// account's namespace_prefix overrides the server's.
func TestMigrateIntoNamespace(t *testing.T) {
	t.Parallel()
	carol := testenv.User{Name: "carol", Password: "carol-pass"}
	dave := testenv.User{Name: "dave", Password: "dave-pass"}
	d := testenv.StartDovecot(t, carol, dave, testenv.WithNamespace("INBOX.", '.'), testenv.WithoutExtensions())
	const n = 12
	d.Seed(t, carol.Name, corpus.Generate(31, n, corpus.Options{Folders: []string{"INBOX"}}))
	config, _ := migrateConfig(t, d, [3]string{"pop3", "old", carol.Name}, [3]string{"imap", "new", dave.Name})

	r := mustRun(t, nil, "--config", config, "migrate", "--from", "old", "--to", "new:Imported/Old", "--dry-run")
	if !strings.Contains(r.stdout, fmt.Sprintf("would copy %d messages", n)) || !strings.Contains(r.stdout, "server folder INBOX.Imported.Old") {
		t.Errorf("dry run output lacks the server folder INBOX.Imported.Old:\n%s", r.stdout)
	}
	res, folders := migrateJSON(t, config, "--from", "old", "--to", "new:Imported/Old")
	if f := folders["Imported/Old"]; res.Copied != n || res.Missing != 0 || !res.Complete || !f.Created {
		t.Errorf("run: %+v, folder %+v; want %d copied into a new folder", res, f, n)
	}
	if got := migrateServerFolders(t, config, "--from", "old", "--to", "new:Imported/Old", "--dry-run"); got["Imported/Old"] != "INBOX.Imported.Old" {
		t.Errorf("migrate --json: server folders %v, want Imported/Old in INBOX.Imported.Old", got)
	}
	if got := mailboxes(t, d, dave.Name)["INBOX.Imported.Old"]; len(got) != n {
		t.Errorf("INBOX.Imported.Old holds %d messages, want %d", len(got), n)
	}
	res, _ = migrateJSON(t, config, "--from", "old", "--to", "new:Imported/Old")
	if res.Copied != 0 || res.Missing != 0 || !res.Complete {
		t.Errorf("rerun: %+v, want nothing copied", res)
	}

	// namespace_prefix = "" (last in the file: the destination's) says
	// the folder is top-level, whatever the server says.
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, append(b, "namespace_prefix = \"\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := migrateServerFolders(t, config, "--from", "old", "--to", "new:Imported/Old", "--dry-run"); got["Imported/Old"] != "Imported.Old" {
		t.Errorf("dry run with namespace_prefix = \"\": server folders %v, want Imported/Old in Imported.Old", got)
	}
}

// migrateServerFolders runs `migrate --json` with args and returns the server
// folder of each folder event.
func migrateServerFolders(t *testing.T, config string, args ...string) map[string]string {
	t.Helper()
	r := mustRun(t, nil, append([]string{"--config", config, "migrate", "--json"}, args...)...)
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev struct {
			Event, Folder string
			Server        string `json:"server_folder"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("migrate --json: line %q is not JSON: %v", line, err)
		}
		if ev.Event == "folder" {
			out[ev.Folder] = ev.Server
		}
	}
	return out
}
