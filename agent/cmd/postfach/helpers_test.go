package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
)

// postfachBin is the binary built by TestMain.
var postfachBin string

// TestMain builds the postfach binary once (with -race when the tests are
// built with it, so that the end-to-end runs look for races in the command
// too) and runs the tests against it.
func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	// A fuzzing worker runs one fuzz target (of send's parsing), never
	// the binary: the coordinator built it once.
	if slices.ContainsFunc(os.Args[1:], func(a string) bool { return strings.HasPrefix(a, "-test.fuzzworker") }) {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "postfach-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	postfachBin = filepath.Join(dir, "postfach")
	args := []string{"build", "-o", postfachBin}
	build := exec.Command("go")
	if raceEnabled {
		args = append(args, "-race") // needs cgo
	} else {
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // as the README installs it
	}
	build.Args = append(build.Args, append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building postfach: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// noAuthPenalty turns off Dovecot's auth penalty, which delays every
// failed login from an IP after the first by 2 s, 4 s, ... up to 15 s
// (auth_failure_delay = 0 does not cover it): without a connection to
// anvil's penalty socket, auth applies none.
var noAuthPenalty = testenv.WithConfig(`service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}`)

// result is the outcome of one run of the binary.
type result struct {
	code           int // exit status; -1 when killed by a signal
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runTimeout bounds every run of the binary.
const runTimeout = 90 * time.Second

// environ returns a clean environment for the binary (HOME is a fresh
// directory, so that nothing of the user's leaks in) with env added.
func environ(t testing.TB, env []string) []string {
	t.Helper()
	home := t.TempDir()
	out := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	return append(out, env...)
}

// run runs the binary to its end and returns what it did.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, postfachBin, args...)
	cmd.Env = environ(t, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("postfach %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("postfach %s: still running after %v\n%s", strings.Join(args, " "), runTimeout, r)
	}
	return r
}

// mustSearch runs postfach search: as mustRun, but for the line saying
// that nothing matched, which it writes on stderr.
func mustSearch(t testing.TB, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 || (r.stderr != "" && r.stderr != "no messages match\n") || (r.stderr != "") != (r.stdout == "") {
		t.Fatalf("postfach %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// mustRun runs the binary and fails the test unless it exits 0 with nothing
// on stderr.
func mustRun(t testing.TB, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("postfach %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// account is one [[accounts]] table of a test config.
type account struct {
	name     string
	host     string
	port     int
	tls      string // "none", "implicit", "starttls"
	user     string
	password string
	pwEnv    string // password_env instead of password
	caFile   string
}

// imapAccount is an account for d's plaintext IMAP port as the default user.
func imapAccount(d *testenv.Dovecot, name string) account {
	pass, _ := d.Password(testenv.DefaultUser.Name)
	return account{name: name, host: d.Host, port: d.IMAPPort, tls: "none", user: testenv.DefaultUser.Name, password: pass}
}

// writeConfig writes a config for a store and accounts into dir and returns
// its path.
func writeConfig(t testing.TB, dir, file, store string, accts ...account) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[store]\npath = %q\n", store)
	for _, a := range accts {
		fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\nkind = \"imap\"\nhost = %q\nport = %d\ntls = %q\nusername = %q\n",
			a.name, a.host, a.port, a.tls, a.user)
		if a.pwEnv != "" {
			fmt.Fprintf(&b, "password_env = %q\n", a.pwEnv)
		} else {
			fmt.Fprintf(&b, "password = %q\n", a.password)
		}
		if a.caFile != "" {
			fmt.Fprintf(&b, "ca_file = %q\n", a.caFile)
		}
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// status is the output of `postfach status --json`.
type status struct {
	Accounts []struct {
		Name     string `json:"name"`
		Kind     string `json:"kind"`
		Messages int    `json:"messages"`
		LastSync string `json:"last_sync"`
		Error    string `json:"error"`
		Queued   int    `json:"queued"`
		// Outbox and OutboxFailed count the outgoing messages waiting
		// and failed (postfach queue lists them).
		Outbox       int `json:"outbox"`
		OutboxFailed int `json:"outbox_failed"`
		Folders      []struct {
			Name     string `json:"name"`
			Messages int    `json:"messages"`
			LastSync string `json:"last_sync"`
			Error    string `json:"error"`
		} `json:"folders"`
	} `json:"accounts"`
	// Agent is there when a postfach run answers on the store (see
	// runStatus for its keys).
	Agent json.RawMessage `json:"agent"`
	// The backup schedule and the last scheduled backup (archive_e2e_test.go).
	Backup         json.RawMessage `json:"backup"`
	BackupSchedule string          `json:"backup_schedule"`
	NextBackup     string          `json:"next_backup"`
}

// getStatus runs `status --json`, checks the shape of the JSON (every
// documented key present with its JSON type) and decodes it.
func getStatus(t testing.TB, config string) status {
	t.Helper()
	r := mustRun(t, nil, "--config", config, "status", "--json")
	checkStatusShape(t, r.stdout)
	var st status
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

func checkStatusShape(t testing.TB, out string) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --json is not one JSON object: %v\n%s", err, out)
	}
	accts, ok := doc["accounts"].([]any)
	if !ok {
		t.Fatalf("status --json: \"accounts\" is not an array:\n%s", out)
	}
	want := func(where string, obj map[string]any, key string, kind string) {
		v, ok := obj[key]
		if !ok {
			t.Errorf("status --json: %s has no %q", where, key)
			return
		}
		switch kind {
		case "string":
			_, ok = v.(string)
		case "number":
			_, ok = v.(float64)
		case "array":
			_, ok = v.([]any)
		}
		if !ok {
			t.Errorf("status --json: %s.%s is %T, want a JSON %s", where, key, v, kind)
		}
	}
	for i, a := range accts {
		acct, ok := a.(map[string]any)
		if !ok {
			t.Fatalf("status --json: accounts[%d] is not an object", i)
		}
		where := fmt.Sprintf("accounts[%d]", i)
		want(where, acct, "name", "string")
		want(where, acct, "error", "string")
		want(where, acct, "queued", "number")
		want(where, acct, "outbox", "number")
		want(where, acct, "outbox_failed", "number")
		want(where, acct, "folders", "array")
		folders, _ := acct["folders"].([]any)
		for j, f := range folders {
			folder, ok := f.(map[string]any)
			if !ok {
				t.Fatalf("status --json: %s.folders[%d] is not an object", where, j)
			}
			fw := fmt.Sprintf("%s.folders[%d]", where, j)
			want(fw, folder, "name", "string")
			want(fw, folder, "messages", "number")
			want(fw, folder, "last_sync", "string")
			want(fw, folder, "error", "string")
		}
	}
}

// syncResult is the "result" event of `postfach sync --json`.
type syncResult struct {
	Event    string  `json:"event"`
	Account  string  `json:"account"`
	Error    string  `json:"error"`
	New      int     `json:"new"`
	Bytes    int64   `json:"bytes"`
	Flags    int     `json:"flags"`
	Expunged int     `json:"expunged"`
	Rebuilt  int     `json:"rebuilt"`
	Folders  int     `json:"folders"`
	Seconds  float64 `json:"seconds"`
}

// syncJSON runs `sync --json`, which must succeed, and returns the result
// event of the account.
func syncJSON(t testing.TB, config, acct string) syncResult {
	t.Helper()
	r := mustRun(t, nil, "--config", config, "sync", "--json")
	var found []syncResult
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev syncResult
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("sync --json: line %q is not JSON: %v", line, err)
		}
		if ev.Event == "result" && ev.Account == acct {
			found = append(found, ev)
		}
	}
	if len(found) != 1 {
		t.Fatalf("sync --json: %d result events for %q, want 1:\n%s", len(found), acct, r.stdout)
	}
	return found[0]
}

// serverFolders fetches every folder of the default user from d.
func serverFolders(t testing.TB, d *testenv.Dovecot) map[string][]mirrortest.ServerMessage {
	t.Helper()
	c, err := d.Dial(testenv.DefaultUser.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server, err := mirrortest.ServerFolders(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	return server
}

func countMessages(server map[string][]mirrortest.ServerMessage) int {
	n := 0
	for _, msgs := range server {
		n += len(msgs)
	}
	return n
}

// compare checks the store of a finished run against the server and
// returns the server's folders. It opens the index itself, so no postfach
// may be running.
func compare(t testing.TB, d *testenv.Dovecot, store, acct string) map[string][]mirrortest.ServerMessage {
	t.Helper()
	server := serverFolders(t, d)
	st, err := index.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	diffs := mirrortest.Compare(context.Background(), server, store, acct, st)
	for i, diff := range diffs {
		if i == 30 {
			t.Errorf("... and %d more differences", len(diffs)-30)
			break
		}
		t.Error(diff)
	}
	if len(diffs) > 0 {
		t.FailNow()
	}
	return server
}

// fileCounts counts the message files (in cur/ and new/) and the files in
// tmp/ below dir.
func fileCounts(t testing.TB, dir string) (msgs, tmp int) {
	t.Helper()
	msgs, tmpFiles := scanFiles(t, dir)
	return msgs, len(tmpFiles)
}

// scanFiles counts the message files (in cur/ and new/) below dir and
// returns the paths of the files in tmp/.
func scanFiles(t testing.TB, dir string) (msgs int, tmp map[string]bool) {
	t.Helper()
	tmp = map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk, or no store yet
			}
			return err
		}
		if e.IsDir() {
			if e.Name() == ".postfach" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Base(filepath.Dir(path)) {
		case "cur", "new":
			msgs++
		case "tmp":
			tmp[path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs, tmp
}

// checkOneLineError checks the stderr of a failed run: exactly one line,
// "postfach: ..." holding every one of want (case-insensitive), and nothing
// of a Go crash.
func checkOneLineError(t testing.TB, r result, want ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("exit status 0, want non-zero\n%s", r)
	}
	for _, bad := range []string{"goroutine", "panic", "runtime.", ".go:", "DATA RACE"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("stderr holds %q, a crash or stack trace:\n%s", bad, r.stderr)
		}
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("stderr is %d lines, want exactly one:\n%s", len(lines), r.stderr)
	}
	line := lines[0]
	if !strings.HasPrefix(line, "postfach: ") {
		t.Errorf("stderr %q does not start with \"postfach: \"", line)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
			t.Errorf("stderr %q does not mention %q", line, w)
		}
	}
}

// killed reports whether the process of a waited-for command died of a
// signal.
func killed(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}
