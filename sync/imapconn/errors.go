package imapconn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/sync/auth"
	"github.com/postfach/postfach/sync/nethint"
)

// ErrConnLost marks an error after which a connection cannot be used
// again (its answer was cut, the server said BYE): errors.Is finds it.
var ErrConnLost = errors.New("connection lost")

// ConnError is a failure to connect to or log in to the server. It reads
// as one line naming the server and what failed, and says through
// Permanent whether trying again later may help (nethint.Permanent).
type ConnError struct {
	Addr string
	Op   string // "connect", "STARTTLS", "login as USER", "sign-in as USER" (OAuth2)
	Err  error

	// refusal: Err answers a command (LOGIN, STARTTLS) whose NO or BAD
	// the server will repeat as long as the configuration stays.
	refusal bool
}

func (e *ConnError) Unwrap() error { return e.Err }

func (e *ConnError) Error() string {
	return fmt.Sprintf("%s: %s failed: %s", e.Addr, e.Op, Describe(e.Err))
}

// Permanent reports whether retrying with the same settings cannot help:
// a refused login (wrong password: AUTHENTICATIONFAILED, or any NO to
// LOGIN other than UNAVAILABLE and INUSE), a refused STARTTLS, a
// certificate that does not verify, a TLS port spoken to in plain text,
// an unknown tls mode. The network down or dropped, a timeout, a BYE are
// temporary.
func (e *ConnError) Permanent() bool {
	var imapErr *imap.Error
	if errors.As(e.Err, &imapErr) {
		return e.refusal && permanentRefusal(imapErr)
	}
	return nethint.Permanent(e.Err)
}

// permanentRefusal reports whether a server's NO or BAD to LOGIN or
// STARTTLS will come again: all but a BYE and the codes that say "not
// now".
func permanentRefusal(e *imap.Error) bool {
	if e.Type == imap.StatusResponseTypeBye {
		return false
	}
	switch e.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeLimit, imap.ResponseCodeServerBug:
		return false
	}
	return true
}

// Describe turns library errors into the one clear line a user needs
// (network, DNS and TLS failures are worded by nethint, as for POP3).
func Describe(err error) string {
	var refused *auth.RefusedError
	if errors.As(err, &refused) {
		var ie *imap.Error
		if errors.As(refused.Err, &ie) {
			// Not Describe's "wrong user name or password?".
			code := ""
			if ie.Code != "" {
				code = "[" + string(ie.Code) + "] "
			}
			return fmt.Sprintf("%s: server said %s %s%s", refused.Summary(), ie.Type, code, ie.Text)
		}
		return refused.Summary() + ": " + Describe(refused.Err)
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		if imapErr.Code == imap.ResponseCodeAuthenticationFailed {
			return "authentication failed (wrong user name or password?): " + imapErr.Text
		}
		return strings.TrimSpace(fmt.Sprintf("server said %s %s", imapErr.Type, imapErr.Text))
	}
	if line, ok := nethint.Describe(err); ok {
		return line
	}
	return err.Error()
}
