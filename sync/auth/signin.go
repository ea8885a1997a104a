package auth

import (
	"context"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// SignIn signs in with the first of c's mechanisms that offered holds:
// it fetches the secret (Client), then runs exchange, the protocol's SASL
// exchange with that client (AUTHENTICATE, AUTH). When c has a Token and
// refused says that the server refused it, the token is fetched again and
// exchange runs once more (on the same connection: a refused SASL exchange
// leaves it usable) before the refusal is final; it is then a
// *RefusedError wrapping exchange's last error. With a Password, exchange's
// error is returned as it is.
//
// A server offering none of c's mechanisms is a *MechanismError; an error
// fetching the secret is returned as it is.
func (c Credentials) SignIn(ctx context.Context, offered []string, host string, port int,
	exchange func(sasl.Client) error, refused func(error) bool) error {
	mech := c.Choose(offered)
	if mech == "" {
		return &MechanismError{Want: c.Mechanisms(), Offered: offered}
	}
	for attempt := 1; ; attempt++ {
		cl, err := c.Client(ctx, mech, host, port)
		if err != nil {
			return err
		}
		err = exchange(cl)
		switch {
		case err == nil:
			return nil
		case c.Token == nil || !refused(err) || ctx.Err() != nil:
			return err
		case attempt == 2:
			return &RefusedError{Mech: mech, Username: c.Username, Status: ServerStatus(cl), Err: err}
		}
	}
}

// RefusedError is a token the server refused twice: once as token_cmd
// first printed it, and again as it printed it when run once more.
type RefusedError struct {
	Mech     string
	Username string
	Status   *Status // the server's JSON error to the second token; nil if it sent none
	Err      error   // the protocol's refusal (*imap.Error, *pop3.Error, *smtp.SMTPError)
}

// Summary is the error's text without Err's.
func (e *RefusedError) Summary() string {
	s := fmt.Sprintf("%s: the OAuth2 token from token_cmd was refused, also when fetched again", e.Mech)
	if e.Status != nil && e.Status.Status != "" {
		s += fmt.Sprintf(" (status %q)", printable(e.Status.Status))
	}
	return s
}

func (e *RefusedError) Error() string { return e.Summary() + ": " + e.Err.Error() }

func (e *RefusedError) Unwrap() error { return e.Err }

// MechanismError is a server that offers none of the mechanisms the
// credentials can use. It is permanent: a setting to change.
type MechanismError struct {
	Want    []string // Credentials.Mechanisms
	Offered []string // the server's
}

func (e *MechanismError) Error() string {
	offered := "none"
	if len(e.Offered) > 0 {
		offered = printable(strings.Join(e.Offered, ", "))
	}
	what := "a password"
	if len(e.Want) > 0 && e.Want[0] == OAuthBearer {
		what = "an OAuth2 token (token_cmd)"
	}
	return fmt.Sprintf("the server offers no SASL mechanism for %s: it needs %s, it offers %s", what, strings.Join(e.Want, " or "), offered)
}

// Permanent reports true: the server will not offer another mechanism
// later (see nethint.Permanent).
func (e *MechanismError) Permanent() bool { return true }

// printable keeps a server's text to one printable line.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
}
