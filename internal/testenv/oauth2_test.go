package testenv

import (
	"bufio"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// xoauth2 is a bare XOAUTH2 client.
type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}
func (x xoauth2) Next([]byte) ([]byte, error) { return []byte{1}, nil }

// The OAuth2 passdb accepts the tokens the harness issued, for IMAP
// (XOAUTH2, OAUTHBEARER) and POP3; it refuses others and revoked ones,
// and passwords still work.
func TestDovecotOAuth2(t *testing.T) {
	d := StartDovecot(t, WithOAuth2())
	user := DefaultUser.Name
	tok, err := d.IssueToken(user)
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(cl sasl.Client) error {
		c, err := imapclient.DialInsecure(d.IMAPAddr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Caps().Has("AUTH=XOAUTH2") || !c.Caps().Has("AUTH=OAUTHBEARER") {
			t.Fatalf("capabilities %v lack XOAUTH2 or OAUTHBEARER", c.Caps())
		}
		return c.Authenticate(cl)
	}
	if err := signIn(xoauth2{user, tok}); err != nil {
		t.Fatalf("XOAUTH2 with an issued token: %v", err)
	}
	port := d.IMAPPort
	if err := signIn(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: tok, Host: d.Host, Port: port})); err != nil {
		t.Fatalf("OAUTHBEARER with an issued token: %v", err)
	}
	err = signIn(xoauth2{user, "tok-never-issued"})
	var ie *imap.Error
	if !asIMAPError(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		t.Fatalf("XOAUTH2 with a foreign token: %v, want NO", err)
	}
	if err := signIn(xoauth2{"other", tok}); err == nil {
		t.Fatal("XOAUTH2 with another user's token accepted")
	}
	d.RevokeToken(tok)
	if err := signIn(xoauth2{user, tok}); err == nil {
		t.Fatal("XOAUTH2 with a revoked token accepted")
	}
	if got := d.Introspected(); !slices.Contains(got, "tok-never-issued") || !slices.Contains(got, tok) {
		t.Fatalf("introspected %v", got)
	}
	d.Client(t, user) // LOGIN with the password

	// POP3: AUTH XOAUTH2 with the initial response.
	tok, _ = d.IssueToken(user)
	p := dialPOP3(t, d.POP3Addr())
	if capa := p.cmd("CAPA", true); !strings.Contains(capa, "XOAUTH2") {
		t.Fatalf("POP3 CAPA %q lacks XOAUTH2", capa)
	}
	_, ir, _ := xoauth2{user, tok}.Start()
	if line := p.cmd("AUTH XOAUTH2 "+base64.StdEncoding.EncodeToString(ir), false); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 AUTH XOAUTH2: %q", line)
	}
}

func asIMAPError(err error, target **imap.Error) bool { return errors.As(err, target) }

type pop3Conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialPOP3(t *testing.T, addr string) *pop3Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	p := &pop3Conn{t: t, c: c, br: bufio.NewReader(c)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("POP3 greeting %q", g)
	}
	return p
}

func (p *pop3Conn) line() string {
	l, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends line and returns the reply's first line, or with multi the
// whole multi-line reply.
func (p *pop3Conn) cmd(line string, multi bool) string {
	if _, err := p.c.Write([]byte(line + "\r\n")); err != nil {
		p.t.Fatal(err)
	}
	first := p.line()
	if !multi || !strings.HasPrefix(first, "+OK") {
		return first
	}
	var all []string
	for l := p.line(); l != "."; l = p.line() {
		all = append(all, l)
	}
	return strings.Join(all, "\n")
}
