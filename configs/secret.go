package configs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// secretTimeout bounds a password_cmd run; a variable for the tests.
var secretTimeout = 30 * time.Second

// Secret returns the account's password: Password itself, the value of the
// environment variable PasswordEnv (an error if unset or empty), or the first
// line of what `sh -c PasswordCmd` prints on stdout, without its line ending
// (an error if the command fails, prints nothing or runs longer than 30 s).
// Errors name the account and, for a failed command, hold the first line of
// its stderr; they never hold the secret.
func (a *Account) Secret(ctx context.Context) (string, error) {
	return secret(ctx, fmt.Sprintf("account %q", a.Name), a.Password, a.PasswordEnv, a.PasswordCmd)
}

// Secret is Account.Secret for the SMTP server; the table's secret source is
// the account's when it sets none itself.
func (s *SMTP) Secret(ctx context.Context) (string, error) {
	return secret(ctx, fmt.Sprintf("account %q smtp", s.account), s.Password, s.PasswordEnv, s.PasswordCmd)
}

func secret(ctx context.Context, who, password, env, cmd string) (string, error) {
	switch {
	case password != "":
		return password, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("%s: password_env: environment variable %s is not set", who, env)
		}
		if v == "" {
			return "", fmt.Errorf("%s: password_env: environment variable %s is empty", who, env)
		}
		return v, nil
	case cmd != "":
		return runPasswordCmd(ctx, who, cmd)
	}
	return "", fmt.Errorf("%s: no password, password_env or password_cmd", who)
}

func runPasswordCmd(parent context.Context, who, command string) (string, error) {
	ctx, cancel := context.WithTimeout(parent, secretTimeout)
	defer cancel()
	var stdout, stderr capped
	c := exec.CommandContext(ctx, "sh", "-c", command)
	c.Stdout = &stdout
	c.Stderr = &stderr
	// On timeout sh is killed; its children may live on holding the pipes,
	// so do not wait long for them. (No process group of its own: gpg's
	// pinentry may need the terminal.)
	c.WaitDelay = time.Second
	err := c.Run()
	switch {
	case parent.Err() != nil:
		return "", fmt.Errorf("%s: password_cmd: %w", who, parent.Err())
	case ctx.Err() != nil:
		return "", fmt.Errorf("%s: password_cmd timed out after %v", who, secretTimeout)
	case err != nil:
		msg := fmt.Sprintf("%s: password_cmd: %v", who, err)
		if line := strings.TrimSpace(firstLine(stderr.Bytes())); line != "" {
			msg += ": " + line
		}
		return "", errors.New(msg)
	}
	pw := firstLine(stdout.Bytes())
	if pw == "" {
		return "", fmt.Errorf("%s: password_cmd printed no password", who)
	}
	return pw, nil
}

// firstLine returns b up to its first line ending, without it.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(bytes.TrimSuffix(b, []byte("\r")))
}

// capped is a bytes.Buffer that keeps the first 64 KiB written to it and
// silently drops the rest.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := 64<<10 - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
