package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestArchivePurge: an account with archive = true keeps a message
// expunged upstream in .Archive-Deleted/INBOX (the CLI's sync reads the
// setting); purge --dry-run lists it and removes nothing, purge removes
// it, and the next sync brings nothing back.
func TestArchivePurge(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(131, 4, corpus.Options{Folders: []string{"INBOX"}}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))
	appendConfig(t, cfg, "archive = true\n")
	mustRun(t, nil, "--config", cfg, "sync")

	c := d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	set := imap.UIDSetNum(1)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set).Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	mustRun(t, nil, "--config", cfg, "sync")
	view, err := maildir.FolderDir(store, "work", index.ArchiveFolder("INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	files := func() int {
		es, err := (&maildir.Dir{Path: view}).Scan()
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	if n := files(); n != 1 {
		t.Fatalf("%s holds %d files after the upstream expunge, want 1", view, n)
	}

	out := mustRun(t, nil, "--config", cfg, "purge", "--dry-run").stdout
	if !strings.Contains(out, ".Archive-Deleted/INBOX") || !strings.Contains(out, "would purge 1 message") || files() != 1 {
		t.Errorf("purge --dry-run:\n%s(%d files left)", out, files())
	}
	out = mustRun(t, nil, "--config", cfg, "purge", "--older-than", "1d").stdout
	if !strings.Contains(out, "purged 0 messages") || files() != 1 {
		t.Errorf("purge --older-than 1d of a message archived now:\n%s", out)
	}
	out = mustRun(t, nil, "--config", cfg, "purge", "--account", "work", "--folder", "INBOX").stdout
	if !strings.Contains(out, "purged 1 message") || files() != 0 {
		t.Errorf("purge:\n%s(%d files left)", out, files())
	}
	if r := run(t, nil, "--config", cfg, "purge", "--older-than", "soon"); r.code == 0 || !strings.Contains(r.stderr, "--older-than") {
		t.Errorf("purge --older-than soon: %s", r)
	}
	mustRun(t, nil, "--config", cfg, "sync")
	if n := files(); n != 0 {
		t.Errorf("%d files came back", n)
	}
}

// TestScheduledBackup: postfach run with an hourly [backup] schedule and
// no backup yet catches up once at start; status shows the outcome, in
// text and in --json.
func TestScheduledBackup(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(132, 5, corpus.Options{Folders: []string{"INBOX"}}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	backups := filepath.Join(dir, "backups")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))
	appendConfig(t, cfg, "\n[backup]\npath = \""+backups+"\"\nschedule = \"hourly\"\nkeep = 2\n")
	if st := getStatus(t, cfg); st.BackupSchedule != "hourly" || st.NextBackup == "" || st.Backup != nil {
		t.Errorf("before any backup: schedule %q, next %q, backup %s", st.BackupSchedule, st.NextBackup, st.Backup)
	}
	mustRun(t, nil, "--config", cfg, "sync")
	p := startAgent(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	var bs *agent.BackupState
	for time.Now().Before(deadline) {
		var err error
		if bs, err = agent.ReadBackupState(store); err == nil && bs != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if bs == nil {
		t.Fatalf("no scheduled backup within 30 s:\n%s", p.log)
	}
	if bs.Error != "" || bs.Files < 5 || bs.Copied != bs.Files || bs.BytesAdded == 0 || bs.LastSuccess.IsZero() {
		t.Errorf("backup state = %+v", bs)
	}
	if _, err := os.Stat(filepath.Join(bs.Snapshot, "MANIFEST")); err != nil {
		t.Errorf("snapshot: %v", err)
	}
	st := getStatus(t, cfg)
	var got agent.BackupState
	if err := json.Unmarshal(st.Backup, &got); err != nil || !got.At.Equal(bs.At) || got.Files != bs.Files {
		t.Errorf("status --json backup = %s (%v)", st.Backup, err)
	}
	out := mustRun(t, nil, "--config", cfg, "status").stdout
	if !strings.Contains(out, "backup: hourly, next ") || !strings.Contains(out, "last backup: ") || !strings.Contains(out, "no errors") {
		t.Errorf("status:\n%s", out)
	}
	// Once: the agent does not take another within the hour.
	time.Sleep(200 * time.Millisecond)
	if snaps, _ := os.ReadDir(backups); countDirs(snaps) != 1 {
		t.Errorf("%d snapshots, want 1", countDirs(snaps))
	}
}

func countDirs(es []os.DirEntry) int {
	n := 0
	for _, e := range es {
		if e.IsDir() {
			n++
		}
	}
	return n
}

// appendConfig appends text to the config file (after its last table:
// the last account, or a new table).
func appendConfig(t *testing.T, cfg, text string) {
	t.Helper()
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
