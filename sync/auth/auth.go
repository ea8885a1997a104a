// Package auth is how postfach's clients sign in to a server: with a
// password (SASL PLAIN or LOGIN, or the protocol's own login command) or
// with an OAuth2 access token (SASL OAUTHBEARER, RFC 7628, or Google's and
// Microsoft's XOAUTH2). The IMAP (sync/imapconn), POP3 (sync/pop3) and
// SMTP (sync/outbox) clients all build their SASL exchanges here, so a
// mechanism is chosen, a secret fetched and a refused token retried the
// same way for every protocol.
//
// It keeps no state and writes nothing: a Credentials holds functions that
// fetch the secret when a client signs in (the agent makes them from the
// account's password, password_env, password_cmd or token_cmd; this
// package never reads the configuration). Secrets never appear in its
// errors.
//
// # Tokens
//
// An access token is fetched anew for every sign-in (token_cmd is run
// then; OAuth2 helpers cache and refresh tokens themselves). A server
// that refuses a token gets a second one, fetched again, before the
// refusal is final (SignIn): a token may expire between its fetching and
// its use, or the helper's cache may hold a revoked one. When a server
// refuses a token, RFC 7628 (and XOAUTH2 likewise) has it send a JSON
// error as a challenge, to which the client answers with a dummy
// response before the server's final refusal; the clients of this
// package do that, keeping the protocol in step, so the connection can be
// used for the second attempt, and keep the error's status for the
// message (RefusedError).
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
)

// The mechanisms' names.
const (
	OAuthBearer = sasl.OAuthBearer // "OAUTHBEARER", RFC 7628
	XOAuth2     = "XOAUTH2"        // Google's and Microsoft's
	Plain       = sasl.Plain       // "PLAIN"
	Login       = sasl.Login       // "LOGIN"
)

// Credentials is how a client signs in.
type Credentials struct {
	Username string
	Password func(ctx context.Context) (string, error) // nil when Token is set
	Token    func(ctx context.Context) (string, error) // OAuth2 access token (token_cmd); nil = password
}

// Mechanisms lists, best first, the SASL mechanisms c can use: with Token
// "OAUTHBEARER", "XOAUTH2"; with Password "PLAIN", "LOGIN"; none without
// either.
func (c Credentials) Mechanisms() []string {
	switch {
	case c.Token != nil:
		return []string{OAuthBearer, XOAuth2}
	case c.Password != nil:
		return []string{Plain, Login}
	}
	return nil
}

// Choose returns the first of Mechanisms that offered holds
// (case-insensitive), "" if none.
func (c Credentials) Choose(offered []string) string {
	for _, m := range c.Mechanisms() {
		if slices.ContainsFunc(offered, func(o string) bool { return strings.EqualFold(o, m) }) {
			return m
		}
	}
	return ""
}

// Client fetches the secret now and returns a SASL client for mech (host
// and port go into OAUTHBEARER's message). A mechanism c cannot use, or a
// secret that cannot be fetched or is empty, is an error; the error of the
// fetch is returned as it is (it names the account).
func (c Credentials) Client(ctx context.Context, mech, host string, port int) (sasl.Client, error) {
	mech = strings.ToUpper(mech)
	switch mech {
	case OAuthBearer, XOAuth2:
		if c.Token == nil {
			return nil, fmt.Errorf("auth: %s needs an OAuth2 token (token_cmd), and %s has a password", mech, c.Username)
		}
		tok, err := c.Token(ctx)
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, errors.New("auth: the OAuth2 token is empty")
		}
		if strings.ContainsAny(tok, "\x00\x01\r\n") {
			return nil, errors.New("auth: the OAuth2 token holds control characters")
		}
		if strings.ContainsAny(c.Username, "\x00\x01\r\n") {
			return nil, errors.New("auth: the username holds control characters")
		}
		if mech == OAuthBearer {
			ir := oauthBearerResponse(c.Username, tok, host, port)
			return &tokenClient{start: func() (string, []byte, error) { return OAuthBearer, ir, nil }, dummy: []byte{0x01}}, nil
		}
		ir := []byte("user=" + c.Username + "\x01auth=Bearer " + tok + "\x01\x01")
		return &tokenClient{start: func() (string, []byte, error) { return XOAuth2, ir, nil }, dummy: []byte{}}, nil
	case Plain, Login:
		if c.Password == nil {
			return nil, fmt.Errorf("auth: %s needs a password, and %s has an OAuth2 token (token_cmd)", mech, c.Username)
		}
		pw, err := c.Password(ctx)
		if err != nil {
			return nil, err
		}
		if mech == Plain {
			return sasl.NewPlainClient("", c.Username, pw), nil
		}
		return sasl.NewLoginClient(c.Username, pw), nil
	}
	return nil, fmt.Errorf("auth: unknown SASL mechanism %q", mech)
}

// oauthBearerResponse is OAUTHBEARER's initial client response (RFC 7628
// section 3.1): a GS2 header naming the user as authzid, a saslname in
// which "=" and "," are escaped as "=3D" and "=2C" (RFC 5801; go-sasl's
// client leaves them, which breaks the header of such a name), then the
// host, port and token.
func oauthBearerResponse(user, token, host string, port int) []byte {
	var b strings.Builder
	b.WriteString("n,")
	if user != "" {
		b.WriteString("a=")
		b.WriteString(strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user))
	}
	b.WriteString(",")
	if host != "" {
		b.WriteString("\x01host=" + host)
	}
	if port != 0 {
		b.WriteString("\x01port=" + strconv.Itoa(port))
	}
	b.WriteString("\x01auth=Bearer " + token + "\x01\x01")
	return []byte(b.String())
}

// tokenClient is an OAUTHBEARER or XOAUTH2 client. Its initial response
// holds the token; a challenge after it is the server's JSON error, kept
// for the message and answered with the mechanism's dummy response (RFC
// 7628 section 3.2.3: %x01; XOAUTH2: empty), after which the server
// refuses the sign-in in its protocol's words. (go-sasl's OAUTHBEARER
// client returns an error instead, which leaves IMAP and SMTP clients in
// the middle of the exchange.)
type tokenClient struct {
	start  func() (string, []byte, error)
	dummy  []byte
	status *Status
}

func (t *tokenClient) Start() (string, []byte, error) { return t.start() }

func (t *tokenClient) Next(challenge []byte) ([]byte, error) {
	if t.status != nil {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	t.status = &Status{}
	if err := json.Unmarshal(challenge, t.status); err != nil {
		t.status.Status = "unreadable error challenge"
	}
	return t.dummy, nil
}

// Status is the JSON error a server sends when it refuses a token (RFC
// 7628 section 3.2.2; XOAUTH2's is alike).
type Status struct {
	Status  string `json:"status"` // "invalid_token", "401", ...
	Schemes string `json:"schemes"`
	Scope   string `json:"scope"`
}

// ServerStatus returns the error a server sent to c before refusing its
// token; nil when c is not a token client of this package or the server
// sent none.
func ServerStatus(c sasl.Client) *Status {
	if t, ok := c.(*tokenClient); ok {
		return t.status
	}
	return nil
}
