package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/internal/testenv"
)

// TestMigrateSmoke runs the migrate scenario on a tiny mailbox of the real
// corpus: every phase timed and verified (postfach's and mbsync's copies,
// the reruns, postfach's copy from POP3), with a peak RSS for every
// process, and no row for mbsync in the POP3 phase.
func TestMigrateSmoke(t *testing.T) {
	testenv.NeedDovecot(t) // fails, not skips, with CI=true
	if _, err := exec.LookPath("mbsync"); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("skipping: needs mbsync (apt-get install isync): %v", err)
		}
		t.Fatal(err)
	}
	var o migrateOptions
	o.messages, o.seed, o.runs, o.corpus, o.pop3 = 40, 1, 1, corpusReal, true
	var err error
	if o.opts, err = corpusOptions(o.corpus, nil); err != nil {
		t.Fatal(err)
	}
	o.dir = t.TempDir()
	// Dovecot's users must pass through the parents, as with -dir.
	for d := o.dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := migrateReport(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.writeText(&out)
	t.Logf("\n%s", out.String())
	var names []string
	for _, ph := range rep.Phases {
		names = append(names, ph.Name)
		for _, pr := range ph.Peers {
			if ph.Name == phaseMigratePOP3 && pr.Peer != "postfach" {
				if len(pr.Runs) != 0 {
					t.Errorf("%s, %s: runs %+v, want none", ph.Name, pr.Peer, pr.Runs)
				}
				continue
			}
			if len(pr.Runs) != 1 || pr.Median.Wall <= 0 || pr.Median.MaxRSSKiB <= 0 {
				t.Errorf("%s, %s: runs %+v", ph.Name, pr.Peer, pr.Runs)
			}
		}
		if ph.Work != 40 {
			t.Errorf("%s: work %d, want 40", ph.Name, ph.Work)
		}
	}
	want := []string{phaseMigrateInitial, phaseMigrateRerun, phaseMigratePOP3}
	if !slices.Equal(names, want) {
		t.Errorf("phases %q, want %q", names, want)
	}
	if !regexp.MustCompile(`(?m)^\s*initial from POP3\s+[0-9.]+ s\s+-\s+-\s`).MatchString(out.String()) {
		t.Errorf("the POP3 phase's mbsync column is not \"-\"")
	}
}

func TestPostfachCopied(t *testing.T) {
	m := &postfachMigration{}
	if _, ok := m.Copied(); ok {
		t.Errorf("Copied of no output: ok")
	}
	m.out = []byte("source source: 40 new messages (2.1 MB) fetched into the store\n" +
		"source -> dest: 40 messages copied (2.1 MB) in 1.2s\n\nfolder  source ...\n\nverified: all 40 source messages are on the destination\n")
	if n, ok := m.Copied(); !ok || n != 40 {
		t.Errorf("Copied = %d, %v; want 40, true", n, ok)
	}
	m.out = []byte("source -> dest: 0 messages copied (0 B) in 0.3s\n\nverified: all 40 source messages are on the destination\n")
	if n, ok := m.Copied(); !ok || n != 0 {
		t.Errorf("Copied = %d, %v; want 0, true", n, ok)
	}
	m.out = []byte("source -> dest: 40 messages copied (2.1 MB) in 1.2s\n\nNOT COMPLETE: 1 of 40 source messages are missing on the destination\n")
	if _, ok := m.Copied(); ok {
		t.Errorf("Copied without verification: ok")
	}
}

func TestMbsyncMigrateRC(t *testing.T) {
	dir := t.TempDir()
	p := &mbsyncPeer{bin: "/usr/bin/mbsync", tlsKeyword: "SSLType", migrate: true}
	m, err := p.NewMigration(dir, upstream{Host: "127.0.0.1", Port: 143, User: "src", Password: "p1"},
		upstream{Host: "127.0.0.1", Port: 143, User: "dst", Password: "p2"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := os.ReadFile(filepath.Join(dir, "mbsyncrc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"IMAPAccount source\nHost 127.0.0.1\nPort 143\nUser src\nPass p1\nSSLType None\n",
		"IMAPAccount dest\nHost 127.0.0.1\nPort 143\nUser dst\nPass p2\nSSLType None\n",
		"IMAPStore source\nAccount source\n", "IMAPStore dest\nAccount dest\n",
		"Far :source:\nNear :dest:\nPatterns *\nCreate Near\nSync Pull\nCopyArrivalDate yes\nSyncState " + filepath.Join(dir, "state") + "/\n",
	} {
		if !strings.Contains(string(rc), w) {
			t.Errorf("mbsyncrc lacks %q:\n%s", w, rc)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "state")); err != nil || !st.IsDir() {
		t.Errorf("no SyncState directory: %v", err)
	}
	if m.Keywords() || !addsTUID(m) {
		t.Errorf("mbsync's migration: Keywords %v, AddsTUID %v; want false, true", m.Keywords(), addsTUID(m))
	}
}

// TestLinkFlat: every message file of every folder (cur/ and new/) lands
// in the destination's cur/ once, without flags; other files do not.
func TestLinkFlat(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "user")
	files := map[string]string{
		"cur/1.a:2,S":               "one",
		"new/2.b":                   "two",
		".Archive/cur/3.c:2,FSa":    "three",
		".Lists.Go/new/4.d":         "four",
		"dovecot-uidlist":           "state",
		".Archive/dovecot-keywords": "0 $Label1",
		"tmp/5.e":                   "half",
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := linkFlat(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("linked %d, want 4", n)
	}
	ents, err := os.ReadDir(filepath.Join(dst, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{"1.a:2,", "2.b:2,", "3.c:2,", "4.d:2,"}
	if !slices.Equal(got, want) {
		t.Errorf("cur/ holds %q, want %q", got, want)
	}
	for _, d := range []string{"new", "tmp"} {
		if ents, err := os.ReadDir(filepath.Join(dst, d)); err != nil || len(ents) != 0 {
			t.Errorf("%s/: %d entries, %v; want an empty directory", d, len(ents), err)
		}
	}
}
