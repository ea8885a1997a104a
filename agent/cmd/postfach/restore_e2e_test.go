package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
)

// restoreKills is how many runs of `postfach restore --to` TestRestore
// kills with SIGKILL while they copy.
const restoreKills = 3

// restoreEnv is a Dovecot whose alice has mail in several folders
// (some flagged, with keywords, some large), a config with the accounts
// "old" (alice) and "new" (bob) whose store holds old, synced, and one
// snapshot of it in [backup] path.
type restoreEnv struct {
	d       *testenv.Dovecot
	src     map[string][]mirrortest.MessageState // alice's mail
	n       int
	folders []string
	config  string
	store   string
	backups string
	name    string // the snapshot's name
	tmp     string // TMPDIR of the restores
}

func newRestoreEnv(t *testing.T) *restoreEnv {
	t.Helper()
	d := testenv.StartDovecot(t, alice, bob, noAuthPenalty)
	n := 600
	if testing.Short() {
		n = 300
	}
	// Several folders: Dovecot commits a MULTIAPPEND as one, so the
	// destination grows by whole batches, and the kills need several.
	folders := []string{"INBOX", "Archiv/2024", "Entwürfe", "Lists/Go", "Lists/Rust", "Sent", "Projekte/Ä"}
	msgs := corpus.Generate(43, n, corpus.Options{Folders: folders, BigAttachmentEvery: 40, BigAttachmentSize: 256 << 10})
	for i := range msgs {
		if i%5 == 1 {
			msgs[i].Flags = append(msgs[i].Flags, imap.FlagFlagged, "$Label3")
		}
	}
	d.Seed(t, alice.Name, msgs)
	src := mailboxes(t, d, alice.Name)
	n = total(src)
	config, store := migrateConfig(t, d, [3]string{"imap", "old", alice.Name}, [3]string{"imap", "new", bob.Name})
	backups := filepath.Join(filepath.Dir(config), "backups")
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[backup]\npath = %q\n", backups)
	f.Close()
	mustRun(t, nil, "--config", config, "sync", "old")
	mustRun(t, nil, "--config", config, "backup")
	ents, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for _, e := range ents {
		if e.IsDir() {
			name = e.Name()
		}
	}
	tmp := t.TempDir()
	return &restoreEnv{d: d, src: src, n: n, folders: folders, config: config, store: store, backups: backups, name: name, tmp: tmp}
}

