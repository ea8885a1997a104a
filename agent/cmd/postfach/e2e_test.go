package main

// End-to-end tests of the postfach command: the binary built by TestMain,
// run as a subprocess against a private Dovecot (internal/testenv).

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestConfigErrors: a bad file is refused by `config check` and by `sync`
// with every error on its own line, FILE:LINE: KEY: MESSAGE, and nothing
// else is touched.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	doc := strings.Join([]string{
		`[store]`,                       // 1
		fmt.Sprintf("path = %q", store), // 2
		`colour = "blue"`,               // 3: unknown key
		``,                              // 4
		`[[accounts]]`,                  // 5: host missing
		`name = "work"`,                 // 6
		`kind = "imap"`,                 // 7
		`port = "abc"`,                  // 8: wrong type
		`tls = "none"`,                  // 9
		`username = "me"`,               // 10
		`password = "secret"`,           // 11
		``,                              // 12
		`[[accounts]]`,                  // 13
		`name = "home"`,                 // 14
		`kind = "imap"`,                 // 15
		`host = "127.0.0.1"`,            // 16
		`tls = "none"`,                  // 17
		`username = "me"`,               // 18
		`password = "secret"`,           // 19
		`fodlers = ["*"]`,               // 20: unknown key, a typo
		``,
	}, "\n")
	cfg := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		cfg + ":3: store.colour: unknown key",
		cfg + ":5: accounts[1].host: required",
		cfg + ":8: accounts[1].port: must be an integer, not a string",
		cfg + `:20: accounts[2].fodlers: unknown key (did you mean "folders"?)`,
	}
	for _, args := range [][]string{{"config", "check"}, {"sync"}, {"sync", "--json"}, {"status"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := run(t, nil, append([]string{"--config", cfg}, args...)...)
			if r.code == 0 {
				t.Errorf("exit status 0 for a bad config")
			}
			got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if !slices.Equal(got, want) {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, strings.Join(want, "\n"))
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q, want nothing", r.stdout)
			}
			if _, err := os.Stat(store); !os.IsNotExist(err) {
				t.Errorf("a refused config created the store %s (stat: %v)", store, err)
			}
		})
	}

	// The same file, repaired, passes.
	fixed := strings.NewReplacer(`colour = "blue"`, ``, `port = "abc"`, `host = "127.0.0.1"`, `fodlers`, `folders`).Replace(doc)
	if err := os.WriteFile(cfg, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, nil, "--config", cfg, "config", "check")
	if !strings.Contains(r.stdout, "ok (2 accounts") {
		t.Errorf("config check of the repaired file: %s", r)
	}

	// A missing file says how to make one.
	r = run(t, nil, "--config", filepath.Join(dir, "missing.toml"), "config", "check")
	checkOneLineError(t, r, "no config file", "postfach init")
}

