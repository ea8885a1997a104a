package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestReadOnlyCommandsWriteNothing: search, show, status and queue only
// read the index. The first search indexes the text sync left pending
// (that one writes) and finds the messages; then, with the index as a
// writer killed after a commit leaves it (the commit in the WAL only),
// each command reads that commit (status shows the account error it
// holds; search answers as before) and leaves the database file and the
// WAL byte for byte as they were: not even the checkpoint that a store's
// last connection does when it closes.
func TestReadOnlyCommandsWriteNothing(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	mustRun(t, nil, "demo", "--dir", dir, "--messages", "30")
	cfg := filepath.Join(dir, "config.toml")
	root := filepath.Join(dir, "Mail")

	search := func() (string, []int64) {
		t.Helper()
		out := mustRun(t, nil, "--config", cfg, "search", "--json", "quarterly").stdout
		var ids []int64
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var h struct {
				ID      int64  `json:"id"`
				Subject string `json:"subject"`
			}
			if err := json.Unmarshal([]byte(line), &h); err != nil {
				t.Fatalf("search: line %q: %v", line, err)
			}
			if !strings.HasPrefix(h.Subject, "Quarterly report #") {
				t.Errorf("search quarterly found %q", h.Subject)
			}
			ids = append(ids, h.ID)
		}
		return out, ids
	}
	first, ids := search() // indexes the pending text
	if len(ids) == 0 {
		t.Fatal("search quarterly found nothing in the demo's mail")
	}

	const walError = "committed to the WAL only"
	db, wal := killedWriterIndex(t, root, "demo", walError)
	path := index.DefaultPath(root)
	unchanged := func(after string) {
		t.Helper()
		for _, f := range []struct {
			path string
			want []byte
		}{{path, db}, {path + "-wal", wal}} {
			got, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatalf("after %s: %v", after, err)
			}
			if !bytes.Equal(got, f.want) {
				t.Errorf("after %s: %s changed (%d bytes before, %d after)", after, filepath.Base(f.path), len(f.want), len(got))
			}
		}
	}
	if again, _ := search(); again != first {
		t.Errorf("search on the killed writer's index:\n%s\nwant as before:\n%s", again, first)
	}
	unchanged("search")
	show := mustRun(t, nil, "--config", cfg, "show", strconv.FormatInt(ids[0], 10)).stdout
	if !strings.Contains(show, "Subject: Quarterly report #") {
		t.Errorf("show %d:\n%s", ids[0], show)
	}
	unchanged("show")
	if st := getStatus(t, cfg); len(st.Accounts) != 1 || st.Accounts[0].Error != walError {
		t.Errorf("status: %+v, want account demo with the error %q committed to the WAL", st.Accounts, walError)
	}
	unchanged("status")
	mustRun(t, nil, "--config", cfg, "queue")
	unchanged("queue")
}

// killedWriterIndex leaves the index of the store at root as a writer
// killed after a commit does: the commit (account's last error errMsg) in
// the WAL only, not checkpointed, no shared-memory file. It returns the
// database file's and the WAL's bytes.
func killedWriterIndex(t *testing.T, root, account, errMsg string) (db, wal []byte) {
	t.Helper()
	path := index.DefaultPath(root)
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		id, err := tx.EnsureAccount(account)
		if err != nil {
			return err
		}
		return tx.SetAccountResult(id, time.Now(), errMsg)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The files as they are now, the writer idle and open: what a kill -9
	// leaves.
	if db, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if wal, err = os.ReadFile(path + "-wal"); err != nil || len(wal) == 0 {
		t.Fatalf("the commit left no WAL (%v)", err)
	}
	st.Close() // checkpoints: put back what the kill leaves
	if err := os.WriteFile(path, db, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + "-shm")
	return db, wal
}