// freshStore writes a config like e's whose store is another, empty one.
func (e *restoreEnv) freshStore(t *testing.T) (config, store string) {
	t.Helper()
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store = filepath.Join(dir, "store")
	config = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte(strings.Replace(string(data), fmt.Sprintf("%q", e.store), fmt.Sprintf("%q", store), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, store
}

// env is what the restores' environment adds: their own TMPDIR.
func (e *restoreEnv) env() []string { return []string{"TMPDIR=" + e.tmp} }

// checkTemp checks that no restore left its temporary directory.
func (e *restoreEnv) checkTemp(t *testing.T) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(e.tmp, "postfach-restore-*")); len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

// TestRestore: a snapshot of a synced store (`postfach backup`, named by
// its name in [backup] path) restored with the binary into an empty
// Dovecot user, killed with SIGKILL several times while it copies and
// then run to its end: every message is there exactly once with its
// bytes, flags and INTERNALDATE, the report verifies it, a rerun copies
// nothing. Then into a fresh local store: every message, a rerun
// delivers nothing, and the account's sync afterwards uploads nothing
// twice (the server has them) and uploads a folder the server lost
// meanwhile, with flags and dates. While postfach run holds the
// store, restore into it is refused in one line. --folder picks one
// folder into a destination folder.
func TestRestore(t *testing.T) {
	t.Parallel()
	e := newRestoreEnv(t)
	d, src, n, folders, config, backups, name := e.d, e.src, e.n, e.folders, e.config, e.backups, e.name
	args := []string{"--config", config, "restore", name, "--to", "new"}

	poll := d.Client(t, bob.Name)
	count := func() int {
		total := 0
		for _, f := range folders {
			st, err := poll.Status(f, &imap.StatusOptions{NumMessages: true}).Wait()
			if err == nil && st.NumMessages != nil {
				total += int(*st.NumMessages)
			}
		}
		return total
	}
	midCopy := 0
	for i := 1; i <= restoreKills; i++ {
		cmd := exec.Command(postfachBin, args...)
		cmd.Env = environ(t, e.env())
		start := count()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		after := start + 1
		deadline := time.After(runTimeout)
	wait:
		for {
			select {
			case err := <-done:
				t.Logf("kill %d: the restore ended before it was killed (%v)", i, err)
				break wait
			case <-deadline:
				cmd.Process.Kill()
				<-done
				t.Fatalf("kill %d: the destination did not reach %d messages", i, after)
			case <-time.After(2 * time.Millisecond):
				if count() >= after {
					cmd.Process.Kill()
					<-done
					break wait
				}
			}
		}
		if c := count(); killed(cmd) && c > start && c < n {
			midCopy++
		}
		t.Logf("kill %d: destination %d -> %d of %d messages", i, start, count(), n)
	}
	if midCopy == 0 {
		t.Errorf("none of %d kills landed while copying: the test proved nothing", restoreKills)
	}
	r := mustRun(t, e.env(), args...)
	t.Logf("after the kills:\n%s", r.stdout)
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", n)) {
		t.Errorf("restore output:\n%s", r.stdout)
	}
	sameMailboxes(t, src, mailboxes(t, d, bob.Name), nil)
	r = mustRun(t, e.env(), args...)
	if !strings.Contains(r.stdout, "snapshot old -> new: 0 messages copied") {
		t.Errorf("rerun output:\n%s", r.stdout)
	}
	sameMailboxes(t, src, mailboxes(t, d, bob.Name), nil)

	// --folder into one folder.
	r = mustRun(t, e.env(), "--config", config, "restore", filepath.Join(backups, name), "--folder", "old:Entwürfe", "--to", "new:Entwürfe 2")
	if !strings.Contains(r.stdout, fmt.Sprintf("%d messages copied", len(src["Entwürfe"]))) {
		t.Errorf("--folder output:\n%s", r.stdout)
	}
	if got := mailboxes(t, d, bob.Name)["Entwürfe 2"]; fmt.Sprint(got) != fmt.Sprint(src["Entwürfe"]) {
		t.Errorf("Entwürfe 2 holds %d messages, want Entwürfe's %d", len(got), len(src["Entwürfe"]))
	}

	// Into a fresh local store, then the sync: nothing is uploaded twice.
	config2, _ := e.freshStore(t)
	two := len(src["INBOX"]) + len(src["Archiv/2024"])
	r = mustRun(t, e.env(), "--config", config2, "restore", filepath.Join(backups, name), "--folder", "old:INBOX", "--folder", "Archiv/2024")
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", two)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> the local store: %d messages copied", two)) {
		t.Errorf("two folders into the store:\n%s", r.stdout)
	}
	r = mustRun(t, e.env(), "--config", config2, "restore", name)
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", n)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> the local store: %d messages copied", n-two)) {
		t.Errorf("the rest into the store:\n%s", r.stdout)
	}
	r = mustRun(t, e.env(), "--config", config2, "restore", name)
	if !strings.Contains(r.stdout, "the local store: 0 messages copied") {
		t.Errorf("rerun into the store:\n%s", r.stdout)
	}
	// Sent lost on the server meanwhile: the sync uploads the restored
	// copies; the rest, which the server still has, it uploads not again.
	ac := d.Client(t, alice.Name)
	if _, err := ac.Select("Sent", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ac.Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ac.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if got := mailboxes(t, d, alice.Name)["Sent"]; len(got) != 0 || len(src["Sent"]) == 0 {
		t.Fatalf("Sent on the server: %d messages after the expunge (%d before)", len(got), len(src["Sent"]))
	}
	r = mustRun(t, nil, "--config", config2, "sync", "old")
	t.Logf("sync after the restore: %s", strings.TrimSpace(r.stdout))
	sameMailboxes(t, src, mailboxes(t, d, alice.Name), nil)

	// postfach run holds the store: restore into it is refused.
	a, err := agenttest.StartAgent(postfachBin, config2, environ(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Kill() })
	if _, err := a.WaitIdle(idleTimeout()); err != nil {
		t.Fatal(err)
	}
	r = run(t, e.env(), "--config", config2, "restore", name)
	t.Logf("refused while postfach run holds the store: %s", r.stderr)
	checkOneLineError(t, r, "postfach run", "stop postfach run first")
	stopAgent(t, a)
	e.checkTemp(t)
}

