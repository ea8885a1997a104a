package auth

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/emersion/go-sasl"
)

func tokens(list ...string) (func(context.Context) (string, error), *int) {
	n := new(int)
	return func(context.Context) (string, error) {
		i := min(*n, len(list)-1)
		*n++
		return list[i], nil
	}, n
}

func TestMechanismsAndChoose(t *testing.T) {
	tok, _ := tokens("t")
	pw := func(context.Context) (string, error) { return "p", nil }
	for _, tc := range []struct {
		c       Credentials
		offered []string
		want    string
	}{
		{Credentials{Token: tok}, []string{"PLAIN", "xoauth2", "OAUTHBEARER"}, "OAUTHBEARER"},
		{Credentials{Token: tok}, []string{"PLAIN", "xoauth2"}, "XOAUTH2"},
		{Credentials{Token: tok}, []string{"PLAIN", "LOGIN"}, ""},
		{Credentials{Password: pw}, []string{"LOGIN", "PLAIN", "XOAUTH2"}, "PLAIN"},
		{Credentials{Password: pw}, []string{"login"}, "LOGIN"},
		{Credentials{}, []string{"PLAIN"}, ""},
	} {
		if got := tc.c.Choose(tc.offered); got != tc.want {
			t.Errorf("Choose(%v) with %v = %q, want %q", tc.offered, tc.c.Mechanisms(), got, tc.want)
		}
	}
	if got := (Credentials{Token: tok, Password: pw}).Mechanisms(); !slices.Equal(got, []string{"OAUTHBEARER", "XOAUTH2"}) {
		t.Errorf("Mechanisms with a token = %v", got)
	}
}

// The OAUTHBEARER client signs in to go-sasl's server; refused, it
// answers the error challenge with %x01 and keeps the status.
func TestOAuthBearerAgainstGoSASL(t *testing.T) {
	for _, good := range []bool{true, false} {
		var seen sasl.OAuthBearerOptions
		srv := sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			seen = o
			if !good {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		})
		tok, _ := tokens("tok-123")
		cl, err := Credentials{Username: "me@example.org", Token: tok}.Client(context.Background(), "oauthbearer", "imap.example.org", 993)
		if err != nil {
			t.Fatal(err)
		}
		mech, ir, err := cl.Start()
		if err != nil || mech != "OAUTHBEARER" {
			t.Fatal(mech, err)
		}
		if want := "n,a=me@example.org,\x01host=imap.example.org\x01port=993\x01auth=Bearer tok-123\x01\x01"; string(ir) != want {
			t.Fatalf("initial response %q, want %q", ir, want)
		}
		chal, done, err := srv.Next(ir)
		if good {
			if err != nil || !done {
				t.Fatalf("good token: done %v err %v", done, err)
			}
			if seen.Username != "me@example.org" || seen.Token != "tok-123" || seen.Host != "imap.example.org" || seen.Port != 993 {
				t.Fatalf("server saw %+v", seen)
			}
			continue
		}
		if err != nil || done {
			t.Fatalf("refused token: want an error challenge, got done %v err %v", done, err)
		}
		resp, err := cl.Next(chal)
		if err != nil || string(resp) != "\x01" {
			t.Fatalf("answer to the error challenge %q, %v; want %%x01", resp, err)
		}
		if _, done, err = srv.Next(resp); !done || err == nil {
			t.Fatalf("server after the dummy response: done %v err %v", done, err)
		}
		if st := ServerStatus(cl); st == nil || st.Status != "invalid_token" || st.Schemes != "bearer" {
			t.Fatalf("ServerStatus = %+v", st)
		}
	}
}

