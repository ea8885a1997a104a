package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
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

// TestStorePlace: a store inside another store, another store inside an
// account's folder (reached directly or through a symbolic link), and an
// account folder holding another program's Maildir are refused by `config
// check` and by every run, each with one line naming the paths, before
// anything is created or uploaded. An account folder postfach made stays
// fine, also without the index's help (a lost index) or without the
// .postfach-uidvalidity files (a store of an older version).
func TestStorePlace(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	user := testenv.DefaultUser.Name
	d.Seed(t, user, corpus.Generate(34, 30, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	dir := t.TempDir()
	outer := filepath.Join(dir, "outer")
	outerCfg := writeConfig(t, dir, "outer.toml", outer, imapAccount(d, "work"))
	mustRun(t, nil, "--config", outerCfg, "sync")
	mustRun(t, nil, "--config", outerCfg, "config", "check")
	server := mailboxes(t, d, user)

	// refused runs the commands that must refuse config, each with one
	// line holding want, and checks that they left the server alone and
	// created nothing at created.
	refused := func(config, created string, want ...string) {
		t.Helper()
		for _, args := range [][]string{{"config", "check"}, {"sync"}, {"sync", "--dry-run"}, {"status"},
			{"migrate", "--from", "work", "--to", "work:Copy"}} {
			r := run(t, nil, append([]string{"--config", config}, args...)...)
			checkOneLineError(t, r, want...)
		}
		if created != "" {
			if _, err := os.Lstat(created); !os.IsNotExist(err) {
				t.Errorf("%s exists after the refused runs (%v)", created, err)
			}
		}
		sameMailboxes(t, server, mailboxes(t, d, user), nil)
	}

	// A store inside the outer store's account folder.
	inner := filepath.Join(outer, "work", "nested")
	innerCfg := writeConfig(t, dir, "inner.toml", inner, imapAccount(d, "work"))
	refused(innerCfg, inner, "store.path "+inner, "inside another postfach store, "+outer)
	// The same through a symbolic link.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(outer, "work"), link); err != nil {
		t.Fatal(err)
	}
	linkCfg := writeConfig(t, dir, "link.toml", filepath.Join(link, "nested"), imapAccount(d, "work"))
	refused(linkCfg, inner, "inside another postfach store, "+outer)

	// A store below the outer store's account folder that an older
	// postfach made anyway: the outer account would upload its mail as
	// folders "nested/...".
	if err := os.MkdirAll(filepath.Join(inner, ".postfach"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeMaildirFile(t, filepath.Join(inner, "work", "INBOX"), "1.1_1.host,U=7:2,S")
	refused(outerCfg, "", `account "work"`, filepath.Join(outer, "work"), "holds another postfach store, "+inner)
	if err := os.RemoveAll(inner); err != nil {
		t.Fatal(err)
	}

	// Another program's Maildir where an account's folder goes: mbsync's
	// layout with INBOX as a folder, and Maildir++ with INBOX at the root.
	for i, file := range []string{"INBOX/cur/1700000000.1_1.host,U=1:2,S", "cur/1700000000.1_1.host:2,S"} {
		store := filepath.Join(dir, "mbsync"+strconv.Itoa(i))
		cfg := writeConfig(t, dir, "mbsync.toml", store, imapAccount(d, "work"))
		writeMaildirFile(t, filepath.Join(store, "work", filepath.Dir(filepath.Dir(file))), filepath.Base(file))
		refused(cfg, filepath.Join(store, ".postfach"), `account "work"`, filepath.Join(store, "work"), "holds mail postfach did not store")
	}

	// postfach's own account folder: without .postfach-uidvalidity (as an
	// older version left it) the index vouches for it; without the index
	// (lost), the .postfach-uidvalidity files do.
	var markers []string
	filepath.WalkDir(filepath.Join(outer, "work"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Name() == ".postfach-uidvalidity" {
			markers = append(markers, p)
		}
		return nil
	})
	if len(markers) != 2 {
		t.Fatalf("%d .postfach-uidvalidity files in the store, want 2 (INBOX and Archive)", len(markers))
	}
	saved := map[string][]byte{}
	for _, m := range markers {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		saved[m] = b
		os.Remove(m)
	}
	mustRun(t, nil, "--config", outerCfg, "config", "check")
	for m, b := range saved {
		if err := os.WriteFile(m, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	idx, _ := filepath.Glob(filepath.Join(outer, ".postfach", "index.db*"))
	for _, f := range idx {
		os.Remove(f)
	}
	mustRun(t, nil, "--config", outerCfg, "config", "check")
	if res := syncResults(t, outerCfg); len(res) != 1 || res[0].New != 0 || res[0].Rebuilt != 30 {
		t.Errorf("sync after losing the index: %+v, want 30 rebuilt", res)
	}
	compare(t, d, outer, "work")
}

// writeMaildirFile writes a small message file into the Maildir folder dir
// (creating cur/, new/ and tmp/) as another program would.
func writeMaildirFile(t *testing.T, dir, name string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msg := "From: a@example.org\nSubject: not postfach's\nMessage-ID: <foreign@example.org>\n\nhello\n"
	if err := os.WriteFile(filepath.Join(dir, "cur", name), []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStorePlacePOP3LostIndex: a POP3 account's folder has no
// .postfach-uidvalidity file; after its index is lost, the account marker
// postfach wrote (maildir.AccountMarker) still says the folder is its own.
func TestStorePlacePOP3LostIndex(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(35, 10, corpus.Options{Folders: []string{"INBOX"}}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	pass, _ := d.Password(testenv.DefaultUser.Name)
	config := filepath.Join(dir, "config.toml")
	doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"pop\"\nkind = \"pop3\"\nhost = %q\nport = %d\n"+
		"tls = \"none\"\nusername = %q\npassword = %q\n", store, d.Host, d.POP3Port, testenv.DefaultUser.Name, pass)
	if err := os.WriteFile(config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "--config", config, "sync")
	if _, err := os.Stat(filepath.Join(store, "pop", maildir.AccountMarker)); err != nil {
		t.Fatalf("no account marker after the first sync: %v", err)
	}
	idx, _ := filepath.Glob(filepath.Join(store, ".postfach", "index.db*"))
	for _, f := range idx {
		os.Remove(f)
	}
	mustRun(t, nil, "--config", config, "config", "check")
	mustRun(t, nil, "--config", config, "sync")
}