// TestConnectErrors: a sync that cannot log in exits non-zero with one
// line on stderr that names the cause, and no stack trace; with the right
// CA the same TLS port works.
func TestConnectErrors(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.WithTLS(testenv.TLSOn), noAuthPenalty)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(3, 20, corpus.Options{}))
	closedPort := func() int {
		// A port nobody listens on: bind one, then let it go.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		return port
	}()

	good := imapAccount(d, "work")
	tests := []struct {
		name string
		acct func(a account) account
		want []string
	}{
		{"wrong password", func(a account) account { a.password = "wrong"; return a }, []string{"authentication failed", "work"}},
		{"refused", func(a account) account { a.port = closedPort; return a }, []string{"connection refused", strconv.Itoa(closedPort)}},
		{"untrusted certificate", func(a account) account { a.port, a.tls = d.IMAPSPort, "implicit"; return a }, []string{"certificate", "ca_file"}},
		{"starttls untrusted certificate", func(a account) account { a.tls = "starttls"; return a }, []string{"certificate"}},
		{"password_env unset", func(a account) account { a.pwEnv = "POSTFACH_TEST_UNSET_VARIABLE"; return a }, []string{"POSTFACH_TEST_UNSET_VARIABLE", "not set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"), tc.acct(good))
			r := run(t, nil, "--config", cfg, "sync", "work")
			checkOneLineError(t, r, tc.want...)
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			n, _ := fileCounts(t, filepath.Join(dir, "store"))
			if n != 0 {
				t.Errorf("%d message files after a failed login", n)
			}
		})
	}

	// Two failing accounts: one line each, each a "postfach: " line that
	// names its account.
	t.Run("two accounts", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a, b := good, good
		a.name, a.password = "first", "wrong"
		b.name, b.port = "second", closedPort
		cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"), a, b)
		r := run(t, nil, "--config", cfg, "sync")
		if r.code == 0 {
			t.Errorf("exit status 0")
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("stderr has %d lines, want 2 (one per account):\n%s", len(lines), r.stderr)
		}
		slices.Sort(lines)
		for i, want := range []string{"postfach: first: ", "postfach: second: "} {
			if !strings.HasPrefix(lines[i], want) {
				t.Errorf("stderr line %q, want it to start with %q", lines[i], want)
			}
		}
	})

	t.Run("trusted certificate", func(t *testing.T) {
		t.Parallel()
		for _, mode := range []string{"implicit", "starttls"} {
			dir := t.TempDir()
			a := good
			a.tls, a.caFile = mode, d.CertFile
			if mode == "implicit" {
				a.port = d.IMAPSPort
			}
			store := filepath.Join(dir, "store")
			cfg := writeConfig(t, dir, "config.toml", store, a)
			mustRun(t, nil, "--config", cfg, "sync")
			compare(t, d, store, "work")
		}
	})
}

// TestCertificateErrors: certificates that the configured CA signed but
// that are wrong anyway are refused, with a message that says why.
func TestCertificateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    testenv.TLSMode
		want    []string
		notWant string
	}{
		{testenv.TLSWrongHost, []string{"not valid for this host"}, ""},
		// The CA is trusted (ca_file is set): the message must not blame
		// an unknown authority nor ask for ca_file.
		{testenv.TLSExpired, []string{"expired"}, "unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			d := testenv.StartDovecot(t, testenv.WithTLS(tc.mode))
			a := imapAccount(d, "work")
			a.port, a.tls, a.caFile = d.IMAPSPort, "implicit", d.CertFile
			dir := t.TempDir()
			cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"), a)
			r := run(t, nil, "--config", cfg, "sync")
			checkOneLineError(t, r, append(tc.want, "certificate")...)
			if tc.notWant != "" && strings.Contains(r.stderr, tc.notWant) {
				t.Errorf("stderr %q says %q", strings.TrimSpace(r.stderr), tc.notWant)
			}
		})
	}
}

