package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestStatusQueued: `postfach status` counts per account the local
// changes queued upstream (here an expunge and a flag change made through
// the store's door, as the local endpoints make them), in text and as
// "queued" in --json; the next sync carries them up and the count is 0.
func TestStatusQueued(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(151, 10, corpus.Options{Folders: []string{"INBOX"}}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))
	mustRun(t, nil, "--config", cfg, "sync")
	if st := getStatus(t, cfg); st.Accounts[0].Queued != 0 {
		t.Errorf("after a sync: %d queued, want 0", st.Accounts[0].Queued)
	}

	// The door's calls, as index/local.go's Expunge and SetFlags make them.
	ctx := context.Background()
	st, err := index.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	var f *index.Folder
	var rows []*index.Message
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		a, err := tx.Account("work")
		if err != nil {
			return err
		}
		if f, err = tx.FolderByName(a, "INBOX"); err != nil {
			return err
		}
		rows, err = tx.Messages(f.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gone, flagged := rows[0], rows[1]
	if err := st.Remove(ctx, []*index.Message{gone}, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: f.Account, Folder: f.ID, Op: "expunge", Arg: fmt.Sprintf("%d/%d", gone.UID, f.UIDValidity)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetFlags(ctx, []index.FlagChange{{Message: flagged, Flags: flagged.Flags | maildir.FlagFlagged}}, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if got := getStatus(t, cfg); got.Accounts[0].Queued != 2 {
		t.Errorf("status --json: %d queued, want 2 (an expunge, a flag change)", got.Accounts[0].Queued)
	}
	if out := mustRun(t, nil, "--config", cfg, "status").stdout; !strings.Contains(out, "2 queued upstream") {
		t.Errorf("status does not say \"2 queued upstream\":\n%s", out)
	}
	mustRun(t, nil, "--config", cfg, "sync")
	if got := getStatus(t, cfg); got.Accounts[0].Queued != 0 {
		t.Errorf("after the sync: %d queued, want 0", got.Accounts[0].Queued)
	}
	server := compare(t, d, store, "work")
	if n := countMessages(server); n != 9 {
		t.Errorf("server has %d messages, want 9 (one expunged through the door)", n)
	}
	if out := mustRun(t, nil, "--config", cfg, "status").stdout; !strings.Contains(out, "0 queued upstream") {
		t.Errorf("status does not say \"0 queued upstream\":\n%s", out)
	}
}
