package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/pop3"
)

// tokenCmd writes a token_cmd script printing tokens[0] on its first run,
// tokens[1] on its second, and so on (the last one again after that), or
// failing with "invalid_grant" on stderr when tokens is empty. It returns
// the command and a function counting its runs.
func tokenCmd(t *testing.T, dir string, tokens ...string) (string, func() int) {
	t.Helper()
	count := filepath.Join(dir, "token-runs")
	list := filepath.Join(dir, "tokens")
	content := ""
	if len(tokens) > 0 {
		content = strings.Join(tokens, "\n") + "\n"
	}
	if err := os.WriteFile(list, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`n=$(( $(cat %[1]q 2>/dev/null || echo 0) + 1 )); echo $n > %[1]q
[ -s %[2]q ] || { echo invalid_grant >&2; exit 1; }
last=$(wc -l < %[2]q); [ $n -le $last ] || n=$last
sed -n "${n}p" %[2]q
`, count, list)
	path := filepath.Join(dir, "token.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return "sh " + path, func() int {
		b, _ := os.ReadFile(count)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
}

// oauthConfig writes a config with one IMAP account "work" and one POP3
// account "pop" (keep = true), both signing in with cmd.
func oauthConfig(t *testing.T, dir, store string, d *testenv.Dovecot, cmd string) string {
	t.Helper()
	doc := fmt.Sprintf(`[store]
path = %[1]q

[[accounts]]
name = "work"
kind = "imap"
host = %[2]q
port = %[3]d
tls = "none"
username = %[5]q
token_cmd = %[6]q

[[accounts]]
name = "pop"
kind = "pop3"
host = %[2]q
port = %[4]d
tls = "none"
username = %[5]q
token_cmd = %[6]q
`, store, d.Host, d.IMAPPort, d.POP3Port, testenv.DefaultUser.Name, cmd)
	path := filepath.Join(dir, "postfach.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOAuth2Sync: IMAP and POP3 accounts with token_cmd sync from a
// Dovecot that checks OAuth2 tokens (OAUTHBEARER, and XOAUTH2 where it is
// the only mechanism offered): the token_cmd prints a stale token first,
// the refused sign-in runs it again, and the sync succeeds with every
// message; wrong tokens, and a failing token_cmd, are one clear error per
// account.
func TestOAuth2Sync(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mech string
		opts []testenv.Option
	}{
		{"OAUTHBEARER", []testenv.Option{testenv.WithOAuth2()}},
		{"XOAUTH2", []testenv.Option{testenv.WithOAuth2(), testenv.WithConfig("auth_mechanisms = plain login xoauth2")}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			t.Parallel()
			d := testenv.StartDovecot(t, tc.opts...)
			user := testenv.DefaultUser.Name
			d.Seed(t, user, corpus.Generate(11, 12, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
			good, err := d.IssueToken(user)
			if err != nil {
				t.Fatal(err)
			}

			// A stale token, then a good one: each account signs in at
			// its second try (the IMAP sync may connect more than once).
			dir := t.TempDir()
			store := filepath.Join(dir, "store")
			cmd, runs := tokenCmd(t, dir, "tok-stale", good)
			cfg := oauthConfig(t, dir, store, d, cmd)
			// (Only its first run prints the stale token: the sync
			// succeeding shows it was run again after the refusal.)
			mustRun(t, nil, "--config", cfg, "sync", "work")
			if runs() < 2 {
				t.Errorf("token_cmd ran %d times for the IMAP sync, want at least 2", runs())
			}
			compare(t, d, store, "work")
			os.Remove(filepath.Join(dir, "token-runs"))
			mustRun(t, nil, "--config", cfg, "sync", "pop")
			if runs() != 2 {
				t.Errorf("token_cmd ran %d times for the POP3 sync, want 2", runs())
			}
			checkPOP3Copies(t, d, filepath.Join(store, "pop", "INBOX"))
			if !slices.Contains(d.Introspected(), "tok-stale") {
				t.Errorf("Dovecot never checked the stale token: %v", d.Introspected())
			}

			// Wrong tokens: refused twice, one line per account saying so.
			dir = t.TempDir()
			cmd, runs = tokenCmd(t, dir, "tok-wrong", "tok-wrong-too")
			cfg = oauthConfig(t, dir, filepath.Join(dir, "store"), d, cmd)
			for _, acct := range []string{"work", "pop"} {
				os.Remove(filepath.Join(dir, "token-runs"))
				r := run(t, nil, "--config", cfg, "sync", acct)
				checkOneLineError(t, r, "postfach: "+acct+": ", "sign-in as test failed", tc.mech+": the OAuth2 token from token_cmd was refused, also when fetched again")
				if runs() != 2 {
					t.Errorf("%s: token_cmd ran %d times, want 2", acct, runs())
				}
			}

			// A failing token_cmd: its error, and what it printed on
			// stderr, on the terminal only.
			dir = t.TempDir()
			cmd, _ = tokenCmd(t, dir)
			cfg = oauthConfig(t, dir, filepath.Join(dir, "store"), d, cmd)
			r := run(t, nil, "--config", cfg, "sync", "pop")
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.code == 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "postfach: pop: ") ||
				!strings.HasSuffix(lines[0], `: account "pop": token_cmd failed (exit status 1)`) ||
				lines[1] != `postfach: account "pop": token_cmd printed: invalid_grant` {
				t.Errorf("failing token_cmd: %s\nwant its failure, and then what it printed on stderr", r)
			}
		})
	}
}

// checkPOP3Copies checks that the folder dir holds exactly the messages
// the server's RETR sends, byte for byte (with LF line ends, as the store
// keeps them).
func checkPOP3Copies(t *testing.T, d *testenv.Dovecot, dir string) {
	t.Helper()
	c, err := pop3.Dial(t.Context(), d.POP3Addr(), &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pass, _ := d.Password(testenv.DefaultUser.Name)
	if err := c.Login(t.Context(), testenv.DefaultUser.Name, pass); err != nil {
		t.Fatal(err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	nums := make([]int, len(list))
	for i, m := range list {
		nums[i] = m.Num
	}
	if err := c.RetrMany(t.Context(), nums, func(_ int, r io.Reader) error {
		b, err := io.ReadAll(r)
		want = append(want, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))) // stored with LF line ends
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, sub := range []string{"cur", "new"} {
		files, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, sub, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b)
		}
	}
	slices.SortFunc(want, bytes.Compare)
	slices.SortFunc(got, bytes.Compare)
	if len(want) == 0 || !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("%s holds %d messages, the server %d; or their bytes differ", dir, len(got), len(want))
	}
}