// TestSyncStatus: `status --json` after a sync has the server's count per
// folder and RFC 3339 times; after a failed login it shows the account's
// error and keeps the last good state.
func TestSyncStatus(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, noAuthPenalty)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(4, 200, corpus.Options{}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	acct := imapAccount(d, "work")
	cfg := writeConfig(t, dir, "config.toml", store, acct)

	// Before any sync: the account, no folders, never synced.
	st := getStatus(t, cfg)
	if len(st.Accounts) != 1 || st.Accounts[0].Name != "work" || st.Accounts[0].LastSync != "" || len(st.Accounts[0].Folders) != 0 {
		t.Errorf("status before the first sync: %+v", st)
	}

	before := time.Now().Add(-time.Second).Truncate(time.Second)
	r := mustRun(t, nil, "--config", cfg, "sync")
	if !strings.Contains(r.stdout, "work: ") || !strings.Contains(r.stdout, "200 new") {
		t.Errorf("sync output: %s", r.stdout)
	}
	after := time.Now().Add(time.Second)
	server := compare(t, d, store, "work")

	st = getStatus(t, cfg)
	if len(st.Accounts) != 1 {
		t.Fatalf("status: %d accounts, want 1", len(st.Accounts))
	}
	a := st.Accounts[0]
	if a.Name != "work" || a.Kind != "imap" || a.Error != "" || a.Messages != countMessages(server) {
		t.Errorf("account status %+v, want work, imap, no error, %d messages", a, countMessages(server))
	}
	checkTime := func(what, s string) time.Time {
		t.Helper()
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Errorf("%s last_sync %q: %v", what, s, err)
		} else if ts.Before(before) || ts.After(after) {
			t.Errorf("%s last_sync %v, not during the sync (%v..%v)", what, ts, before, after)
		}
		return ts
	}
	lastSync := a.LastSync
	checkTime("account", a.LastSync)
	got := map[string]int{}
	for _, f := range a.Folders {
		got[f.Name] = f.Messages
		checkTime("folder "+f.Name, f.LastSync)
		if f.Error != "" {
			t.Errorf("folder %s: error %q", f.Name, f.Error)
		}
	}
	want := map[string]int{}
	for name, msgs := range server {
		want[name] = len(msgs)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status folder counts %v, server %v", got, want)
	}
	if len(want) < 4 {
		t.Errorf("server has %d folders, want at least 4 (nested and non-ASCII among them)", len(want))
	}

	// The human-readable status names every folder.
	r = mustRun(t, nil, "--config", cfg, "status")
	for name := range want {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("status does not list folder %q:\n%s", name, r.stdout)
		}
	}

	// A failed login: the account shows the error; the counts and the
	// last good sync stay.
	bad := acct
	bad.password = "wrong"
	badCfg := writeConfig(t, dir, "bad.toml", store, bad)
	r = run(t, nil, "--config", badCfg, "sync")
	checkOneLineError(t, r, "authentication failed")
	st = getStatus(t, badCfg)
	a = st.Accounts[0]
	if !strings.Contains(a.Error, "authentication failed") {
		t.Errorf("account error after a failed login: %q", a.Error)
	}
	if a.LastSync != lastSync {
		t.Errorf("account last_sync %q after a failed login, want the last good one %q", a.LastSync, lastSync)
	}
	if a.Messages != countMessages(server) || len(a.Folders) != len(want) {
		t.Errorf("after a failed login: %d messages in %d folders, want %d in %d", a.Messages, len(a.Folders), countMessages(server), len(want))
	}

	// The next good run clears the error.
	time.Sleep(time.Second) // last_sync has whole seconds
	mustRun(t, nil, "--config", cfg, "sync")
	a = getStatus(t, cfg).Accounts[0]
	if a.Error != "" || a.LastSync == lastSync {
		t.Errorf("after a good run: error %q, last_sync %q (before %q)", a.Error, a.LastSync, lastSync)
	}
}

// killLoops is how many times TestKill kills a running sync (4 with
// -short); POSTFACH_KILL_LOOPS overrides it for soak runs, e.g.
//
//	POSTFACH_KILL_LOOPS=200 go test -run TestKill -timeout 30m ./agent/cmd/postfach/
const killLoops = 12

