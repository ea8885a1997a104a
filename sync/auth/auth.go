// PLACEHOLDER: replaced by part O at merge

// Package auth is how postfach's clients sign in (a stand-in with PLAIN
// and LOGIN only, the contract's signatures).
package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// Credentials is how a client signs in.
type Credentials struct {
	Username string
	Password func(ctx context.Context) (string, error) // nil when Token is set
	Token    func(ctx context.Context) (string, error) // OAuth2 access token (token_cmd); nil = password
}

// Mechanisms lists, best first, the SASL mechanisms c can use.
func (c Credentials) Mechanisms() []string {
	if c.Token != nil {
		return []string{"OAUTHBEARER", "XOAUTH2"}
	}
	return []string{"PLAIN", "LOGIN"}
}

// Choose returns the first of Mechanisms that offered holds
// (case-insensitive), "" if none.
func (c Credentials) Choose(offered []string) string {
	for _, m := range c.Mechanisms() {
		for _, o := range offered {
			if strings.EqualFold(m, o) {
				return m
			}
		}
	}
	return ""
}

// Client fetches the secret now and returns a SASL client for mech.
func (c Credentials) Client(ctx context.Context, mech, host string, port int) (sasl.Client, error) {
	if c.Password == nil {
		return nil, errors.New("no password")
	}
	pw, err := c.Password(ctx)
	if err != nil {
		return nil, err
	}
	switch strings.ToUpper(mech) {
	case "PLAIN":
		return sasl.NewPlainClient("", c.Username, pw), nil
	case "LOGIN":
		return sasl.NewLoginClient(c.Username, pw), nil
	}
	return nil, errors.New("unsupported mechanism " + mech)
}
