package submit

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

var oneAccount = []Account{{Name: "work", Addresses: []string{"me@work.example"}}}

const pyClient = `
import smtplib, ssl, sys
from email.message import EmailMessage
host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
with smtplib.SMTP(host, port) as s:
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = user, password
    s.auth("PLAIN", s.auth_plain)
    m = EmailMessage()
    m["From"] = "Me <me@work.example>"
    m["To"] = "you@example.net"
    m["Subject"] = "from smtplib"
    m["Message-ID"] = "<smtplib-1@work.example>"
    m.set_content("Hello from send_message.\n")
    s.send_message(m)
    raw = (b"From: me@work.example\r\nTo: you@example.net\r\nBcc: secret@example.org\r\n"
           b"Subject: raw with Bcc\r\nMessage-ID: <smtplib-2@work.example>\r\n\r\nThe Bcc line must go.\r\n")
    s.sendmail("me@work.example", ["you@example.net", "secret@example.org"], raw)
`

// TestSubmitSmtplib submits with Python's smtplib (STARTTLS, AUTH PLAIN,
// send_message, and sendmail with a Bcc field): both are queued for the
// account with their envelopes, the Bcc field is not stored, the Bcc
// recipient is in the envelope, and the sender is nudged.
func TestSubmitSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skip("needs python3")
		}
		t.Fatal(err)
	}
	e := start(t, oneAccount, 0, nil)
	host, port, _ := net.SplitHostPort(e.addr)
	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pyClient), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, host, port, e.cert.CertFile, testUser, testPass).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	ms := e.queued(t)
	if len(ms) != 2 {
		t.Fatalf("queued %d messages, want 2", len(ms))
	}
	for _, m := range ms {
		if m.Account != "work" || m.From != "me@work.example" {
			t.Errorf("queued for %s from %s, want work from me@work.example", m.Account, m.From)
		}
	}
	first, err := os.ReadFile(ms[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps messages with LF line ends, as every Maildir file
	// of the store (the sender writes CRLF on the wire).
	if !bytes.Contains(first, []byte("Subject: from smtplib\n")) || !bytes.Contains(first, []byte("Hello from send_message.\n")) {
		t.Errorf("first message stored as %q", first)
	}
	second, err := os.ReadFile(ms[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	want := "From: me@work.example\nTo: you@example.net\nSubject: raw with Bcc\nMessage-ID: <smtplib-2@work.example>\n\nThe Bcc line must go.\n"
	if string(second) != want {
		t.Errorf("second message stored as\n%q\nwant\n%q", second, want)
	}
	var rcpts []string
	for _, r := range ms[1].Recipients {
		rcpts = append(rcpts, r.Addr)
	}
	if slices.Sort(rcpts); !slices.Equal(rcpts, []string{"secret@example.org", "you@example.net"}) {
		t.Errorf("envelope recipients %v", rcpts)
	}
	if n := e.nudges(); !slices.Equal(n, []string{"work", "work"}) {
		t.Errorf("nudged %v", n)
	}
}

// TestSubmitRefusesWithoutAuth: MAIL (530), RCPT and DATA before AUTH are
// refused and nothing is queued, over TLS and in plaintext from loopback.
func TestSubmitRefusesWithoutAuth(t *testing.T) {
	e := start(t, oneAccount, 0, nil)
	for _, tls := range []bool{true, false} {
		c := e.dialPlain(t)
		if tls {
			c = e.dial(t)
		}
		if err := c.Mail("me@work.example", nil); code(err) != 530 {
			t.Errorf("tls=%v: MAIL before AUTH: %v, want 530", tls, err)
		}
		if err := c.Rcpt("you@example.net", nil); code(err)/100 != 5 {
			t.Errorf("tls=%v: RCPT before AUTH: %v, want a refusal", tls, err)
		}
		if _, err := c.Data(); code(err)/100 != 5 {
			t.Errorf("tls=%v: DATA before AUTH: %v, want a refusal", tls, err)
		}
		err := c.SendMail("me@work.example", []string{"you@example.net"}, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
		if code(err) != 530 {
			t.Errorf("tls=%v: SendMail before AUTH: %v, want 530", tls, err)
		}
	}
	if ms := e.queued(t); len(ms) != 0 {
		t.Fatalf("queued %d messages without AUTH", len(ms))
	}
}

// TestSubmitWrongPassword: a wrong password is refused (535) and leaves
// the session unauthenticated; after three failures the connection is
// closed.
func TestSubmitWrongPassword(t *testing.T) {
	e := start(t, oneAccount, 0, nil)
	c := e.dial(t)
	for i := 0; i < maxAuthFailures; i++ {
		if err := c.Auth(sasl.NewPlainClient("", testUser, "wrong")); code(err) != 535 {
			t.Fatalf("AUTH %d with a wrong password: %v, want 535", i+1, err)
		}
	}
	if err := c.Mail("me@work.example", nil); code(err) != 530 {
		t.Errorf("MAIL after failed AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); err == nil {
		t.Fatal("AUTH after three failures accepted")
	}
	if err := c.Noop(); err == nil {
		t.Error("connection still open after too many failed logins")
	}
	// LOGIN refuses a wrong password too.
	c2 := e.dial(t)
	if err := c2.Auth(sasl.NewLoginClient(testUser, "wrong")); code(err) != 535 {
		t.Fatalf("AUTH LOGIN with a wrong password: %v, want 535", err)
	}
	if ms := e.queued(t); len(ms) != 0 {
		t.Fatalf("queued %d messages", len(ms))
	}
}

// TestSubmitPlaintextAuthRemote: a client that is not on loopback is
// offered no AUTH and refused one before STARTTLS; after STARTTLS it logs
// in and sends.
func TestSubmitPlaintextAuthRemote(t *testing.T) {
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 40000}
	e := start(t, oneAccount, 0, remote)
	c := e.dialPlain(t)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered in plaintext to a remote client")
	}
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); code(err) != 538 {
		t.Errorf("plaintext AUTH from a remote client: %v, want 538", err)
	}
	e.mu.Lock()
	checked := len(e.authLog)
	e.mu.Unlock()
	if checked != 0 {
		t.Errorf("credentials sent in plaintext were checked %d times", checked)
	}

	c = e.dial(t)
	if ok, _ := c.Extension("AUTH"); !ok {
		t.Error("AUTH not offered after STARTTLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("me@work.example", []string{"you@example.net"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if ms := e.queued(t); len(ms) != 1 {
		t.Fatalf("queued %d messages, want 1", len(ms))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.authLog) != 1 || e.authLog[0] != remote.String() {
		t.Errorf("Auth saw remote %v, want %s", e.authLog, remote)
	}
}

// TestSubmitAccountBySender: with several accounts the envelope sender
// chooses (ignoring case); an unknown sender is refused with 553; a login
// "<user>+<account>" chooses that account for any sender.
func TestSubmitAccountBySender(t *testing.T) {
	accounts := []Account{
		{Name: "work", Addresses: []string{"me@work.example"}},
		{Name: "home", Addresses: []string{"me@home.example", "alias@home.example"}},
	}
	e := start(t, accounts, 0, nil)
	c := e.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"Alias@Home.example", "me@work.example"} {
		if err := c.SendMail(from, []string{"you@example.net"}, strings.NewReader("Subject: "+from+"\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Mail("stranger@example.com", nil); code(err) != 553 {
		t.Errorf("MAIL from an unknown sender: %v, want 553", err)
	}
	ms := e.queued(t)
	if len(ms) != 2 || ms[0].Account != "home" || ms[1].Account != "work" {
		for _, m := range ms {
			t.Logf("queued %s from %s", m.Account, m.From)
		}
		t.Fatalf("queued %d messages, want home then work", len(ms))
	}
	if n := e.nudges(); !slices.Equal(n, []string{"home", "work"}) {
		t.Errorf("nudged %v", n)
	}

	// A login that names an account sends through it, whatever the sender.
	c = e.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", testUser+"+home", testPass)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("me@work.example", []string{"you@example.net"}, strings.NewReader("Subject: pinned\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	ms = e.queued(t)
	if len(ms) != 3 || ms[2].Account != "home" || ms[2].From != "me@work.example" {
		t.Fatalf("message sent after login %s+home queued as %+v", testUser, ms[len(ms)-1])
	}
	if err := e.dial(t).Auth(sasl.NewPlainClient("", testUser+"+nosuch", testPass)); code(err) != 535 {
		t.Errorf("login naming no account: %v, want 535", err)
	}
}

// TestSubmitLimits: a message over MaxSize is refused with 552 and a
// malformed header with 554; neither is queued, and the session goes on.
func TestSubmitLimits(t *testing.T) {
	e := start(t, oneAccount, 2000, nil)
	c := e.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatal(err)
	}
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 100)
	if err := c.SendMail("me@work.example", []string{"you@example.net"}, strings.NewReader(big)); code(err) != 552 {
		t.Errorf("message over the size limit: %v, want 552", err)
	}
	bad := "Subject: ok\r\nthis is not a header field\r\n\r\nbody\r\n"
	if err := c.SendMail("me@work.example", []string{"you@example.net"}, strings.NewReader(bad)); code(err) != 554 {
		t.Errorf("malformed header: %v, want 554", err)
	}
	if ms := e.queued(t); len(ms) != 0 {
		t.Fatalf("queued %d messages", len(ms))
	}
	good := "Subject: fine\r\n\r\nbody\r\n"
	if err := c.SendMail("me@work.example", []string{"you@example.net"}, strings.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	ms := e.queued(t)
	if len(ms) != 1 {
		t.Fatalf("queued %d messages, want 1", len(ms))
	}
	if b, _ := os.ReadFile(ms[0].Path); string(b) != strings.ReplaceAll(good, "\r\n", "\n") {
		t.Errorf("stored %q, want %q with LF line ends", b, good)
	}
}
