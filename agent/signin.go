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
		return "", serialized(acct.Token), nil
	}
	pass, err = acct.Secret(ctx)
	return pass, nil, err
}

// serialized runs token one call at a time: a sync dials its connections
// at once, and an oauth2 helper refreshing its token in several processes
// at once may trip over its own cache file (or a rotating refresh token).
func serialized(token func(context.Context) (string, error)) func(context.Context) (string, error) {
	turn := make(chan struct{}, 1)
	return func(ctx context.Context) (string, error) {
		select {
		case turn <- struct{}{}:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		defer func() { <-turn }()
		return token(ctx)
	}
}

// smtpCredentials is how the account's SMTP relay is signed in to
// (outbox.Relay.Auth): with the table's token_cmd (or the account's, when
// the table sets no secret source) an OAuth2 token, else the password
// (password, password_env or password_cmd), each fetched at sign-in.
func smtpCredentials(s *configs.SMTP) auth.Credentials {
	c := auth.Credentials{Username: s.Username}
	if s.TokenCmd != "" {
		c.Token = serialized(s.Token)
	} else {
		c.Password = s.Secret
	}
	return c
}
