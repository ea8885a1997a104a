package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/pop3"
)

// TestParkedMessage: a refused password from password_env says that a
// reload does not help (the agent's environment does not change); other
// permanent failures keep the general line.
func TestParkedMessage(t *testing.T) {
	refusedIMAP := &imapconn.ConnError{Addr: "h:143", Op: "login as me", Err: errors.New("authentication failed")}
	refusedPOP3 := &pop3.ConnError{Addr: "h:110", Op: "login as me", Err: errors.New("authentication failed")}
	cert := &imapconn.ConnError{Addr: "h:993", Op: "connect", Err: errors.New("TLS certificate not trusted")}
	env := &configs.Account{Name: "a", PasswordEnv: "WORK_PASS"}
	cmd := &configs.Account{Name: "a", PasswordCmd: "pass show work"}
	for _, tc := range []struct {
		acct *configs.Account
		err  error
		env  bool
	}{
		{env, refusedIMAP, true},
		{env, refusedPOP3, true},
		{env, cert, false},
		{cmd, refusedIMAP, false},
	} {
		msg := parkedMessage(tc.acct, tc.err)
		if got := strings.Contains(msg, "$WORK_PASS") && strings.Contains(msg, "restart"); got != tc.env {
			t.Errorf("%v with %+v: %q", tc.err, tc.acct, msg)
		}
		if !tc.env && !strings.Contains(msg, "until its config changes") {
			t.Errorf("%v with %+v: %q", tc.err, tc.acct, msg)
		}
	}
}