func TestXOAuth2Client(t *testing.T) {
	tok, _ := tokens("ya29.abc")
	cl, err := Credentials{Username: "me@gmail.com", Token: tok}.Client(context.Background(), "XOAUTH2", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	mech, ir, err := cl.Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=me@gmail.com\x01auth=Bearer ya29.abc\x01\x01" {
		t.Fatalf("Start = %q %q %v", mech, ir, err)
	}
	resp, err := cl.Next([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`))
	if err != nil || resp == nil || len(resp) != 0 {
		t.Fatalf("answer to the error challenge %q, %v; want empty", resp, err)
	}
	if st := ServerStatus(cl); st == nil || st.Status != "401" {
		t.Fatalf("ServerStatus = %+v", st)
	}
	if _, err := cl.Next([]byte("again")); err == nil {
		t.Fatal("a second challenge is accepted")
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	fail := func(context.Context) (string, error) {
		return "", errors.New(`account "a": token_cmd failed (exit status 1)`)
	}
	empty := func(context.Context) (string, error) { return "", nil }
	pw := func(context.Context) (string, error) { return "p", nil }
	for _, tc := range []struct {
		c    Credentials
		mech string
		want string
	}{
		{Credentials{Token: fail}, "XOAUTH2", `account "a": token_cmd failed (exit status 1)`},
		{Credentials{Token: empty}, "OAUTHBEARER", "auth: the OAuth2 token is empty"},
		{Credentials{Username: "u", Password: pw}, "XOAUTH2", "auth: XOAUTH2 needs an OAuth2 token (token_cmd), and u has a password"},
		{Credentials{Username: "u", Token: fail}, "PLAIN", "auth: PLAIN needs a password, and u has an OAuth2 token (token_cmd)"},
		{Credentials{Password: pw}, "CRAM-MD5", `auth: unknown SASL mechanism "CRAM-MD5"`},
	} {
		if _, err := tc.c.Client(ctx, tc.mech, "h", 1); err == nil || err.Error() != tc.want {
			t.Errorf("Client(%s) error %v, want %q", tc.mech, err, tc.want)
		}
	}
}

var errRefused = errors.New("NO [AUTHENTICATIONFAILED] Authentication failed")

// server is a SASL exchange that accepts the tokens in good, answering
// others with an error challenge as Dovecot does.
func server(good ...string) func(sasl.Client) error {
	return func(cl sasl.Client) error {
		_, ir, err := cl.Start()
		if err != nil {
			return err
		}
		srv := sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if slices.Contains(good, o.Token) {
				return nil
			}
			return &sasl.OAuthBearerError{Status: "invalid_token"}
		})
		chal, done, err := srv.Next(ir)
		if done {
			return err
		}
		resp, err := cl.Next(chal)
		if err != nil {
			return err
		}
		if _, _, err := srv.Next(resp); err != nil {
			return errRefused
		}
		return errors.New("server accepted after an error challenge")
	}
}

func isRefused(err error) bool { return errors.Is(err, errRefused) }

func TestSignInRetriesARefusedToken(t *testing.T) {
	ctx := context.Background()
	offered := []string{"PLAIN", "OAUTHBEARER"}

	tok, n := tokens("stale", "fresh")
	if err := (Credentials{Username: "u", Token: tok}).SignIn(ctx, offered, "h", 1, server("fresh"), isRefused); err != nil {
		t.Fatalf("stale then fresh token: %v", err)
	}
	if *n != 2 {
		t.Fatalf("token fetched %d times, want 2", *n)
	}

	tok, n = tokens("fresh")
	if err := (Credentials{Username: "u", Token: tok}).SignIn(ctx, offered, "h", 1, server("fresh"), isRefused); err != nil || *n != 1 {
		t.Fatalf("good token: %v, fetched %d times, want once", err, *n)
	}

	tok, n = tokens("bad", "worse", "never")
	err := (Credentials{Username: "u", Token: tok}).SignIn(ctx, offered, "h", 1, server("fresh"), isRefused)
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, errRefused) || *n != 2 {
		t.Fatalf("two bad tokens: %v (%T), fetched %d times, want a RefusedError after 2", err, err, *n)
	}
	want := `OAUTHBEARER: the OAuth2 token from token_cmd was refused, also when fetched again (status "invalid_token"): NO [AUTHENTICATIONFAILED] Authentication failed`
	if err.Error() != want {
		t.Fatalf("error\n%s\nwant\n%s", err, want)
	}

	// A password refused is not asked for again.
	calls := 0
	pw := func(context.Context) (string, error) { calls++; return "p", nil }
	err = Credentials{Username: "u", Password: pw}.SignIn(ctx, offered, "h", 1, func(sasl.Client) error { return errRefused }, isRefused)
	if err != errRefused || calls != 1 {
		t.Fatalf("refused password: %v after %d fetches, want the refusal as it is after 1", err, calls)
	}

	// Other failures are not retried either.
	tok, n = tokens("t")
	lost := errors.New("connection lost")
	if err := (Credentials{Token: tok}).SignIn(ctx, offered, "h", 1, func(sasl.Client) error { return lost }, isRefused); err != lost || *n != 1 {
		t.Fatalf("lost connection: %v after %d fetches", err, *n)
	}
}

func TestSignInNoMechanism(t *testing.T) {
	tok, n := tokens("t")
	err := Credentials{Token: tok}.SignIn(context.Background(), []string{"PLAIN", "LOGIN"}, "h", 1, nil, nil)
	var me *MechanismError
	if !errors.As(err, &me) || !me.Permanent() || *n != 0 {
		t.Fatalf("err %v (%T), token fetched %d times", err, err, *n)
	}
	want := "the server offers no SASL mechanism for an OAuth2 token (token_cmd): it needs OAUTHBEARER or XOAUTH2, it offers PLAIN, LOGIN"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// TestOAuthBearerEscapesName: "=" and "," in the user name are escaped
// in OAUTHBEARER's GS2 header (RFC 5801 saslname), which would otherwise
// end the authzid early or be read as another field.
func TestOAuthBearerEscapesName(t *testing.T) {
	tok, _ := tokens("tok")
	cl, err := Credentials{Username: "a=b,c@example.org", Token: tok}.Client(context.Background(), "OAUTHBEARER", "h", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, ir, _ := cl.Start()
	if want := "n,a=a=3Db=2Cc@example.org,\x01host=h\x01auth=Bearer tok\x01\x01"; string(ir) != want {
		t.Errorf("initial response %q, want %q", ir, want)
	}
	if _, err := (Credentials{Username: "a\x01b", Token: tok}).Client(context.Background(), "XOAUTH2", "h", 0); err == nil {
		t.Error("a user name with a control character was taken into XOAUTH2's response")
	}
}
