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

// syncEvent runs sync --json and returns the account's result event as a
// map (every key), with the exit status.
func syncEvent(t *testing.T, config, acct string, args ...string) (map[string]any, int) {
	t.Helper()
	r := run(t, nil, append([]string{"--config", config, "sync", "--json"}, args...)...)
	var found map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("sync --json: line %q is not JSON: %v\n%s", line, err, r)
		}
		if ev["event"] == "result" && ev["account"] == acct {
			found = ev
		}
	}
	if found == nil {
		t.Fatalf("sync --json: no result for %s:\n%s", acct, r)
	}
	return found, r.code
}

// TestSyncRefusedAndTooLarge: a message the server refuses to store makes
// sync exit 3 (not 0, not 1), is counted in --json and in the summary, and
// status shows it on its folder until a run uploads it; messages left by
// max_size are counted with their sizes in the summary, the JSON (result
// and dry-run plan) and status.
func TestSyncRefusedAndTooLarge(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.WithConfig(`
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_rule = *:storage=1G
  quota_vsizes = yes
  quota_max_mail_size = 20k
}
`))
	msgs := corpus.Generate(4, 3, corpus.Options{Folders: []string{"INBOX"}})
	d.Seed(t, testenv.DefaultUser.Name, msgs)
	big := corpus.Generate(5, 1, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 1, BigAttachmentSize: 60 << 10})
	// Dovecot's limit applies to APPEND, not to delivery: seed as files.
	d.SeedFiles(t, testenv.DefaultUser.Name, big)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	config := writeConfig(t, dir, "c.toml", store, imapAccount(d, "work"))
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `max_size = "40k"`)
	f.Close()

	plan, code := syncEvent(t, config, "work", "--dry-run")
	if code != 0 || plan["too_large"] != float64(1) || plan["too_large_bytes"].(float64) < 60<<10 {
		t.Errorf("dry run: exit %d, %v", code, plan)
	}
	ev, code := syncEvent(t, config, "work")
	if code != 0 || ev["too_large"] != float64(1) || ev["too_large_bytes"] != plan["too_large_bytes"] || ev["refused"] != float64(0) {
		t.Errorf("first run: exit %d, %v", code, ev)
	}
	// A local message of 30 KB: within max_size, over the server's 20k.
	raw := "From: me@example.org\nSubject: too big for the server\nMessage-ID: <big-local@example.org>\n\n" + strings.Repeat("A line of a large message.\n", 1100)
	inbox := filepath.Join(store, "work", "INBOX", "new", "1772445600.M1P1.laptop")
	if err := os.WriteFile(inbox, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	ev, code = syncEvent(t, config, "work")
	if code != 3 || ev["refused"] != float64(1) || ev["uploaded"] != float64(0) {
		t.Errorf("a refused upload: exit %d, %v; want exit 3 and refused 1", code, ev)
	}
	r := run(t, nil, "--config", config, "sync")
	if r.code != 3 || !strings.Contains(r.stdout, "1 refused by the server") ||
		!strings.Contains(r.stdout, "1 larger than max_size not copied") ||
		!strings.Contains(r.stderr, "the server refused 1 message;") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("sync with a refused upload:\n%s", r)
	}
	st := getStatus(t, config)
	var note string
	for _, f := range st.Accounts[0].Folders {
		if f.Name == "INBOX" {
			note = f.Error
		}
	}
	if !strings.Contains(note, "1 message refused by the server") || !strings.Contains(note, "1 message larger than max_size not copied") {
		t.Errorf("status shows INBOX's error as %q", note)
	}
	text := mustRun(t, nil, "--config", config, "status").stdout
	if !strings.Contains(text, "1 message refused by the server") {
		t.Errorf("status:\n%s", text)
	}
	// Gone from here: the next run succeeds, and status forgets it.
	if err := filepath.Walk(filepath.Join(store, "work", "INBOX"), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, "1772445600.M1P1.laptop") {
			return os.Remove(p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if ev, code = syncEvent(t, config, "work"); code != 0 || ev["refused"] != float64(0) {
		t.Errorf("after removing it: exit %d, %v", code, ev)
	}
	for _, f := range getStatus(t, config).Accounts[0].Folders {
		if f.Name == "INBOX" && strings.Contains(f.Error, "refused") {
			t.Errorf("status still shows %q", f.Error)
		}
	}
}