// TestKill: kill -9 at random moments of initial and incremental syncs,
// and the moment a commit begins (every third kill), with server changes
// in between, never loses, duplicates or orphans a message: one clean run
// afterwards leaves an exact mirror. The test counts the kills that landed
// (at least half the runs) and those inside a commit (at least one).
func TestKill(t *testing.T) {
	t.Parallel()
	loops := killLoops
	if testing.Short() {
		loops = 4
	}
	if s := os.Getenv("POSTFACH_KILL_LOOPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("POSTFACH_KILL_LOOPS=%q: want a positive number", s)
		}
		loops = n
	}
	seed := time.Now().UnixNano()
	t.Logf("random seed %d (POSTFACH_KILL_SEED to repeat)", seed)
	if s := os.Getenv("POSTFACH_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))

	d := testenv.StartDovecot(t)
	user := testenv.DefaultUser.Name
	opts := corpus.Options{BigAttachmentEvery: 300, BigAttachmentSize: 1 << 20}
	initial := 1500
	if testing.Short() {
		initial = 600 // a binary built with -race is 20 times slower
	}
	d.Seed(t, user, corpus.Generate(5, initial, opts))
	extra := 0 // messages added later come from another seed

	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))
	acctDir := filepath.Join(store, "work")

	// A second sync while one runs is refused; SIGTERM stops a sync
	// mid-download promptly.
	{
		cmd := exec.Command(postfachBin, "--config", cfg, "sync")
		cmd.Env = environ(t, nil)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, tmp := scanFiles(t, acctDir); len(tmp) > 0 {
				break // downloading: it holds the lock
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the first sync wrote nothing to tmp/ in 20 s:\n%s", stderr.String())
			}
		}
		r := run(t, nil, "--config", cfg, "sync")
		checkOneLineError(t, r, "another postfach is syncing")

		start := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		took := time.Since(start)
		t.Logf("SIGTERM mid-download: exit after %v: %v; stderr:\n%s", took, err, stderr.String())
		if err == nil || killed(cmd) || cmd.ProcessState.ExitCode() != 143 {
			t.Errorf("SIGTERM mid-download: %v, want exit status 143", err)
		}
		if took > 10*time.Second {
			t.Errorf("SIGTERM: the sync took %v to stop", took)
		}
		for _, bad := range []string{"goroutine ", "panic", "DATA RACE"} {
			if strings.Contains(stderr.String(), bad) {
				t.Errorf("SIGTERM: stderr holds %q", bad)
			}
		}
	}

	// kill runs one sync (with -v, so that its stderr shows where its
	// commits begin and end) and kills it after a random 20 ms plus up to
	// as long as the last run that finished took (at first 380 ms) or,
	// with atCommit > 0, the moment its atCommit-th commit begins, unless
	// it ends before. (Runs get shorter as the mailbox is mirrored: a kill
	// timed for the first runs would come after most later ones ended.)
	var stats struct{ killed, midCommit, midDownload, idle, finished, changes int }
	runLen := 380 * time.Millisecond
	kill := func(i, atCommit int) {
		filesBefore, tmpBefore := scanFiles(t, acctDir)
		cmd := exec.Command(postfachBin, "--config", cfg, "-v", "sync")
		cmd.Env = environ(t, nil)
		stderr := testenv.NewCommitWatch(atCommit)
		cmd.Stderr = stderr
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := 20*time.Millisecond + time.Duration(rnd.Int64N(int64(runLen)+1))
		if atCommit > 0 {
			delay = runTimeout
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(delay):
			cmd.Process.Kill() // SIGKILL
			err = <-done
		case <-stderr.Hit:
			cmd.Process.Kill()
			err = <-done
		}
		begun, ended := stderr.Counts()
		filesAfter, tmpAfter := scanFiles(t, acctDir)
		newTmp := 0
		for f := range tmpAfter {
			if !tmpBefore[f] {
				newTmp++
			}
		}
		what := "finished"
		switch {
		case killed(cmd) && begun > ended:
			stats.killed++
			stats.midCommit++
			what = "killed inside a commit"
		case killed(cmd) && (filesAfter != filesBefore || newTmp > 0):
			// It had written message files: killed while downloading
			// or committing.
			stats.killed++
			stats.midDownload++
			what = "killed mid-download"
		case killed(cmd):
			stats.killed++
			stats.idle++
			what = "killed before downloading (or with nothing to download)"
		case err != nil:
			t.Fatalf("loop %d: sync failed on its own: %v\n%s", i, err, stderr.String())
		default:
			stats.finished++
			runLen = time.Since(began)
		}
		when := fmt.Sprintf("%3d ms", delay.Milliseconds())
		if atCommit > 0 {
			when = fmt.Sprintf("commit %d", atCommit)
		}
		t.Logf("loop %2d: %s: %s; commits begun %d, ended %d; message files %d -> %d; tmp/ %d -> %d files (%d new)",
			i, when, what, begun, ended, filesBefore, filesAfter, len(tmpBefore), len(tmpAfter), newTmp)
	}
	// Every third kill comes as a commit begins; more of them if none of
	// those landed inside the commit.
	for i := 0; i < loops || stats.midCommit == 0 && i < 2*loops; i++ {
		switch {
		case i == loops/2 && i > 0:
			// Let one run finish, so that the kills after it hit
			// incremental runs.
			res := syncJSON(t, cfg, "work")
			t.Logf("loop %2d: an unkilled run: %+v", i, res)
			changeServer(t, d, rnd, &extra)
			stats.changes++
		case i%3 == 2:
			changeServer(t, d, rnd, &extra)
			stats.changes++
		}
		atCommit := 0
		if i%3 == 2 || i >= loops { // right after a server change
			atCommit = 1
			if i < loops/2 { // an initial sync: several commits
				atCommit += rnd.IntN(2)
			}
		}
		kill(i, atCommit)
	}
	t.Logf("%d loops: %d killed (%d inside a commit, %d else mid-download, %d before any download), %d finished before the kill; %d server changes",
		loops, stats.killed, stats.midCommit, stats.midDownload, stats.idle, stats.finished, stats.changes)
	if stats.killed < loops/2 {
		t.Errorf("%d of %d runs were killed, want at least %d: the runs ended before their kills", stats.killed, loops, loops/2)
	}
	if stats.midCommit == 0 {
		t.Errorf("no kill landed inside a commit: the test did not try the hardest moment")
	}

	changeServer(t, d, rnd, &extra) // the clean run has changes to apply too
	res := syncJSON(t, cfg, "work")
	t.Logf("clean run: %+v", res)
	server := compare(t, d, store, "work")
	if n := countMessages(server); n < initial {
		t.Fatalf("server has %d messages, want at least %d", n, initial)
	}
	// And a run after that has nothing to do.
	if res := syncJSON(t, cfg, "work"); res.New != 0 || res.Flags != 0 || res.Expunged != 0 || res.Rebuilt != 0 {
		t.Errorf("run after the clean run did something: %+v", res)
	}
	compare(t, d, store, "work")
}

