package agent

import (
	"context"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/auth"
)

// How the agent turns an account's secret settings into the sign-in of
// its clients (the sync packages never read the configuration).

// secrets is how the account's IMAP or POP3 server is signed in to: its
// password, resolved now, or with token_cmd a token source that runs the
// command at each sign-in (and once more after a refusal).
func secrets(ctx context.Context, acct *configs.Account) (pass string, token func(context.Context) (string, error), err error) {
	if acct.TokenCmd != "" {
		return "", acct.Token, nil
	}
	pass, err = acct.Secret(ctx)
	return pass, nil, err
}

// smtpCredentials is how the account's SMTP relay is signed in to
// (outbox.Relay.Auth): with the table's token_cmd (or the account's, when
// the table sets no secret source) an OAuth2 token, else the password
// (password, password_env or password_cmd), each fetched at sign-in.
func smtpCredentials(s *configs.SMTP) auth.Credentials {
	c := auth.Credentials{Username: s.Username}
	if s.TokenCmd != "" {
		c.Token = s.Token
	} else {
		c.Password = s.Secret
	}
	return c
}
