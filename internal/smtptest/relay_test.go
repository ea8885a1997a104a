package smtptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	netsmtp "net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func message(subject string) []byte {
	return []byte("From: Sender <sender@example.org>\r\n" +
		"To: rcpt@example.net\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + subject + "@example.org>\r\n" +
		"Date: Sat, 05 Dec 2026 12:00:00 +0000\r\n" +
		"\r\n" +
		"Body of " + subject + ".\r\n.leading dot\r\n")
}

// dial connects with STARTTLS (or implicit TLS), trusting the test CA.
func dial(t *testing.T, r *Relay) *smtp.Client {
	t.Helper()
	cfg, err := r.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	var c *smtp.Client
	if r.opts.ImplicitTLS {
		c, err = smtp.DialTLS(r.Addr(), cfg)
	} else {
		c, err = smtp.DialStartTLS(r.Addr(), cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitDelivered(t *testing.T, r *Relay, n int) []Delivered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := r.WaitDelivered(ctx, n)
	if err != nil {
		t.Fatalf("waiting for %d delivered messages, have %d: %v", n, len(ds), err)
	}
	return ds
}

func checkDelivered(t *testing.T, d Delivered, from string, to []string, data []byte) {
	t.Helper()
	got, want := slices.Sorted(slices.Values(d.To)), slices.Sorted(slices.Values(to))
	if d.From != from || !slices.Equal(got, want) {
		t.Errorf("envelope %s -> %v, want %s -> %v", d.From, d.To, from, to)
	}
	if !bytes.Equal(d.Data, data) {
		t.Errorf("delivered data:\n%q\nwant\n%q", d.Data, data)
	}
	if !bytes.HasPrefix(d.Raw, []byte("Received: ")) || !bytes.HasSuffix(d.Raw, data) {
		t.Errorf("raw delivered message does not start with the relay's Received field or end with the message:\n%q", d.Raw)
	}
}

// TestRelayStartTLSAuth sends through STARTTLS and AUTH PLAIN with
// go-smtp's client, and AUTH LOGIN with implicit TLS, and reads back each
// message byte for byte with its envelope (two relays at once).
func TestRelayStartTLSAuth(t *testing.T) {
	t.Parallel()
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicit=%v", implicit), func(t *testing.T) {
			t.Parallel()
			r := StartRelay(t, RelayOptions{ImplicitTLS: implicit})
			c := dial(t, r)
			if _, ok := c.TLSConnectionState(); !ok {
				t.Fatal("no TLS")
			}
			auth := sasl.NewPlainClient("", r.Username, r.Password)
			if implicit {
				auth = sasl.NewLoginClient(r.Username, r.Password)
			}
			if err := c.Auth(auth); err != nil {
				t.Fatal(err)
			}
			// The relay passes every header field on (Bcc too) and 8-bit text.
			msg := append([]byte("Bcc: bcc@example.com\r\n"), message("first")...)
			msg = append(msg, "\xc3\xa9t\xc3\xa9\r\n"...)
			to := []string{"rcpt@example.net", "bcc@example.com"}
			if err := c.SendMail("sender@example.org", to, bytes.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			ds := waitDelivered(t, r, 1)
			checkDelivered(t, ds[0], "sender@example.org", to, msg)
		})
	}
}

