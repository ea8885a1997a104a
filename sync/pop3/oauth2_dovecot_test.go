package pop3_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/auth"
	"github.com/postfach/postfach/sync/nethint"
	"github.com/postfach/postfach/sync/pop3"
)

// tokenSource hands out list in order (the last one again and again) and
// counts the calls.
type tokenSource struct {
	list  []string
	calls int
}

func (s *tokenSource) token(context.Context) (string, error) {
	t := s.list[min(s.calls, len(s.list)-1)]
	s.calls++
	return t, nil
}

// TestOAuth2Dovecot: Fetch with a Token signs in to Dovecot's OAuth2
// passdb with AUTH OAUTHBEARER (or XOAUTH2, where it is the only one
// offered), a stale token first fetched again, and stores the messages
// byte for byte; two wrong tokens are one clear, permanent error.
func TestOAuth2Dovecot(t *testing.T) {
	ctx := context.Background()
	user := testenv.DefaultUser
	for _, tc := range []struct {
		mech string
		opts []testenv.Option
	}{
		{"OAUTHBEARER", []testenv.Option{testenv.WithOAuth2()}},
		{"XOAUTH2", []testenv.Option{testenv.WithOAuth2(), testenv.WithConfig("auth_mechanisms = plain login xoauth2")}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			d := testenv.StartDovecot(t, tc.opts...)
			d.Seed(t, user.Name, corpus.Generate(7, 3, corpus.Options{Folders: []string{"INBOX"}}))
			want := serverMessages(t, d.POP3Addr(), user.Name, user.Password)
			good, err := d.IssueToken(user.Name)
			if err != nil {
				t.Fatal(err)
			}
			e := newFetchEnv(t, d, user)
			o := e.opts()
			o.Password = ""
			src := &tokenSource{list: []string{"tok-stale", good}}
			o.Token = src.token
			if res := e.fetch(ctx, o); res.New != len(want) {
				t.Fatalf("fetched %d new messages, want %d", res.New, len(want))
			}
			e.check(want)
			if src.calls != 2 {
				t.Errorf("stale, then good token: fetched %d times, want 2", src.calls)
			}
			if got := d.Introspected(); !slices.Contains(got, "tok-stale") || !slices.Contains(got, good) {
				t.Errorf("Dovecot checked %v", got)
			}

			src = &tokenSource{list: []string{"tok-wrong", "tok-wrong-too"}}
			o.Token = src.token
			res, err := pop3.Fetch(ctx, o)
			var ce *pop3.ConnError
			var re *auth.RefusedError
			if res != nil || !errors.As(err, &ce) || !errors.As(err, &re) || !nethint.Permanent(err) || src.calls != 2 {
				t.Fatalf("wrong tokens: %v (%T) after %d fetches; want a permanent ConnError holding a RefusedError after 2", err, err, src.calls)
			}
			wantMsg := d.POP3Addr() + ": sign-in as test failed: " + tc.mech + ": the OAuth2 token from token_cmd was refused, also when fetched again"
			if !strings.HasPrefix(err.Error(), wantMsg) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("wrong tokens: %q, want it to start with %q", err, wantMsg)
			}
			t.Log(err)
		})
	}
}

// TestOAuth2NoMechanism: a POP3 server without OAUTHBEARER or XOAUTH2 is
// a permanent error saying so, before any token is fetched.
func TestOAuth2NoMechanism(t *testing.T) {
	d := testenv.StartDovecot(t)
	c, err := pop3.Dial(t.Context(), d.POP3Addr(), &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := &tokenSource{list: []string{"tok"}}
	err = c.SignIn(t.Context(), auth.Credentials{Username: "test", Token: src.token}, d.Host, d.POP3Port)
	want := "the server offers no SASL mechanism for an OAuth2 token (token_cmd): it needs OAUTHBEARER or XOAUTH2, it offers PLAIN, LOGIN"
	if err == nil || err.Error() != want || !nethint.Permanent(err) || src.calls != 0 {
		t.Fatalf("err %v, token fetched %d times; want %q", err, src.calls, want)
	}
}
