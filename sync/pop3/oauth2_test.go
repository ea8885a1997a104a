package pop3

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/postfach/postfach/sync/auth"
)

// TestSignInXOAuth2Retry: a token too long for the AUTH line goes after
// the server's empty challenge; the server's error challenge is answered
// with an empty line (not "="); the refused token is fetched again and
// the second one signs in, in the same session.
func TestSignInXOAuth2Retry(t *testing.T) {
	stale, fresh := strings.Repeat("s", 300), strings.Repeat("f", 300)
	ir := func(tok string) string {
		return base64.StdEncoding.EncodeToString([]byte("user=bob\x01auth=Bearer " + tok + "\x01\x01"))
	}
	errChal := base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer"}`))
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: SASL PLAIN XOAUTH2
		S: .
		C: AUTH XOAUTH2
		S: +
		C: `+ir(stale)+`
		S: + `+errChal+`
		C:
		S: -ERR [AUTH] Authentication failed.
		C: AUTH XOAUTH2
		S: +
		C: `+ir(fresh)+`
		S: +OK Logged in.
	`, nil)
	calls := 0
	tok := func(context.Context) (string, error) {
		calls++
		if calls == 1 {
			return stale, nil
		}
		return fresh, nil
	}
	if err := c.SignIn(t.Context(), auth.Credentials{Username: "bob", Token: tok}, "pop.example.org", 995); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("token fetched %d times, want 2", calls)
	}
}
