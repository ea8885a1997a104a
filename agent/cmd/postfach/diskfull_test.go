package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// The disk-full tests put the store (Maildir and index) on a small tmpfs,
// run the command until the disk is full, and check what a user must be
// able to rely on: the command stops with clear lines (no crash, no
// stack trace), nothing stored is truncated or doubled, nothing is deleted
// on the server that is not stored, the index passes SQLite's
// integrity_check; and when space returns, the next run finishes the job
// exactly.

// diskFullSizes are the tmpfs sizes tried: each runs out at another point
// (creating the index, writing the first files, in the middle, near the
// end). The corpus is about 3.5 MB.
var diskFullSizes = []int64{48 << 10, 400 << 10, 1200 << 10, 2500 << 10}

// diskFullCorpus is 80 messages over two folders, every 10th with a
// 300 KB attachment.
func diskFullCorpus() []corpus.Message {
	return corpus.Generate(31, 80, corpus.Options{
		Folders:            []string{"INBOX", "Archive"},
		BigAttachmentEvery: 10, BigAttachmentSize: 300 << 10,
	})
}

// checkFullRun checks a run that may have failed for want of space: a
// failure is one line "postfach: ..." naming the cause and the store,
// never a crash.
func checkFullRun(t *testing.T, r result, store string) {
	t.Helper()
	if r.code == 0 {
		return // it fitted
	}
	t.Logf("disk full: %s", strings.TrimSpace(r.stderr))
	for _, bad := range []string{"goroutine", "panic", "runtime.", ".go:", "DATA RACE"} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("stderr holds %q, a crash or stack trace:\n%s", bad, r)
		}
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.stderr == "" || len(lines) != 1 {
		t.Errorf("disk full: want one line on stderr, got %d:\n%s", len(lines), r)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "postfach: ") {
			t.Errorf("stderr line %q does not start with \"postfach: \"", l)
		}
	}
	if !strings.Contains(r.stderr, "the disk of the store "+store+" is full (no space left on device)") {
		t.Errorf("disk full: stderr does not say so:\n%s", r)
	}
}