// TestRestoreStoreKill: `postfach restore` into the local store killed
// with SIGKILL as soon as its deliveries reach the folders (between a
// batch's renames and its commit, or just after), several times, then run
// to its end: every snapshot message is in the store exactly once (the
// report's extra counts any second copy), a rerun delivers nothing, and
// postfach verify finds every row its file and every file its row.
func TestRestoreStoreKill(t *testing.T) {
	t.Parallel()
	e := newRestoreEnv(t)
	config, store := e.freshStore(t)
	args := []string{"--config", config, "restore", e.name}
	files := func() int {
		n, _ := fileCounts(t, store)
		return n
	}
	// rows counts the store's message rows (read-only).
	rows := func() int {
		db, err := sql.Open("sqlite", "file:"+index.DefaultPath(store)+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM messages").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Kill until restoreKills kills landed, one of them with files in
	// the folders whose rows were not committed (the door's window),
	// within a bound, while there is something left to deliver.
	landed, inWindow := 0, 0
	for i := 1; i <= 3*restoreKills && (landed < restoreKills || inWindow == 0) && files() < e.n; i++ {
		cmd := exec.Command(postfachBin, args...)
		cmd.Env = environ(t, e.env())
		start := files()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(runTimeout)
	wait:
		for {
			select {
			case err := <-done:
				t.Logf("kill %d: the restore ended first (%v)", i, err)
				break wait
			case <-deadline:
				cmd.Process.Kill()
				<-done
				t.Fatalf("kill %d: nothing delivered in %v", i, runTimeout)
			case <-time.After(time.Millisecond):
				if files() > start {
					cmd.Process.Kill()
					<-done
					break wait
				}
			}
		}
		f, r := files(), rows()
		if killed(cmd) {
			landed++
			if f > r {
				inWindow++
			}
		}
		t.Logf("kill %d: store %d -> %d message files of %d, %d rows", i, start, f, e.n, r)
	}
	if landed == 0 || inWindow == 0 {
		t.Errorf("%d kills landed, %d of them between a delivery's renames and its commit; want one of those at least", landed, inWindow)
	}
	r := mustRun(t, e.env(), args...)
	t.Logf("after the kills:\n%s", r.stdout)
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", e.n)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("total        %d", e.n)) {
		t.Errorf("restore output:\n%s", r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 6 && f[0] == "total" && f[len(f)-1] != "0" {
			t.Errorf("extra messages in the store: %q", l)
		}
	}
	if got := files(); got != e.n {
		t.Errorf("the store has %d message files, want %d", got, e.n)
	}
	r = mustRun(t, e.env(), args...)
	if !strings.Contains(r.stdout, "the local store: 0 messages copied") {
		t.Errorf("rerun:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "--config", config, "verify")
	if !strings.Contains(r.stdout, "no differences") {
		t.Errorf("verify:\n%s", r.stdout)
	}
	testenv.CheckIndex(t, store)
	e.checkTemp(t)
}