// TestRelayNetSMTP sends with the standard library's net/smtp (STARTTLS,
// AUTH PLAIN) and checks the message by content.
func TestRelayNetSMTP(t *testing.T) {
	t.Parallel()
	r := StartRelay(t, RelayOptions{})
	cfg, err := r.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := netsmtp.Dial(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	if err := c.StartTLS(cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(netsmtp.PlainAuth("", r.Username, r.Password, r.Host)); err != nil {
		t.Fatal(err)
	}
	msg := message("netsmtp")
	if err := c.Mail("a@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.net"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	ds := waitDelivered(t, r, 1)
	checkDelivered(t, ds[0], "a@example.org", []string{"b@example.net"}, msg)
}

// smtpCode returns the reply code of an SMTP error, 0 if err is none.
func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestRelayRefusesWithoutAuth: relaying without AUTH is refused (5xx at
// RCPT TO), a wrong password is refused, and AUTH is refused before TLS.
func TestRelayRefusesWithoutAuth(t *testing.T) {
	t.Parallel()
	r := StartRelay(t, RelayOptions{})

	c := dial(t, r)
	if err := c.Mail("sender@example.org", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("rcpt@example.net", nil)
	if code := smtpCode(err); code/100 != 5 {
		t.Fatalf("RCPT TO without AUTH: %v, want a 5xx refusal", err)
	}
	t.Logf("relaying without AUTH: %v", err)

	err = dial(t, r).Auth(sasl.NewPlainClient("", r.Username, "wrong"+r.Password))
	if code := smtpCode(err); code != 535 {
		t.Fatalf("AUTH with a wrong password: %v, want 535", err)
	}
	err = dial(t, r).Auth(sasl.NewPlainClient("", "other@smtptest.invalid", r.Password))
	if code := smtpCode(err); code != 535 {
		t.Fatalf("AUTH as another user: %v, want 535", err)
	}

	plain, err := smtp.Dial(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err == nil {
		t.Fatal("AUTH before STARTTLS accepted")
	}
	plain, err = smtp.Dial(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Mail("sender@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := plain.Rcpt("rcpt@example.net", nil); smtpCode(err)/100 != 5 {
		t.Fatalf("RCPT TO in plaintext without AUTH: %v, want a 5xx refusal", err)
	}
	if ds, _ := r.Delivered(); len(ds) != 0 {
		t.Fatalf("delivered %d messages", len(ds))
	}
}

// TestRelayReject: Reject answers RCPT TO with the code for that address
// only, at once, until cleared.
func TestRelayReject(t *testing.T) {
	t.Parallel()
	r := StartRelay(t, RelayOptions{})
	if err := r.Reject("Bad@example.net", 550); err != nil {
		t.Fatal(err)
	}
	if err := r.Reject("later@example.net", 450); err != nil {
		t.Fatal(err)
	}
	c := dial(t, r)
	if err := c.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("good@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bad@example.net", nil); smtpCode(err) != 550 {
		t.Fatalf("RCPT TO bad: %v, want 550", err)
	}
	if err := c.Rcpt("later@example.net", nil); smtpCode(err) != 450 {
		t.Fatalf("RCPT TO later: %v, want 450", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	msg := message("reject")
	w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Reject("later@example.net", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("sender@example.org", []string{"later@example.net"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	ds := waitDelivered(t, r, 2)
	got := map[string]bool{}
	for _, d := range ds {
		if !bytes.Equal(d.Data, msg) {
			t.Errorf("delivered %q", d.Data)
		}
		for _, to := range d.To {
			got[to] = true
		}
	}
	if len(got) != 2 || !got["good@example.net"] || !got["later@example.net"] {
		t.Fatalf("delivered to %v, want good@ and later@", got)
	}
}

// TestRelayStopStart: after Stop connections are refused; what the relay
// accepted before is delivered; after Start it accepts again on the same
// port.
func TestRelayStopStart(t *testing.T) {
	t.Parallel()
	r := StartRelay(t, RelayOptions{})
	send := func(subject string) []byte {
		c := dial(t, r)
		if err := c.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err != nil {
			t.Fatal(err)
		}
		msg := message(subject)
		if err := c.SendMail("sender@example.org", []string{"rcpt@example.net"}, bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		return msg
	}
	first := send("before-stop")
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("stopped relay accepts connections")
	}
	ds := waitDelivered(t, r, 1)
	checkDelivered(t, ds[0], "sender@example.org", []string{"rcpt@example.net"}, first)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	second := send("after-start")
	ds = waitDelivered(t, r, 2)
	checkDelivered(t, ds[1], "sender@example.org", []string{"rcpt@example.net"}, second)
	if len(ds) != 2 {
		t.Fatalf("delivered %d messages, want 2", len(ds))
	}
}

// xoauth2 is a client of the XOAUTH2 mechanism (Google's): on a refused
// token it answers the error challenge with an empty response.
type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}
func (x xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

// TestRelayOAuth: with a Token the relay offers XOAUTH2 and OAUTHBEARER,
// accepts the token for its user and refuses another token (535, after the
// error challenge) and another user.
func TestRelayOAuth(t *testing.T) {
	t.Parallel()
	r := StartRelay(t, RelayOptions{Token: "tok-123"})
	oauthbearer := func(user, token string) sasl.Client {
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token, Host: r.Host, Port: r.Port})
	}
	for _, tc := range []struct {
		name string
		auth sasl.Client
		ok   bool
	}{
		{"xoauth2", xoauth2{r.Username, "tok-123"}, true},
		{"oauthbearer", oauthbearer(r.Username, "tok-123"), true},
		{"xoauth2 wrong token", xoauth2{r.Username, "tok-999"}, false},
		{"oauthbearer wrong token", oauthbearer(r.Username, "tok-999"), false},
		{"xoauth2 other user", xoauth2{"other@smtptest.invalid", "tok-123"}, false},
	} {
		c := dial(t, r)
		for _, m := range []string{"XOAUTH2", "OAUTHBEARER", "PLAIN"} {
			if !c.SupportsAuth(m) {
				t.Fatalf("%s not offered", m)
			}
		}
		err := c.Auth(tc.auth)
		// A refused token: 535, or go-sasl's OAUTHBEARER client gives up
		// on the error challenge.
		var oe *sasl.OAuthBearerError
		refused := smtpCode(err) == 535 || (errors.As(err, &oe) && oe.Status == "invalid_token")
		if tc.ok != (err == nil) || (!tc.ok && !refused) {
			t.Errorf("%s: AUTH: %v", tc.name, err)
			continue
		}
		if !tc.ok {
			continue
		}
		msg := message(strings.ReplaceAll(tc.name, " ", "-"))
		if err := c.SendMail(r.Username, []string{"rcpt@example.net"}, bytes.NewReader(msg)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	ds := waitDelivered(t, r, 2)
	if len(ds) != 2 {
		t.Fatalf("delivered %d messages, want 2", len(ds))
	}
	if c := dial(t, StartRelay(t, RelayOptions{})); c.SupportsAuth("XOAUTH2") || c.SupportsAuth("OAUTHBEARER") {
		t.Error("relay without a Token offers OAuth mechanisms")
	}
}

// TestRelaySMTPUTF8: the relay offers SMTPUTF8 and passes an internationalized
// envelope on; with NoSMTPUTF8 it does not offer it.
func TestRelaySMTPUTF8(t *testing.T) {
	t.Parallel()
	r := StartRelay(t, RelayOptions{})
	c := dial(t, r)
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("SMTPUTF8 not offered")
	}
	if err := c.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err != nil {
		t.Fatal(err)
	}
	msg := []byte("From: j\xc3\xb6rg@b\xc3\xbccher.example\r\nTo: \xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example\r\nSubject: \xc3\xbc\r\n\r\nx\r\n")
	from, to := "j\xc3\xb6rg@b\xc3\xbccher.example", "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example"
	if err := c.Mail(from, &smtp.MailOptions{UTF8: true, Body: smtp.Body8BitMIME}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ds := waitDelivered(t, r, 1)
	checkDelivered(t, ds[0], from, []string{to}, msg)

	plain := StartRelay(t, RelayOptions{NoSMTPUTF8: true})
	if ok, _ := dial(t, plain).Extension("SMTPUTF8"); ok {
		t.Error("SMTPUTF8 offered with NoSMTPUTF8")
	}
}

// TestRelayMsmtp sends with Debian's msmtp (as the bench does): STARTTLS
// trusting CAFile, AUTH, the message on stdin.
func TestRelayMsmtp(t *testing.T) {
	t.Parallel()
	msmtp, err := exec.LookPath("msmtp")
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skip("skipping: needs msmtp (apt-get install msmtp)")
		}
		t.Fatal(err)
	}
	r := StartRelay(t, RelayOptions{})
	conf := filepath.Join(t.TempDir(), "msmtprc")
	rc := fmt.Sprintf("account default\nhost %s\nport %d\ntls on\ntls_starttls on\ntls_trust_file %s\nauth plain\nuser %s\npassword %s\nfrom sender@example.org\n",
		r.Host, r.Port, r.CAFile, r.Username, r.Password)
	if err := os.WriteFile(conf, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := message("msmtp")
	cmd := exec.Command(msmtp, "-C", conf, "-f", "sender@example.org", "rcpt@example.net")
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("msmtp: %v\n%s", err, out)
	}
	ds := waitDelivered(t, r, 1)
	checkDelivered(t, ds[0], "sender@example.org", []string{"rcpt@example.net"}, msg)
}
