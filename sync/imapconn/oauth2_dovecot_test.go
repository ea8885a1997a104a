package imapconn

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/auth"
	"github.com/postfach/postfach/sync/nethint"
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

// TestOAuth2Dovecot: with a Token, Dial and DialUploader sign in to
// Dovecot's OAuth2 passdb with OAUTHBEARER (or XOAUTH2 where it is the
// only one offered); a token refused once is fetched again and the
// sign-in succeeds; refused twice, the error is one clear, permanent line.
func TestOAuth2Dovecot(t *testing.T) {
	ctx := context.Background()
	user := testenv.DefaultUser.Name
	for _, tc := range []struct {
		name string
		opts []testenv.Option
		mech string
	}{
		{"OAUTHBEARER", []testenv.Option{testenv.WithOAuth2(), testenv.WithTLS(testenv.TLSOn)}, "OAUTHBEARER"},
		{"XOAUTH2", []testenv.Option{testenv.WithOAuth2(), testenv.WithTLS(testenv.TLSOn), testenv.WithConfig("auth_mechanisms = plain login xoauth2")}, "XOAUTH2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testenv.StartDovecot(t, tc.opts...)
			good, err := d.IssueToken(user)
			if err != nil {
				t.Fatal(err)
			}
			endpoint := func(src *tokenSource) Endpoint {
				return Endpoint{Addr: d.IMAPSAddr(), TLSConfig: d.TLSConfig(), Username: user, Token: src.token}
			}

			src := &tokenSource{list: []string{good}}
			e := endpoint(src)
			c, err := e.Dial(ctx)
			if err != nil {
				t.Fatalf("good token: %v", err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT after the sign-in: %v", err)
			}
			Logout(ctx, c)
			if src.calls != 1 {
				t.Errorf("good token fetched %d times, want once", src.calls)
			}

			// A stale token first: fetched again, and signed in.
			src = &tokenSource{list: []string{"tok-stale", good}}
			e = endpoint(src)
			c, err = e.Dial(ctx)
			if err != nil {
				t.Fatalf("stale, then good token: %v", err)
			}
			Logout(ctx, c)
			if src.calls != 2 {
				t.Errorf("stale, then good token: fetched %d times, want 2", src.calls)
			}

			// The MULTIAPPEND connection likewise, and it uploads.
			src = &tokenSource{list: []string{"tok-stale", good}}
			e = endpoint(src)
			up, err := e.DialUploader(ctx)
			if err != nil {
				t.Fatalf("uploader, stale then good token: %v", err)
			}
			body := "Subject: oauth\r\n\r\nhi\r\n"
			if _, err := up.AppendMany(ctx, "INBOX", []UploadMsg{{Size: int64(len(body)),
				Write: func(w io.Writer) error { _, err := io.WriteString(w, body); return err }}}); err != nil {
				t.Fatalf("upload after the OAuth2 sign-in: %v", err)
			}
			up.Close()
			if src.calls != 2 {
				t.Errorf("uploader: token fetched %d times, want 2", src.calls)
			}

			// Wrong twice: a clear, permanent error.
			for _, dial := range []func(*Endpoint) error{
				func(e *Endpoint) error { c, err := e.Dial(ctx); closeIf(c); return err },
				func(e *Endpoint) error { u, err := e.DialUploader(ctx); closeUp(u); return err },
			} {
				src = &tokenSource{list: []string{"tok-wrong", "tok-wrong-too"}}
				e = endpoint(src)
				err = dial(&e)
				var ce *ConnError
				var re *auth.RefusedError
				if !errors.As(err, &ce) || !errors.As(err, &re) || !nethint.Permanent(err) {
					t.Fatalf("wrong token: %v (%T), want a permanent ConnError holding a RefusedError", err, err)
				}
				want := d.IMAPSAddr() + ": sign-in as test failed: " + tc.mech + `: the OAuth2 token from token_cmd was refused, also when fetched again`
				if got := err.Error(); len(got) < len(want) || got[:len(want)] != want || src.calls != 2 {
					t.Fatalf("wrong token: %q after %d fetches, want it to start with %q after 2", got, src.calls, want)
				}
				t.Log(err)
			}
			for _, tok := range []string{"tok-stale", "tok-wrong", "tok-wrong-too", good} {
				if !slices.Contains(d.Introspected(), tok) {
					t.Errorf("Dovecot never checked %q", tok)
				}
			}
		})
	}
}

func closeIf(c *imapclient.Client) {
	if c != nil {
		c.Close()
	}
}

func closeUp(u *Uploader) {
	if u != nil {
		u.Close()
	}
}

// TestOAuth2NoMechanism: a server that offers neither OAUTHBEARER nor
// XOAUTH2 is a permanent error saying so, and the token is not fetched.
func TestOAuth2NoMechanism(t *testing.T) {
	d := testenv.StartDovecot(t)
	src := &tokenSource{list: []string{"tok"}}
	e := Endpoint{Addr: d.IMAPAddr(), TLS: TLSNone, Username: "test", Token: src.token}
	_, err := e.Dial(context.Background())
	want := d.IMAPAddr() + ": sign-in as test failed: the server offers no SASL mechanism for an OAuth2 token (token_cmd): it needs OAUTHBEARER or XOAUTH2, it offers LOGIN, PLAIN"
	if err == nil || err.Error() != want || !nethint.Permanent(err) || src.calls != 0 {
		t.Fatalf("err %v (permanent %v), token fetched %d times; want %q", err, nethint.Permanent(err), src.calls, want)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		t.Fatalf("no exchange should have happened: %v", ie)
	}
}
