package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// restoreKills is how many runs of `postfach restore --to` TestRestore
// kills with SIGKILL while they copy.
const restoreKills = 3

// TestRestore: a snapshot of a synced store (`postfach backup`, named by
// its name in [backup] path) restored with the binary into an empty
// Dovecot user, killed with SIGKILL several times while it copies and
// then run to its end: every message is there exactly once with its
// bytes, flags and INTERNALDATE, the report verifies it, a rerun copies
// nothing. Then into a fresh local store: every message, a rerun
// delivers nothing, and the account's sync afterwards uploads nothing
// twice (the server already has them all). While postfach run holds the
// store, restore into it is refused in one line. --folder picks one
// folder into a destination folder.
func TestRestore(t *testing.T) {
	t.Parallel()
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
		cmd.Env = environ(t, nil)
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
				t.Fatalf("kill %d: restore ended before it was killed: %v", i, err)
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
	if midCopy < restoreKills {
		t.Errorf("%d of %d kills landed while copying", midCopy, restoreKills)
	}
	r := mustRun(t, nil, args...)
	t.Logf("after the kills:\n%s", r.stdout)
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", n)) {
		t.Errorf("restore output:\n%s", r.stdout)
	}
	sameMailboxes(t, src, mailboxes(t, d, bob.Name), nil)
	r = mustRun(t, nil, args...)
	if !strings.Contains(r.stdout, "snapshot old -> new: 0 messages copied") {
		t.Errorf("rerun output:\n%s", r.stdout)
	}
	sameMailboxes(t, src, mailboxes(t, d, bob.Name), nil)

	// --folder into one folder.
	r = mustRun(t, nil, "--config", config, "restore", filepath.Join(backups, name), "--folder", "old:Entwürfe", "--to", "new:Entwürfe 2")
	if !strings.Contains(r.stdout, fmt.Sprintf("%d messages copied", len(src["Entwürfe"]))) {
		t.Errorf("--folder output:\n%s", r.stdout)
	}
	if got := mailboxes(t, d, bob.Name)["Entwürfe 2"]; fmt.Sprint(got) != fmt.Sprint(src["Entwürfe"]) {
		t.Errorf("Entwürfe 2 holds %d messages, want Entwürfe's %d", len(got), len(src["Entwürfe"]))
	}

	// Into a fresh local store, then the sync: nothing is uploaded twice.
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	store2 := filepath.Join(filepath.Dir(config), "store2")
	config2 := filepath.Join(filepath.Dir(config), "config2.toml")
	if err := os.WriteFile(config2, []byte(strings.Replace(string(data), fmt.Sprintf("%q", store), fmt.Sprintf("%q", store2), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	two := len(src["INBOX"]) + len(src["Archiv/2024"])
	r = mustRun(t, nil, "--config", config2, "restore", filepath.Join(backups, name), "--folder", "old:INBOX", "--folder", "Archiv/2024")
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", two)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> the local store: %d messages copied", two)) {
		t.Errorf("two folders into the store:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "--config", config2, "restore", name)
	if !strings.Contains(r.stdout, fmt.Sprintf("verified: all %d source messages are on the destination", n)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("snapshot old -> the local store: %d messages copied", n-two)) {
		t.Errorf("the rest into the store:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "--config", config2, "restore", name)
	if !strings.Contains(r.stdout, "the local store: 0 messages copied") {
		t.Errorf("rerun into the store:\n%s", r.stdout)
	}
	mustRun(t, nil, "--config", config2, "sync", "old")
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
	r = run(t, nil, "--config", config2, "restore", name)
	t.Logf("refused while postfach run holds the store: %s", r.stderr)
	checkOneLineError(t, r, "postfach run", "stop postfach run first")
	stopAgent(t, a)
}