// checkStoredWhole checks that every message file below dir is one of the
// messages of want, byte for byte (LF line ends), and none is there twice.
func checkStoredWhole(t *testing.T, dir string, want []corpus.Message) {
	t.Helper()
	known := map[[32]byte]bool{}
	for _, m := range want {
		known[sha256.Sum256(bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n")))] = true
	}
	seen := map[[32]byte]string{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if e.Name() == ".postfach" {
				return filepath.SkipDir
			}
			return nil
		}
		if b := filepath.Base(filepath.Dir(path)); b != "cur" && b != "new" {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		if !known[sum] {
			t.Errorf("%s: %d bytes that are no whole message of the server (truncated?)", path, len(raw))
		}
		if prev, ok := seen[sum]; ok {
			t.Errorf("%s: the same message as %s", path, prev)
		}
		seen[sum] = path
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDiskFullSync: `postfach sync` of an IMAP account into a store on a
// tmpfs too small for it.
func TestDiskFullSync(t *testing.T) {
	t.Parallel()
	msgs := diskFullCorpus()
	for _, size := range sizes() {
		t.Run(fmt.Sprintf("%dk", size>>10), func(t *testing.T) {
			d := testenv.StartDovecot(t)
			d.Seed(t, testenv.DefaultUser.Name, msgs)
			disk := testenv.MountTmpfs(t, size)
			store := filepath.Join(disk.Dir, "store")
			config := writeConfig(t, t.TempDir(), "config.toml", store, imapAccount(d, "work"))

			r := run(t, nil, "--config", config, "sync")
			checkFullRun(t, r, store)
			if r.code == 0 {
				t.Fatalf("a %d KB disk held the whole corpus: make it smaller", size>>10)
			}
			testenv.CheckIndex(t, store)
			checkStoredWhole(t, store, msgs)
			// A second run on the full disk changes nothing for the worse.
			checkFullRun(t, run(t, nil, "--config", config, "sync"), store)
			testenv.CheckIndex(t, store)
			checkStoredWhole(t, store, msgs)

			disk.Resize(64 << 20)
			mustRun(t, nil, "--config", config, "sync")
			testenv.CheckIndex(t, store)
			server := compare(t, d, store, "work")
			if n := countMessages(server); n != len(msgs) {
				t.Errorf("server holds %d messages, seeded %d", n, len(msgs))
			}
		})
	}
}

// TestDiskFullPOP3: a POP3 account with keep = false fetched into a full
// store: nothing is deleted on the server that is not stored whole.
func TestDiskFullPOP3(t *testing.T) {
	t.Parallel()
	msgs := diskFullCorpus()
	for i := range msgs {
		msgs[i].Folder = "INBOX"
	}
	for _, size := range sizes() {
		t.Run(fmt.Sprintf("%dk", size>>10), func(t *testing.T) {
			d := testenv.StartDovecot(t)
			d.Seed(t, testenv.DefaultUser.Name, msgs)
			disk := testenv.MountTmpfs(t, size)
			store := filepath.Join(disk.Dir, "store")
			pass, _ := d.Password(testenv.DefaultUser.Name)
			config := filepath.Join(t.TempDir(), "config.toml")
			doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"pop\"\nkind = \"pop3\"\nhost = %q\nport = %d\n"+
				"tls = \"none\"\nusername = %q\npassword = %q\nkeep = false\n", store, d.Host, d.POP3Port, testenv.DefaultUser.Name, pass)
			if err := os.WriteFile(config, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}

			r := run(t, nil, "--config", config, "sync")
			checkFullRun(t, r, store)
			if r.code == 0 {
				t.Fatalf("a %d KB disk held the whole corpus: make it smaller", size>>10)
			}
			testenv.CheckIndex(t, store)
			checkStoredWhole(t, store, msgs)
			checkNothingLost(t, d, store, msgs)

			disk.Resize(64 << 20)
			mustRun(t, nil, "--config", config, "sync")
			testenv.CheckIndex(t, store)
			checkStoredWhole(t, store, msgs)
			if n, tmp := fileCounts(t, store); n != len(msgs) || tmp != 0 {
				t.Errorf("after space returned: %d messages and %d tmp files stored, want %d and 0", n, tmp, len(msgs))
			}
			if n := countMessages(serverFolders(t, d)); n != 0 {
				t.Errorf("keep = false: %d messages left on the server", n)
			}
		})
	}
}

// checkNothingLost: every seeded message is on the server or stored whole.
func checkNothingLost(t *testing.T, d *testenv.Dovecot, store string, msgs []corpus.Message) {
	t.Helper()
	have := map[[32]byte]bool{}
	for _, ms := range serverFolders(t, d) {
		for _, m := range ms {
			have[sha256.Sum256(bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n")))] = true
		}
	}
	filepath.WalkDir(store, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if b := filepath.Base(filepath.Dir(path)); b == "cur" || b == "new" {
				if raw, err := os.ReadFile(path); err == nil {
					have[sha256.Sum256(raw)] = true
				}
			}
		}
		return nil
	})
	for _, m := range msgs {
		if !have[sha256.Sum256(bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n")))] {
			t.Errorf("message %s is neither on the server nor stored", m.MessageID)
		}
	}
}

// TestDiskFullMigrate: `postfach migrate` through a full store copies
// nothing damaged, and finishes, verified, when space returns.
func TestDiskFullMigrate(t *testing.T) {
	t.Parallel()
	msgs := diskFullCorpus()
	for _, size := range sizes() {
		t.Run(fmt.Sprintf("%dk", size>>10), func(t *testing.T) {
			d := testenv.StartDovecot(t, alice, bob)
			d.Seed(t, alice.Name, msgs)
			disk := testenv.MountTmpfs(t, size)
			config, _ := migrateConfig(t, d, [3]string{"imap", "old", alice.Name}, [3]string{"imap", "new", bob.Name})
			store := filepath.Join(disk.Dir, "store")
			doc, err := os.ReadFile(config)
			if err != nil {
				t.Fatal(err)
			}
			doc = []byte(strings.Replace(string(doc), "path = ", fmt.Sprintf("path = %q\n# was: ", store), 1))
			if err := os.WriteFile(config, doc, 0o600); err != nil {
				t.Fatal(err)
			}

			r := run(t, nil, "--config", config, "migrate", "--from", "old", "--to", "new")
			checkFullRun(t, r, store)
			if r.code == 0 {
				t.Fatalf("a %d KB disk held the whole corpus: make it smaller", size>>10)
			}
			testenv.CheckIndex(t, store)
			checkStoredWhole(t, store, msgs)
			dest := mailboxes(t, d, bob.Name)
			for f, ms := range dest {
				for _, m := range ms {
					if !containsRaw(msgs, m.Sum) {
						t.Errorf("destination %s: message %s is no whole source message", f, m)
					}
				}
			}

			disk.Resize(64 << 20)
			mustRun(t, nil, "--config", config, "migrate", "--from", "old", "--to", "new")
			testenv.CheckIndex(t, store)
			sameMailboxes(t, mailboxes(t, d, alice.Name), mailboxes(t, d, bob.Name), nil)
		})
	}
}

func containsRaw(msgs []corpus.Message, sum [32]byte) bool {
	for _, m := range msgs {
		if sha256.Sum256(m.Raw) == sum {
			return true
		}
	}
	return false
}

// sizes is diskFullSizes, fewer under -short.
func sizes() []int64 {
	if testing.Short() {
		return diskFullSizes[1:3]
	}
	return diskFullSizes
}
