package main

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
)

// TestRestoreExports: the tar.zst and the mbox export of a store synced
// from Dovecot (three folders, flags, keywords, "From " and ">From "
// lines, a message without a final line end) restore to the same
// content. Each, named by its name in [backup] path, restored with
// --to into an empty Dovecot user gives that user alice's folders, every
// message once with its bytes, flags, keywords and INTERNALDATE, and a
// rerun copies nothing; each restored into an empty local store gives the
// synced store's rows (folder, SHA-256, flags, keywords, internal date),
// which verify finds clean, and a rerun delivers nothing. One mbox file
// of the export restores alone. The exports are not written to, and no
// temporary directory is left.
func TestRestoreExports(t *testing.T) {
	t.Parallel()
	carol := testenv.User{Name: "carol", Password: "carol-pass"}
	d := testenv.StartDovecot(t, alice, bob, carol, noAuthPenalty)
	n := 300
	if testing.Short() {
		n = 120
	}
	folders := []string{"INBOX", "Lists/Go", "Entwürfe"}
	msgs := corpus.Generate(47, n, corpus.Options{Folders: folders})
	for i := range msgs {
		switch i % 4 {
		case 1:
			msgs[i].Flags = append(msgs[i].Flags, imap.FlagFlagged, "$Label3")
		case 2:
			msgs[i].Flags = append(msgs[i].Flags, imap.FlagSeen, imap.FlagAnswered, "Projekt", "$Label1")
		}
	}
	// mboxrd's cases: quoted and unquoted "From " lines at several
	// depths, a message ending in a "From " line without a line end.
	odd := msgs[0]
	odd.Folder, odd.MessageID = "Lists/Go", "mboxrd-odd@example.org"
	odd.Raw = []byte("From: Odd <odd@example.org>\r\nTo: alice@example.org\r\nSubject: From lines\r\n" +
		"Message-ID: <mboxrd-odd@example.org>\r\nDate: Mon, 3 Jan 2022 10:00:00 +0000\r\n\r\n" +
		"From the start\r\n>From once\r\n>>From twice\r\n\r\nFrom \r\nFrom")
	msgs = append(msgs, odd)
	d.Seed(t, alice.Name, msgs)
	src := mailboxes(t, d, alice.Name)
	n = total(src)

	config, store := migrateConfig(t, d, [3]string{"imap", "old", alice.Name},
		[3]string{"imap", "new", bob.Name}, [3]string{"imap", "new2", carol.Name})
	backups := filepath.Join(filepath.Dir(config), "backups")
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[backup]\npath = %q\n", backups)
	f.Close()
	mustRun(t, nil, "--config", config, "sync", "old")
	want := storeRows(t, store)
	if len(want) != len(folders) {
		t.Fatalf("the synced store has the folders %v, want %v", slices.Sorted(maps.Keys(want)), folders)
	}

	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp}
	exports := map[string]string{}
	for _, format := range []string{"tar.zst", "mbox"} {
		r := mustRun(t, nil, "--config", config, "backup", "--format", format)
		t.Logf("postfach backup --format %s: %s", format, strings.TrimSpace(r.stdout))
		m := otherSnapshotLine.FindStringSubmatch(r.stdout)
		if m == nil || m[2] != fmt.Sprint(n) {
			t.Fatalf("backup --format %s printed %q, want %d messages", format, r.stdout, n)
		}
		exports[format] = m[1]
	}
	before := treeSums(t, backups)

	for _, x := range []struct{ format, to, user string }{{"tar.zst", "new", bob.Name}, {"mbox", "new2", carol.Name}} {
		name := filepath.Base(exports[x.format])
		r := mustRun(t, env, "--config", config, "restore", name, "--to", x.to)
		t.Logf("postfach restore %s --to %s:\n%s", name, x.to, r.stdout)
		if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", n)) ||
			!strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> %s: %d messages copied", x.to, n)) {
			t.Errorf("restore %s --to %s:\n%s", name, x.to, r.stdout)
		}
		for _, diff := range mirrortest.DiffMailboxes(src, mailboxes(t, d, x.user), nil) {
			t.Errorf("%s restored into %s: %s", x.format, x.user, diff)
		}
		r = mustRun(t, env, "--config", config, "restore", name, "--to", x.to)
		if !strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> %s: 0 messages copied", x.to)) {
			t.Errorf("rerun of restore %s --to %s:\n%s", name, x.to, r.stdout)
		}
		for _, diff := range mirrortest.DiffMailboxes(src, mailboxes(t, d, x.user), nil) {
			t.Errorf("%s restored into %s, after the rerun: %s", x.format, x.user, diff)
		}

		// Into an empty local store, by the export's path.
		config2, store2 := freshStoreOf(t, config, store)
		r = mustRun(t, env, "--config", config2, "restore", exports[x.format])
		if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", n)) ||
			!strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> the local store: %d messages copied", n)) {
			t.Errorf("restore %s into the store:\n%s", name, r.stdout)
		}
		r = mustRun(t, env, "--config", config2, "restore", exports[x.format])
		if !strings.Contains(r.stdout, "the local store: 0 messages copied") {
			t.Errorf("rerun of restore %s into the store:\n%s", name, r.stdout)
		}
		for _, diff := range diffRows(want, storeRows(t, store2)) {
			t.Errorf("%s restored into the store: %s", x.format, diff)
		}
		r = run(t, nil, "--config", config2, "verify")
		if r.code != 0 || !strings.Contains(r.stdout, "no differences") {
			t.Errorf("verify of the store %s restored into: %s", x.format, r)
		}
	}
	// One mbox file of the export, alone: its folder (named by the file)
	// of the account "mbox".
	one := filepath.Join(exports["mbox"], "old", "Lists", "Go.mbox")
	r := mustRun(t, env, "--config", config, "restore", one, "--folder", "Go", "--to", "new:Go alone")
	if !strings.Contains(r.stdout, fmt.Sprintf("snapshot mbox -> new: %d messages copied", len(src["Lists/Go"]))) {
		t.Errorf("restore %s --to new:Go alone:\n%s", one, r.stdout)
	}
	if got := mailboxes(t, d, bob.Name)["Go alone"]; !slices.Equal(got, src["Lists/Go"]) {
		for _, diff := range mirrortest.DiffMailboxes(map[string][]mirrortest.MessageState{"Go alone": src["Lists/Go"]},
			map[string][]mirrortest.MessageState{"Go alone": got}, nil) {
			t.Errorf("one mbox restored alone: %s", diff)
		}
	}
	after := treeSums(t, backups)
	for p, sum := range after {
		if b, ok := before[p]; !ok || b != sum {
			t.Errorf("%s: written by a restore", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s: removed by a restore", p)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "postfach-restore-*")); len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

// treeSums is the SHA-256 of every file below dir, by its path.
func treeSums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		sums[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// freshStoreOf writes a config like config whose store is another, empty
// one instead of store.
func freshStoreOf(t *testing.T, config, store string) (config2, store2 string) {
	t.Helper()
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store2 = filepath.Join(dir, "store")
	config2 = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config2, []byte(strings.Replace(string(data), fmt.Sprintf("%q", store), fmt.Sprintf("%q", store2), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return config2, store2
}

// storeRows reads a store's messages (read-only): "account/folder" ->
// "SHA-256 flags keywords internal-date" of each, sorted.
func storeRows(t *testing.T, store string) map[string][]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+index.DefaultPath(store)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT a.name, f.name, hex(m.sha256), m.flags, m.keywords, m.internal_date
		FROM messages m JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var acct, folder, sum, kw string
		var flags, date int64
		if err := rows.Scan(&acct, &folder, &sum, &flags, &kw, &date); err != nil {
			t.Fatal(err)
		}
		out[acct+"/"+folder] = append(out[acct+"/"+folder], fmt.Sprintf("%s %d [%s] %d", sum, flags, kw, date))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// diffRows names how got differs from want (storeRows of two stores).
func diffRows(want, got map[string][]string) []string {
	var diffs []string
	for f, w := range want {
		g := got[f]
		if slices.Equal(g, w) {
			continue
		}
		d := fmt.Sprintf("folder %s: %d messages, want %d", f, len(g), len(w))
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				d += fmt.Sprintf("; first difference: %s, want %s", g[i], w[i])
				break
			}
		}
		diffs = append(diffs, d)
	}
	for f, g := range got {
		if _, ok := want[f]; !ok {
			diffs = append(diffs, fmt.Sprintf("folder %s: %d messages, not in the original store", f, len(g)))
		}
	}
	slices.Sort(diffs)
	return diffs
}
