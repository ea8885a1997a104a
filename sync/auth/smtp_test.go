package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTP's SASL exchange (RFC 4954) with go-smtp, client and server: the
// OAUTHBEARER and XOAUTH2 clients sign in; a refused token (334 error
// challenge, answered, then 535) is fetched again and the second signs
// in on the same connection.

// relay is a go-smtp server accepting the tokens in good for user.
type relay struct {
	mechs []string
	user  string

	mu   sync.Mutex
	good []string
	seen []string // tokens presented, in order
}

func (r *relay) check(user, token string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, token)
	return user == r.user && slices.Contains(r.good, token)
}

type relaySession struct{ r *relay }

func (s relaySession) AuthMechanisms() []string { return s.r.mechs }

func (s relaySession) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case OAuthBearer:
		return refusing{sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if !s.r.check(o.Username, o.Token) {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		})}, nil
	case XOAuth2:
		return &xoauth2Server{r: s.r}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (relaySession) Reset()                                  {}
func (relaySession) Logout() error                           { return nil }
func (relaySession) Mail(string, *smtp.MailOptions) error    { return nil }
func (relaySession) Rcpt(string, *smtp.RcptOptions) error    { return nil }
func (relaySession) Data(r io.Reader) error                  { _, err := io.Copy(io.Discard, r); return err }
func (r *relay) NewSession(*smtp.Conn) (smtp.Session, error) { return relaySession{r}, nil }

// refusing turns a failed exchange into 535 5.7.8, as relays answer a
// refused token (go-smtp's server says 454 for any other error).
type refusing struct{ sasl.Server }

func (r refusing) Next(resp []byte) ([]byte, bool, error) {
	chal, done, err := r.Server.Next(resp)
	if err != nil {
		err = smtp.ErrAuthFailed
	}
	return chal, done, err
}

// xoauth2Server is Google's XOAUTH2: an error challenge, then 535.
type xoauth2Server struct {
	r      *relay
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case x.failed:
		if len(resp) != 0 {
			return nil, true, errors.New("want an empty response to the error challenge")
		}
		return nil, true, smtp.ErrAuthFailed
	case resp == nil:
		return []byte{}, false, nil
	}
	user, rest, _ := strings.Cut(strings.TrimPrefix(string(resp), "user="), "\x01auth=Bearer ")
	if x.r.check(user, strings.TrimSuffix(rest, "\x01\x01")) {
		return nil, true, nil
	}
	x.failed = true
	chal, _ := json.Marshal(Status{Status: "401", Schemes: "bearer", Scope: "https://mail.google.com/"})
	return chal, false, nil
}

func refused535(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 535
}

func TestSMTPSignIn(t *testing.T) {
	for _, mech := range []string{OAuthBearer, XOAuth2} {
		t.Run(mech, func(t *testing.T) {
			r := &relay{mechs: []string{mech, Plain}, user: "me@example.org", good: []string{"fresh"}}
			srv := smtp.NewServer(r)
			srv.Domain = "relay.test"
			srv.AllowInsecureAuth = true
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			host, port := "127.0.0.1", ln.Addr().(*net.TCPAddr).Port

			c, err := smtp.Dial(ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			_, params := c.Extension("AUTH")
			tok, n := tokens("stale", "fresh")
			creds := Credentials{Username: "me@example.org", Token: tok}
			if err := creds.SignIn(context.Background(), strings.Fields(params), host, port, c.Auth, refused535); err != nil {
				t.Fatalf("stale, then fresh token: %v", err)
			}
			if *n != 2 || !slices.Equal(r.seen, []string{"stale", "fresh"}) {
				t.Fatalf("token fetched %d times, relay saw %q; want 2 and [stale fresh]", *n, r.seen)
			}
			// Signed in: the relay takes mail.
			if err := c.SendMail("me@example.org", []string{"you@example.org"}, bytes.NewReader([]byte("Subject: x\r\n\r\nhi\r\n"))); err != nil {
				t.Fatalf("sending after the sign-in: %v", err)
			}

			// Wrong twice: a RefusedError holding the 535.
			c2, err := smtp.Dial(ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			tok, n = tokens("bad", "worse")
			err = Credentials{Username: "me@example.org", Token: tok}.SignIn(context.Background(), []string{mech}, host, port, c2.Auth, refused535)
			var re *RefusedError
			if !errors.As(err, &re) || !refused535(err) || *n != 2 || re.Status == nil {
				t.Fatalf("wrong tokens: %v (%T), fetched %d times", err, err, *n)
			}
			t.Log(err)
		})
	}
}