// changeServer adds 5 messages and flags, unflags and expunges a few in
// INBOX, over IMAP.
func changeServer(t *testing.T, d *testenv.Dovecot, rnd *rand.Rand, extra *int) {
	t.Helper()
	var msgs []corpus.Message
	for range 5 {
		m := corpus.At(6, *extra, corpus.Options{})
		*extra++
		msgs = append(msgs, m)
	}
	d.Seed(t, testenv.DefaultUser.Name, msgs)

	c, err := d.Dial(testenv.DefaultUser.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	n := sel.NumMessages
	if n < 10 {
		t.Fatalf("INBOX has %d messages", n)
	}
	pick := func(k int) imap.SeqSet {
		var s imap.SeqSet
		for range k {
			s.AddNum(1 + uint32(rnd.IntN(int(n))))
		}
		return s
	}
	store := func(set imap.SeqSet, op imap.StoreFlagsOp, flags ...imap.Flag) {
		if err := c.Store(set, &imap.StoreFlags{Op: op, Flags: flags, Silent: true}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	store(pick(3), imap.StoreFlagsAdd, imap.FlagFlagged, "$Label2")
	store(pick(3), imap.StoreFlagsDel, imap.FlagSeen)
	store(pick(2), imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestLostIndex: with the index deleted, a sync re-indexes every message
// from the files on disk and downloads none.
func TestLostIndex(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 300, corpus.Options{BigAttachmentEvery: 150, BigAttachmentSize: 256 << 10}))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))

	res := syncJSON(t, cfg, "work")
	server := compare(t, d, store, "work")
	n := countMessages(server)
	if res.New != n || res.Rebuilt != 0 || res.Error != "" || res.Folders != len(server) {
		t.Errorf("first sync: %+v, want %d new in %d folders", res, n, len(server))
	}

	matches, err := filepath.Glob(filepath.Join(store, ".postfach", "index.db*"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no index files to delete: %v %v", matches, err)
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	res = syncJSON(t, cfg, "work")
	if res.New != 0 || res.Rebuilt != n || res.Error != "" {
		t.Errorf("sync after losing the index: %+v, want 0 new and %d rebuilt", res, n)
	}
	if res.Bytes > 0 {
		t.Errorf("sync after losing the index downloaded %d bytes", res.Bytes)
	}
	compare(t, d, store, "work")
	st := getStatus(t, cfg)
	if a := st.Accounts[0]; a.Messages != n || a.Error != "" {
		t.Errorf("status after rebuilding: %d messages, error %q; want %d", a.Messages, a.Error, n)
	}
}

// TestInit: `init` writes the example config, which `config check`
// accepts, and does not overwrite a file without --force.
func TestInit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sub", "dir", "config.toml")
	// The example reads the password from this variable.
	if !bytes.Contains(configs.Example, []byte(`password_env = "POSTFACH_WORK_PASSWORD"`)) {
		t.Fatal(`configs/example.toml no longer sets password_env = "POSTFACH_WORK_PASSWORD"; update this test`)
	}
	env := []string{"POSTFACH_WORK_PASSWORD=secret"}

	r := mustRun(t, env, "--config", cfg, "init")
	if !strings.Contains(r.stdout, cfg) {
		t.Errorf("init output does not name the file: %q", r.stdout)
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, configs.Example) {
		t.Errorf("init wrote something else than configs.Example")
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("config file mode %v (%v), want private", fi.Mode(), err)
	}
	r = mustRun(t, env, "--config", cfg, "config", "check")
	if !strings.Contains(r.stdout, "ok (1 account,") {
		t.Errorf("config check of the example: %s", r)
	}

	// No overwrite without --force.
	mine := append(slices.Clone(data), "# my edits\n"...)
	if err := os.WriteFile(cfg, mine, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, env, "--config", cfg, "init")
	checkOneLineError(t, r, "already exists", "--force")
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, mine) {
		t.Errorf("init without --force changed the existing file")
	}
	mustRun(t, env, "--config", cfg, "init", "--force")
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, configs.Example) {
		t.Errorf("init --force did not overwrite the file")
	}
}

