package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// noRawControl fails the test when out holds a control byte other than
// newline and tab: a terminal would act on it.
func noRawControl(t testing.TB, what, out string) {
	t.Helper()
	for i := 0; i < len(out); i++ {
		if c := out[i]; c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			t.Errorf("%s holds the raw control byte %#x at %d: %q", what, c, i, out)
			return
		}
	}
	if strings.Contains(out, "\u009b") || strings.Contains(out, "\u202e") {
		t.Errorf("%s holds a raw C1 or bidi control: %q", what, out)
	}
}

// TestTerminalEscapes: a Subject and a From whose RFC 2047 encoding holds
// ESC sequences (clear screen, set the window title), a C1 CSI and a
// right-to-left override reach search's output as visible escapes, never
// raw; a failing password_cmd's stderr (with ESC in it) is neither stored
// nor shown by status, and reaches the run's terminal escaped.
func TestTerminalEscapes(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	raw := "From: =?utf-8?q?Mallory_=1B]0;pwned=07?= <m@example.org>\r\n" +
		"To: you@example.org\r\n" +
		"Subject: =?utf-8?b?" + b64("invoice \x1b[2J\x1b[1;1H\u009b31m\u202etxt.exe") + "?=\r\n" +
		"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n" +
		"Message-ID: <esc@example.org>\r\n\r\nplease pay the invoice\r\n"
	date := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	d.Seed(t, testenv.DefaultUser.Name, []corpus.Message{
		{Folder: "INBOX", Date: date, MessageID: "esc@example.org", Raw: []byte(raw)},
		// A folder name that would turn the rest of the line around.
		{Folder: "Bills\u202egpj-exe", Date: date, MessageID: "esc2@example.org", Raw: []byte(strings.Replace(raw, "<esc@", "<esc2@", 1))},
	})

	dir := t.TempDir()
	cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"), imapAccount(d, "work"))
	mustRun(t, nil, "--config", cfg, "sync")
	r := mustRun(t, nil, "--config", cfg, "search", "invoice")
	noRawControl(t, "search", r.stdout)
	for _, want := range []string{`invoice \x1b[2J\x1b[1;1H\u009b31m\u202etxt.exe`, `Mallory \x1b]0;pwned\x07`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("search output %q does not show %q", r.stdout, want)
		}
	}

	st := mustRun(t, nil, "--config", cfg, "status")
	noRawControl(t, "status", st.stdout)
	if !strings.Contains(st.stdout, `Bills\u202egpj-exe`) {
		t.Errorf("status %q does not show the folder name escaped", st.stdout)
	}

	// A failing password_cmd, its stderr full of escapes.
	body, _ := os.ReadFile(cfg)
	body = bytes.Replace(body, []byte("password = "), []byte(`password_cmd = "printf 'gpg: \\033[2Jsecret-ish\\n' >&2; exit 3"`+"\n#"), 1)
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, "--config", cfg, "sync")
	noRawControl(t, "sync stderr", r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, `password_cmd failed (exit status 3)`) ||
		!strings.Contains(r.stderr, `password_cmd printed: gpg: \x1b[2Jsecret-ish`) {
		t.Errorf("sync with a failing password_cmd: %s", r)
	}
	st = mustRun(t, nil, "--config", cfg, "status")
	noRawControl(t, "status", st.stdout)
	if strings.Contains(st.stdout, "secret-ish") || !strings.Contains(st.stdout, "password_cmd failed (exit status 3)") {
		t.Errorf("status shows %q; want the generic failure without the command's stderr", st.stdout)
	}
	if js := getStatus(t, cfg); strings.Contains(js.Accounts[0].Error, "secret-ish") {
		t.Errorf("status --json error %q holds the command's stderr", js.Accounts[0].Error)
	}
}

func b64(s string) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b strings.Builder
	for i := 0; i < len(s); i += 3 {
		var n uint32
		k := min(3, len(s)-i)
		for j := 0; j < 3; j++ {
			n <<= 8
			if j < k {
				n |= uint32(s[i+j])
			}
		}
		for j := 0; j < 4; j++ {
			if j <= k {
				b.WriteByte(enc[n>>(18-6*j)&63])
			} else {
				b.WriteByte('=')
			}
		}
	}
	return b.String()
}

// TestConfigFilePermissions: a config holding a password that others can
// read loads with one warning line on every command; owned by another
// user it is refused (as root, the test gives it to nobody).
func TestConfigFilePermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"),
		account{name: "work", host: "127.0.0.1", port: 143, tls: "none", user: "me", password: "x"})
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "postfach: " + cfg + ": warning: holds a password, and group or others can read it (mode 0644): chmod 600 " + cfg + "\n"
	r := run(t, nil, "--config", cfg, "status")
	if r.code != 0 || r.stderr != want {
		t.Errorf("status with a world-readable password: %s\nwant exit 0 and stderr %q", r, want)
	}
	r = run(t, nil, "--config", cfg, "config", "check")
	if r.code != 0 || strings.Count(r.stderr, "holds a password") != 1 {
		t.Errorf("config check with a world-readable password: %s\nwant exit 0 and the warning once", r)
	}
	if err := os.Chmod(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "--config", cfg, "status")

	if os.Geteuid() != 0 {
		return // only root can give a file away; configs' unit test covers the rest
	}
	if err := os.Chown(cfg, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, "--config", cfg, "status")
	wantErr := cfg + ": holds a password but is owned by uid 65534, not by you (uid 0): refused; own it and chmod 600 it\n"
	if r.code != 2 || r.stderr != wantErr {
		t.Errorf("status with another user's config: %s\nwant exit 2 and stderr %q", r, wantErr)
	}
}

