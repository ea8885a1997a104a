package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// syncResults runs `sync --json ARGS...`, which must succeed, and returns
// every result event by account, in order.
func syncResults(t *testing.T, config string, args ...string) []syncResult {
	t.Helper()
	r := mustRun(t, nil, append([]string{"--config", config, "sync", "--json"}, args...)...)
	var out []syncResult
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev syncResult
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("sync --json: line %q is not JSON: %v", line, err)
		}
		if ev.Event == "result" {
			out = append(out, ev)
		}
	}
	return out
}

// TestSameAccountTwice: `postfach sync work work` syncs the account once
// (two syncs of one account at once each download the new mail: every
// message twice), and the store's sync lock keeps a second postfach out of
// the store whatever path its config spells the store with.
func TestSameAccountTwice(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	user := testenv.DefaultUser.Name
	d.Seed(t, user, corpus.Generate(31, 60, corpus.Options{}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))

	for round, args := range [][]string{{"work", "work"}, {"work", "work", "work"}} {
		if round > 0 { // new mail for the second round: 20 messages to race for
			d.Seed(t, user, corpus.Generate(32, 20, corpus.Options{Folders: []string{"INBOX"}}))
		}
		res := syncResults(t, cfg, args...)
		if len(res) != 1 || res[0].Account != "work" || res[0].Error != "" {
			t.Fatalf("sync %s: %d results %+v, want one for work", strings.Join(args, " "), len(res), res)
		}
		want := 60
		if round > 0 {
			want = 20
		}
		if res[0].New != want {
			t.Errorf("sync %s: %d new, want %d", strings.Join(args, " "), res[0].New, want)
		}
		compare(t, d, store, "work") // every server message exactly once
	}

	// The lock is the store's: a config that reaches the store through a
	// symbolic link is kept out while another process holds it.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(store, link); err != nil {
		t.Fatal(err)
	}
	other := writeConfig(t, dir, "other.toml", link, imapAccount(d, "work"))
	f, err := os.Open(filepath.Join(store, ".postfach", "sync.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	d.Seed(t, user, corpus.Generate(33, 5, corpus.Options{Folders: []string{"INBOX"}}))
	for _, args := range [][]string{
		{"--config", other, "sync", "work"},
		{"--config", cfg, "sync"},
		{"--config", other, "migrate", "--from", "work", "--to", "work:Copy"},
	} {
		r := run(t, nil, args...)
		checkOneLineError(t, r, "another postfach is syncing")
	}
	if n, _ := fileCounts(t, filepath.Join(store, "work")); n != 80 {
		t.Errorf("%d message files after the refused runs, want 80", n)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if res := syncResults(t, other, "work"); len(res) != 1 || res[0].New != 5 {
		t.Errorf("sync through the link after the lock is free: %+v, want 5 new", res)
	}
	compare(t, d, store, "work")
}
