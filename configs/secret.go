package configs

import (
	"bytes"
	"context"
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
// Errors name the account; they never hold the secret nor what the command
// printed on stderr (a *CmdError keeps that apart, for the terminal of the
// run: the error's text is stored in the index and shown by status).
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
		return "", &CmdError{Who: who, Err: err, Stderr: strings.TrimSpace(firstLine(stderr.Bytes()))}
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

// CmdError is a password_cmd that failed. Its text says which account's
// command failed and how (exit status), nothing it printed: that may hold
// anything, and the text is stored and shown later. Stderr is the first
// line the command printed there, raw, for the terminal of this run only.
type CmdError struct {
	Who    string // account "name" (smtp)
	Err    error  // from exec: "exit status 3", "signal: killed"
	Stderr string
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("%s: password_cmd failed (%v)", e.Who, e.Err)
}

func (e *CmdError) Unwrap() error { return e.Err }

// maxCmdOutput is how much of a password_cmd's stdout and stderr is kept.
const maxCmdOutput = 64 << 10

// capped keeps the first maxCmdOutput bytes written to it and silently
// drops the rest. It is not a bytes.Buffer: exec copies a pipe into a
// writer with io.Copy, which would use a Buffer's ReadFrom and keep
// everything.
type capped struct{ b []byte }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxCmdOutput - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (c *capped) Bytes() []byte { return c.b }
