// PLACEHOLDER: replaced by part O at merge
package agent

import (
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/auth"
)

// smtpCredentials is how the account's SMTP relay is signed in to
// (outbox.Relay.Auth): the password, fetched at sign-in; no AUTH when
// [accounts.smtp] (and the account) set no secret.
func smtpCredentials(s *configs.SMTP) auth.Credentials {
	if s.Password == "" && s.PasswordEnv == "" && s.PasswordCmd == "" {
		return auth.Credentials{}
	}
	return auth.Credentials{Username: s.Username, Password: s.Secret}
}