// TestDemo: `demo` mirrors its built-in server into a directory, and the
// config it leaves there works with `status`.
func TestDemo(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	r := run(t, nil, "demo", "--dir", dir, "--messages", "50")
	if r.code != 0 {
		t.Fatalf("postfach demo: %s", r)
	}
	if !strings.Contains(r.stdout, "50 messages") {
		t.Errorf("demo output:\n%s", r.stdout)
	}
	// Like sync, demo must not draw a progress bar when stderr is not a
	// terminal (here it is a pipe).
	if r.stderr != "" {
		t.Errorf("demo wrote to stderr, which is not a terminal: %q", r.stderr)
	}
	cfg := filepath.Join(dir, "config.toml")
	if _, err := os.Stat(cfg); err != nil {
		t.Fatal(err)
	}
	var inbox []os.DirEntry
	for _, sub := range []string{"cur", "new"} { // new/: unread
		es, err := os.ReadDir(filepath.Join(dir, "Mail", "demo", "INBOX", sub))
		if err != nil {
			t.Fatal(err)
		}
		inbox = append(inbox, es...)
	}
	if len(inbox) == 0 {
		t.Fatalf("demo INBOX: no files")
	}
	files, tmp := fileCounts(t, filepath.Join(dir, "Mail", "demo"))
	if files != 50 || tmp != 0 {
		t.Errorf("demo left %d message files and %d in tmp/, want 50 and 0", files, tmp)
	}

	st := getStatus(t, cfg)
	if len(st.Accounts) != 1 || st.Accounts[0].Name != "demo" {
		t.Fatalf("status of the demo: %+v", st)
	}
	a := st.Accounts[0]
	total := 0
	for _, f := range a.Folders {
		total += f.Messages
		if f.Name == "INBOX" && f.Messages != len(inbox) {
			t.Errorf("status: INBOX has %d messages, cur/ and new/ %d files", f.Messages, len(inbox))
		}
	}
	if total != 50 || a.Messages != 50 || len(a.Folders) < 2 {
		t.Errorf("status of the demo: %d messages (account says %d) in %d folders, want 50", total, a.Messages, len(a.Folders))
	}
}

