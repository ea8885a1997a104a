package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestMigrateKeepsNoActions: a migration's pull of the source keeps no
// list of every message downloaded (imapsync.Options.NoActions; issue 14:
// 8 MB at 100,000 messages, grown through the pull and held through the
// copy and the verification, twice that in Go's heap), only its counts.
func TestMigrateKeepsNoActions(t *testing.T) {
	src := testenv.User{Name: "src", Password: "src-pass"}
	dst := testenv.User{Name: "dst", Password: "dst-pass"}
	d := testenv.StartDovecot(t, src, dst)
	const n = 30
	d.Seed(t, src.Name, corpus.Generate(141, n, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "[store]\npath = %q\n", filepath.Join(dir, "store"))
	for _, u := range []testenv.User{src, dst} {
		fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\nkind = \"imap\"\nhost = %q\nport = %d\ntls = \"none\"\nusername = %q\npassword = %q\n",
			u.Name, d.Host, d.IMAPPort, u.Name, u.Password)
	}
	a := openConfig(t, dir, b.String())
	defer a.Close()
	res, err := a.Migrate(context.Background(), MigrateOptions{From: src.Name, To: dst.Name})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Source.Result
	if r == nil || r.Totals().New != n || res.Report == nil || res.Report.Totals().Copied != n || res.Report.Totals().Missing != 0 {
		t.Fatalf("source %+v, report %+v: want %d fetched and copied", r, res.Report, n)
	}
	for _, f := range r.Folders {
		if len(f.Actions) != 0 {
			t.Errorf("folder %s: the result keeps %d actions", f.Name, len(f.Actions))
		}
	}
}

// openConfig writes doc as dir/config.toml and opens its store (Open),
// logging nowhere.
func openConfig(t *testing.T, dir, doc string) *Agent {
	t.Helper()
	a, err := Open(writeConfig(t, dir, doc), discardLog)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeConfig writes doc as dir/config.toml and loads it.
func writeConfig(t *testing.T, dir, doc string) *configs.Config {
	t.Helper()
	file := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// discardLog logs nowhere.
var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))