// TestConfigCheckReports: config check names, one line each with file,
// line and key, a missing and an invalid ca_file, an unset password_env, a
// POP3 folder outside the account and a [serve] endpoint off loopback.
func TestConfigCheckReports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("junk\n"), 0o600)
	cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"),
		account{name: "a", host: "127.0.0.1", port: 143, tls: "none", user: "me", pwEnv: "POSTFACH_TEST_NOT_SET", caFile: filepath.Join(dir, "missing.pem")},
		account{name: "b", host: "127.0.0.1", port: 143, tls: "none", user: "me", password: "x", caFile: bad})
	r := run(t, nil, "--config", cfg, "config", "check")
	want := cfg + ":11: accounts[1].password_env: environment variable POSTFACH_TEST_NOT_SET is not set here\n" +
		cfg + ":12: accounts[1].ca_file: " + filepath.Join(dir, "missing.pem") + ": no such file or directory\n" +
		cfg + ":22: accounts[2].ca_file: " + bad + " holds no PEM certificate\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("config check: %s\nwant exit 2 and stderr\n%s", r, want)
	}

	body := "[store]\npath = \"store\"\n\n[serve]\nimap = \"0.0.0.0:1143\"\n\n" +
		"[[accounts]]\nname = \"p\"\nkind = \"pop3\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword = \"x\"\nfolder = \"../../x\"\n"
	os.WriteFile(cfg, []byte(body), 0o600)
	r = run(t, nil, "--config", cfg, "config", "check")
	want = cfg + `:5: serve.imap: "0.0.0.0:1143" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1143")` + "\n" +
		cfg + `:14: accounts[1].folder: "../../x" has a ".." level: a folder is below the account's folder, like "INBOX" or "Lists/pop"` + "\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("config check: %s\nwant exit 2 and stderr\n%s", r, want)
	}
}

// TestSignalExitStatus: a run stopped by SIGINT exits 130, by SIGTERM
// 143 (also with --json), as a shell reports a death by those signals;
// one line on stderr.
// (The run waits in a password_cmd: no server needed.)
func TestSignalExitStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		args []string
	}{{syscall.SIGINT, 130, []string{"sync"}}, {syscall.SIGTERM, 143, []string{"sync"}}, {syscall.SIGTERM, 143, []string{"sync", "--json"}}} {
		dir := t.TempDir()
		marker := filepath.Join(dir, "started")
		cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"),
			account{name: "work", host: "127.0.0.1", port: 143, tls: "none", user: "me", password: "x"})
		body, _ := os.ReadFile(cfg)
		body = bytes.Replace(body, []byte("password = "), []byte(`password_cmd = "touch `+marker+`; sleep 60"`+"\n#"), 1)
		os.WriteFile(cfg, body, 0o600)
		cmd := exec.Command(postfachBin, append([]string{"--config", cfg}, tc.args...)...)
		cmd.Env = environ(t, nil)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the password_cmd did not start in 30 s: %s", stderr.String())
			}
		}
		cmd.Process.Signal(tc.sig)
		cmd.Wait()
		want := "postfach: interrupted; the next run resumes where this one stopped\n"
		if code := cmd.ProcessState.ExitCode(); code != tc.code || stderr.String() != want {
			t.Errorf("%v to %v: exit status %d, stderr %q; want %d and %q", tc.sig, tc.args, code, stderr.String(), tc.code, want)
		}
	}
}

// TestSystemdUnitsRunWhatExists: every ExecStart of the shipped systemd
// units runs a postfach command that exists.
func TestSystemdUnitsRunWhatExists(t *testing.T) {
	t.Parallel()
	units, _ := filepath.Glob("../../../configs/systemd/*.service")
	if len(units) == 0 {
		t.Fatal("no systemd units in configs/systemd")
	}
	for _, u := range units {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "ExecStart=")
			if !ok {
				continue
			}
			found = true
			args := strings.Fields(line)[1:]
			r := run(t, nil, append(args, "--help")...)
			if r.code != 0 || strings.Contains(r.stdout, "Available Commands") {
				t.Errorf("%s: ExecStart runs %q, which is not a postfach command: %s", u, line, r)
			}
		}
		f.Close()
		if !found {
			t.Errorf("%s: no ExecStart", u)
		}
	}
}