// searchMessages are messages whose words are found only once their bodies
// are decoded: quoted-printable (a soft line break inside a word, UTF-8 in
// =XX escapes) and base64 (in the text and HTML parts of a
// multipart/alternative); and one whose word is only in a base64
// attachment, which is not text and must not be found. Each maps a search
// word to the message's subject.
func searchMessages(t *testing.T) ([]corpus.Message, map[string]string) {
	t.Helper()
	b64 := func(s string) string {
		enc := base64.StdEncoding.EncodeToString([]byte(s))
		var b strings.Builder
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		return b.String() + enc + "\r\n"
	}
	head := func(subject, id, extra string) string {
		return "From: Search Test <search@example.org>\r\nTo: you@example.net\r\nSubject: " + subject +
			"\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\nMessage-ID: <" + id + "@example.org>\r\nMIME-Version: 1.0\r\n" + extra
	}
	raws := map[string]string{
		"Fahrplan an der Donau": head("Fahrplan an der Donau", "qp", "Content-Type: text/plain; charset=utf-8\r\n"+
			"Content-Transfer-Encoding: quoted-printable\r\n\r\n"+
			"Die Fahrt mit dem Donau=\r\ndampfschiff war sch=C3=B6n, der Zw=C3=B6lfkampf am Ufer auch.\r\n"),
		"Heute im Park": head("Heute im Park", "b64", "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"+
			"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			b64("Heute: die grosse Quokkaparade im Park, mit Musik.\r\n")+
			"--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			b64("<p>Danach: <b>Wombatrennen</b> am See.</p>\r\n")+"--b1--\r\n"),
		"Anhang anbei": head("Anhang anbei", "att", "Content-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n"+
			"--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsiehe Anhang\r\n"+
			"--b2\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\nContent-Disposition: attachment; filename=\"x.bin\"\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n"+b64("Geheimwortimanhang\r\n")+"--b2--\r\n"),
	}
	words := map[string]string{
		"Donaudampfschiff":   "Fahrplan an der Donau",
		"Zwölfkampf":         "Fahrplan an der Donau",
		"Quokkaparade":       "Heute im Park",
		"Wombatrennen":       "Heute im Park",
		"Geheimwortimanhang": "", // in an attachment: not found
	}
	var msgs []corpus.Message
	for subject, raw := range raws {
		for w := range words {
			if strings.Contains(strings.ToLower(raw), strings.ToLower(w)) {
				t.Fatalf("message %q holds %q undecoded: it proves nothing", subject, w)
			}
		}
		msgs = append(msgs, corpus.Message{Folder: "INBOX", Raw: []byte(raw), Date: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)})
	}
	return msgs, words
}

// TestSearch: after a sync, search finds messages by subject and by words
// of their decoded text bodies (indexed on first search), across folders:
// also words that only decoding quoted-printable or base64 reveals, and
// not words of attachments.
func TestSearch(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	msgs := corpus.Generate(11, 60, corpus.Options{})
	d.Seed(t, testenv.DefaultUser.Name, msgs)
	encoded, words := searchMessages(t)
	d.Seed(t, testenv.DefaultUser.Name, encoded)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := writeConfig(t, dir, "config.toml", store, imapAccount(d, "work"))
	mustRun(t, nil, "--config", cfg, "sync")

	// A word from one message's Message-ID-unique subject line.
	target := msgs[17]
	subject := ""
	for _, line := range strings.Split(string(target.Raw), "\r\n") {
		if strings.HasPrefix(line, "Subject: ") {
			subject = strings.TrimPrefix(line, "Subject: ")
			break
		}
	}
	if subject == "" || strings.Contains(subject, "=?") {
		t.Fatalf("message 17 has an encoded subject %q; pick another seed", subject)
	}
	r := mustRun(t, nil, "--config", cfg, "search", subject)
	if !strings.Contains(r.stdout, subject) {
		t.Errorf("search %q:\n%s", subject, r)
	}
	r = mustSearch(t, nil, "--config", cfg, "search", "nosuchwordanywhere")
	if strings.TrimSpace(r.stdout) != "" || r.stderr != "no messages match\n" {
		t.Errorf("search for a missing word: %s\nwant nothing on stdout, and on stderr that nothing matched", r)
	}
	for word, subject := range words {
		r := mustSearch(t, nil, "--config", cfg, "search", word)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		switch {
		case subject == "" && strings.TrimSpace(r.stdout) != "":
			t.Errorf("search %q (only in an attachment) found:\n%s", word, r.stdout)
		case subject != "" && (len(lines) != 1 || !strings.Contains(lines[0], subject)):
			t.Errorf("search %q: got\n%s\nwant one line, the message %q", word, r.stdout, subject)
		}
	}
}
