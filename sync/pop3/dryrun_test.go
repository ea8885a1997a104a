package pop3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/pop3"
)

// TestFetchDryRun: a dry run, on a store that never fetched and on one
// that did, changes nothing (no file, no index row, every message still on
// the server), sends no RETR or DELE, and plans exactly what the real run
// then does: the messages it downloads (number, size, bytes) and those it
// deletes on the server.
func TestFetchDryRun(t *testing.T) {
	u := testenv.User{Name: "dry", Password: "dry-pass"}
	d := testenv.StartDovecot(t, u)
	msgs := corpus.Generate(21, 12, corpus.Options{Folders: []string{"INBOX"}})
	d.Seed(t, u.Name, msgs[:8])
	e := newFetchEnv(t, d, u)

	files := func() string {
		var b strings.Builder
		filepath.WalkDir(e.root, func(p string, de fs.DirEntry, err error) error {
			if err == nil && !strings.Contains(p, ".postfach") {
				fmt.Fprintln(&b, strings.TrimPrefix(p, e.root))
			}
			return nil
		})
		return b.String()
	}
	commands := regexp.MustCompile(`(?m)^(RETR|DELE|RSET)\b`)
	step := func(name string, o pop3.FetchOptions, wantNew, wantDeleted int) {
		t.Helper()
		before, server := files(), serverCount(t, d.POP3Addr(), u.Name, u.Password)
		rowsBefore := rowCount(t, e)
		var traffic bytes.Buffer
		dry := o
		dry.DryRun, dry.Debug = true, &traffic
		plan := e.fetch(t.Context(), dry)
		if m := commands.Find(traffic.Bytes()); m != nil {
			t.Errorf("%s: the dry run sent %s", name, m)
		}
		if after := files(); after != before {
			t.Errorf("%s: the dry run changed files:\n%s\nnow:\n%s", name, before, after)
		}
		if rows := rowCount(t, e); rows != rowsBefore {
			t.Errorf("%s: the dry run changed the index: %s, had %s", name, rows, rowsBefore)
		}
		if got := serverCount(t, d.POP3Addr(), u.Name, u.Password); got != server {
			t.Errorf("%s: the dry run left %d messages on the server, had %d", name, got, server)
		}
		real := e.fetch(t.Context(), o)
		if !plan.DryRun || real.DryRun || plan.New != wantNew || plan.Deleted != wantDeleted ||
			plan.New != real.New || plan.Bytes != real.Bytes || plan.Deleted != real.Deleted {
			t.Errorf("%s: the dry run planned %d new (%d B), %d deleted; the real run did %d new (%d B), %d deleted; want %d new, %d deleted",
				name, plan.New, plan.Bytes, plan.Deleted, real.New, real.Bytes, real.Deleted, wantNew, wantDeleted)
		}
		var down []int
		var bytes int64
		for _, p := range plan.Plan {
			if p.Op == "download" {
				down = append(down, p.Num)
				bytes += p.Size
			}
		}
		if len(down) != plan.New || bytes != plan.Bytes || !slices.IsSorted(down) {
			t.Errorf("%s: the plan's downloads %v (%d B) do not add up to %d new (%d B)", name, down, bytes, plan.New, plan.Bytes)
		}
	}
	// A store that never fetched; then new mail, kept on the server.
	step("fresh store", e.opts(), 8, 0)
	d.Seed(t, u.Name, msgs[8:])
	step("new mail", e.opts(), 4, 0)
	// Deletion of what is stored (proven by TOP), nothing to download.
	o := e.opts()
	o.Keep = false
	step("delete", o, 0, 12)
	if n := serverCount(t, d.POP3Addr(), u.Name, u.Password); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
	// New mail with keep = false: downloaded and deleted in one run.
	d.Seed(t, u.Name, corpus.Generate(22, 3, corpus.Options{Folders: []string{"INBOX"}}))
	step("download and delete", o, 3, 3)
}

// rowCount counts the index rows of the fetched folder and the known
// identities (0 before the first real run).
func rowCount(t *testing.T, e *fetchEnv) string {
	t.Helper()
	var out string
	err := e.st.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account(fetchAccount)
		if errors.Is(err, index.ErrNotFound) {
			out = "no account"
			return nil
		} else if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, "INBOX")
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		uidls, err := tx.POP3UIDLs(acct)
		out = fmt.Sprintf("%d rows, %d identities, last error %q", len(rows), len(uidls), f.LastError)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
