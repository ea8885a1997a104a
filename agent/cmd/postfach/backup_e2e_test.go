package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/maildir"
)

// snapshotLine is the first line `postfach backup` prints.
var snapshotLine = regexp.MustCompile(`^snapshot (\S+): (\d+) files, (\d+) shared with the previous snapshot, (\d+) copied`)

// otherSnapshotLine is what `postfach backup --format tar.zst|mbox`
// prints first.
var otherSnapshotLine = regexp.MustCompile(`^snapshot (\S+): (\d+) (?:files|messages) \(`)

// backupCLI runs `postfach backup` and returns the new snapshot's
// directory and its file count.
func backupCLI(t *testing.T, e *runEnv, args ...string) (string, int) {
	t.Helper()
	r := mustRun(t, e.env, append([]string{"--config", e.config, "backup"}, args...)...)
	t.Logf("postfach backup: %s", strings.TrimSpace(r.stdout))
	m := snapshotLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("backup printed %q", r.stdout)
	}
	var n int
	fmt.Sscan(m[2], &n)
	return m[1], n
}

// snapshotRows reads the paths of the files the rows of a snapshot's
// index name.
func snapshotRows(t *testing.T, snap string) map[string]bool {
	t.Helper()
	rows := map[string]bool{}
	err := index.ReadSnapshot(filepath.Join(snap, ".postfach", "index.db"), func(f index.StoredFile) error {
		rows[f.Path()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestBackupWhileRunning: `postfach backup` while `postfach run` syncs
// new mail, flag changes and expunges down from Dovecot gives
// consistent snapshots (verify finds every row its file and every file
// its row, and the manifest's hashes); once the agent is idle, a last
// backup holds every message the store has, and the live store
// verifies clean. verify names a byte changed in a snapshot (exit 1);
// a tar.zst and an mbox export of the store hold every message and
// verify clean; an unknown --format is one error line.
func TestBackupWhileRunning(t *testing.T) {
	e := newRunEnv(t, "bk", "INBOX", "Archive")
	backups := filepath.Join(e.dir, "backups")
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[backup]\npath = %q\nkeep = 3\n", backups)
	f.Close()
	seed, more := 300, 150
	if testing.Short() {
		seed, more = 60, 40
	}
	e.seedUpstream(t, seed, agenttest.Upstream)
	a := e.startAgent(t)

	// Upstream changes while backups run: new mail in both folders,
	// flag changes (renames here) and expunges (removals here).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var werr error
	var delivered, deleted int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < more; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.server.Deliver(e.model.Folders[i%2], agenttest.Upstream); err != nil {
				werr = err
				return
			}
			delivered++
			if i%5 == 0 {
				if m, ok := e.model.Pick(agenttest.Upstream, func(m agenttest.Msg) bool { return !m.Gone }); ok {
					if err := e.server.SetFlags(m, m.Flags^maildir.FlagFlagged); err != nil && !errors.Is(err, agenttest.ErrNotThere) {
						werr = err
						return
					}
				}
			}
			if i%7 == 0 {
				if m, ok := e.model.Pick(agenttest.Upstream, func(m agenttest.Msg) bool { return !m.Gone }); ok {
					err := e.server.Delete(m)
					if err != nil && !errors.Is(err, agenttest.ErrNotThere) {
						werr = err
						return
					}
					if err == nil {
						deleted++
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var snaps []string
	for range 3 {
		snap, n := backupCLI(t, e)
		snaps = append(snaps, snap)
		r := run(t, e.env, "--config", e.config, "verify", snap)
		if r.code != 0 || !strings.Contains(r.stdout, "no differences") {
			t.Errorf("verify %s while the agent syncs: %s", snap, r)
		}
		if rows := snapshotRows(t, snap); len(rows) != n {
			t.Errorf("snapshot %s: %d files, %d rows", snap, n, len(rows))
		}
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}

	// Settled: the store has every message; a backup holds them all.
	want := seed + delivered - deleted
	waitFiles(t, filepath.Join(e.store, runAccount), want, time.Minute)
	if _, err := a.WaitIdle(idleTimeout()); err != nil {
		t.Fatal(err)
	}
	r := run(t, e.env, "--config", e.config, "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "no differences") {
		t.Errorf("verify of the live store: %s", r)
	}
	snap, n := backupCLI(t, e)
	if n != want {
		t.Errorf("last snapshot: %d files, the store %d", n, want)
	}
	for p := range snapshotRows(t, snap) {
		got, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		live, err := os.ReadFile(filepath.Join(e.store, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("live %s: %v", p, err)
		} else if string(got) != string(live) {
			t.Errorf("%s: snapshot differs from the store", p)
		}
	}
	stopAgent(t, a)
	list, _ := os.ReadDir(backups)
	var names []string
	for _, l := range list {
		if l.IsDir() {
			names = append(names, l.Name())
		}
	}
	if want := []string{filepath.Base(snaps[1]), filepath.Base(snaps[2]), filepath.Base(snap)}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("backup directory holds %q, want the 3 newest snapshots %q (keep = 3)", names, want)
	}

	// A changed byte in a message of the last snapshot: verify names it,
	// by the snapshot's name in the backup directory too.
	var victim string
	for p := range snapshotRows(t, snap) {
		victim = p
		break
	}
	path := filepath.Join(snap, filepath.FromSlash(victim))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	// A hard link shares the byte with older snapshots; change only this
	// one's copy.
	os.Remove(path)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, e.env, "--config", e.config, "verify", filepath.Base(snap))
	if r.code != 1 || !strings.Contains(r.stdout, victim+": content differs from the manifest") ||
		!strings.Contains(r.stdout, "1 differences") {
		t.Errorf("verify after a byte changed in %s: %s", victim, r)
	}

	// The other formats: a tar.zst and an mbox export of the same
	// store, each verified by name in the backup directory.
	for _, format := range []string{"tar.zst", "mbox"} {
		r := mustRun(t, e.env, "--config", e.config, "backup", "--format", format)
		t.Logf("postfach backup --format %s: %s", format, strings.TrimSpace(r.stdout))
		m := otherSnapshotLine.FindStringSubmatch(r.stdout)
		if m == nil || m[2] != fmt.Sprint(want) || !strings.HasSuffix(m[1], "."+format) {
			t.Errorf("backup --format %s printed %q, want %d messages", format, r.stdout, want)
			continue
		}
		r = run(t, e.env, "--config", e.config, "verify", filepath.Base(m[1]))
		if r.code != 0 || !strings.Contains(r.stdout, "no differences") {
			t.Errorf("verify %s: %s", m[1], r)
		}
	}
	r = run(t, e.env, "--config", e.config, "backup", "--format", "zip")
	checkOneLineError(t, r, "--format", "zip")
	if r.code != 1 {
		t.Errorf("backup --format zip: %s", r)
	}
	// A backup directory that cannot be made: one line naming it.
	notDir := filepath.Join(e.dir, "plain-file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, e.env, "--config", e.config, "backup", "--to", filepath.Join(notDir, "backups"))
	checkOneLineError(t, r, "backup", notDir, "not a directory")
	if r.code != 1 {
		t.Errorf("backup --to below a file: %s", r)
	}
}
