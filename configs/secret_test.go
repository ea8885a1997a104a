package configs

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSecret(t *testing.T) {
	t.Setenv("POSTFACH_TEST_PW", "from env")
	t.Setenv("POSTFACH_TEST_EMPTY", "")
	tests := []struct {
		name    string
		a       Account
		want    string
		wantErr string // substring; "" = no error
	}{
		{"password", Account{Password: "pw"}, "pw", ""},
		{"env", Account{PasswordEnv: "POSTFACH_TEST_PW"}, "from env", ""},
		{"env unset", Account{PasswordEnv: "POSTFACH_TEST_UNSET"}, "", `account "a": password_env: environment variable POSTFACH_TEST_UNSET is not set`},
		{"env empty", Account{PasswordEnv: "POSTFACH_TEST_EMPTY"}, "", `account "a": password_env: environment variable POSTFACH_TEST_EMPTY is empty`},
		{"cmd", Account{PasswordCmd: `printf 'pa ss\r\nsecond line\n'`}, "pa ss", ""},
		{"cmd no newline", Account{PasswordCmd: `printf 'x y'`}, "x y", ""},
		{"cmd fails", Account{PasswordCmd: `printf 'leaked'; echo 'gpg: decryption failed' >&2; echo more >&2; exit 3`}, "",
			`account "a": password_cmd failed (exit status 3)`},
		{"cmd prints nothing", Account{PasswordCmd: `true`}, "", `account "a": password_cmd printed no password`},
		{"none", Account{}, "", `account "a": no password, password_env or password_cmd`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.Name = "a"
			got, err := tt.a.Secret(t.Context())
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("Secret = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Secret = %q, %v; want error %q", got, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "leaked") {
				t.Errorf("error %q holds the command's stdout", err)
			}
		})
	}
}

func TestSecretTimeout(t *testing.T) {
	old := secretTimeout
	secretTimeout = 200 * time.Millisecond
	t.Cleanup(func() { secretTimeout = old })
	a := Account{Name: "a", PasswordCmd: "sleep 10; echo pw"}
	start := time.Now()
	_, err := a.Secret(t.Context())
	if err == nil || err.Error() != `account "a": password_cmd timed out after 200ms` {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestSMTPSecret(t *testing.T) {
	s := SMTP{PasswordCmd: "exit 1", account: "work"}
	if _, err := s.Secret(t.Context()); err == nil || err.Error() != `account "work" smtp: password_cmd failed (exit status 1)` {
		t.Errorf("err = %v", err)
	}
}

// What a failing password_cmd prints on stderr (it may echo a secret, or
// anything) is not in the error's text, which is stored in the index and
// shown by status; the CmdError keeps its first line for the run's
// terminal.
func TestSecretCmdStderrKeptApart(t *testing.T) {
	a := Account{Name: "a", PasswordCmd: `echo 'pass: hunter2 is wrong' >&2; exit 2`}
	_, err := a.Secret(t.Context())
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v; want an error without the command's stderr", err)
	}
	var ce *CmdError
	if !errors.As(err, &ce) || ce.Stderr != "pass: hunter2 is wrong" {
		t.Fatalf("err = %#v; want a *CmdError holding the stderr line", err)
	}
}

// The output kept of a password_cmd is capped at 64 KiB, however the
// command writes it.
func TestSecretCmdOutputCapped(t *testing.T) {
	var out, errOut capped
	c := exec.Command("sh", "-c", `head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2`)
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	if len(out.Bytes()) != maxCmdOutput || len(errOut.Bytes()) != maxCmdOutput {
		t.Errorf("kept %d bytes of stdout and %d of stderr, want %d each", len(out.Bytes()), len(errOut.Bytes()), maxCmdOutput)
	}
	a := Account{Name: "a", PasswordCmd: `printf 'pw\n'; head -c 1000000 /dev/zero | tr '\0' x`}
	if pw, err := a.Secret(t.Context()); err != nil || pw != "pw" {
		t.Errorf("Secret = %q, %v; want pw", pw, err)
	}
}
