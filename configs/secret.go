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

// secretTimeout bounds a password_cmd or token_cmd run; a variable for the tests.
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
		return runCmd(ctx, who, "password_cmd", cmd)
	}
	return "", fmt.Errorf("%s: no password, password_env or password_cmd", who)
}

// Token returns an OAuth2 access token for the account's server: the
// first line of what `sh -c TokenCmd` prints on stdout, without its line
// ending. It is called at each sign-in, and once more when the server
// refuses the token (sync/auth), so the command should print a token
// valid now: OAuth2 helpers (mutt_oauth2.py, oama, ...) cache the token
// and refresh it when it expires. Errors are one line naming the account
// and token_cmd, as Secret's: the command failed (a *CmdError), printed
// nothing, ran longer than 30 s, or the account has no token_cmd.
func (a *Account) Token(ctx context.Context) (string, error) {
	return token(ctx, fmt.Sprintf("account %q", a.Name), a.TokenCmd)
}

// Token is Account.Token for the SMTP server; the table's token_cmd is
// the account's when it sets no secret source itself.
func (s *SMTP) Token(ctx context.Context) (string, error) {
	return token(ctx, fmt.Sprintf("account %q smtp", s.account), s.TokenCmd)
}

func token(ctx context.Context, who, cmd string) (string, error) {
	if cmd == "" {
		return "", fmt.Errorf("%s: no token_cmd", who)
	}
	return runCmd(ctx, who, "token_cmd", cmd)
}

// runCmd runs the command of setting key (password_cmd, token_cmd) and
// returns the first line it printed.
func runCmd(parent context.Context, who, key, command string) (string, error) {
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
		return "", fmt.Errorf("%s: %s: %w", who, key, parent.Err())
	case ctx.Err() != nil:
		return "", fmt.Errorf("%s: %s timed out after %v", who, key, secretTimeout)
	case err != nil:
		return "", &CmdError{Who: who, Key: key, Err: err, Stderr: strings.TrimSpace(firstLine(stderr.Bytes()))}
	}
	pw := firstLine(stdout.Bytes())
	if pw == "" {
		what := "password"
		if key == "token_cmd" {
			what = "token"
		}
		return "", fmt.Errorf("%s: %s printed no %s", who, key, what)
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

// CmdError is a password_cmd or token_cmd that failed. Its text says which
// account's command failed and how (exit status), nothing it printed: that
// may hold anything, and the text is stored and shown later. Stderr is the
// first line the command printed there, raw, for the terminal of this run
// only.
type CmdError struct {
	Who    string // account "name" (smtp)
	Key    string // "password_cmd" or "token_cmd"; "" reads as password_cmd
	Err    error  // from exec: "exit status 3", "signal: killed"
	Stderr string
}

// Setting is the command's setting: "password_cmd" or "token_cmd".
func (e *CmdError) Setting() string {
	if e.Key == "" {
		return "password_cmd"
	}
	return e.Key
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("%s: %s failed (%v)", e.Who, e.Setting(), e.Err)
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
