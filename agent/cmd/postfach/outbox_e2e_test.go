package main

// End-to-end tests of outgoing mail (issue 12) as a user runs it: the real
// binary, a private Dovecot as the IMAP upstream, an SMTP relay started by
// the test (internal/smtptest: STARTTLS with a test CA trusted through
// ca_file, AUTH required), `postfach send` as a mail client calls
// sendmail, `postfach queue`, and `postfach run` with its submission
// endpoint.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/smtptest"
	"github.com/postfach/postfach/sync/outbox"
)

// outboxEnv is a runEnv whose account "work" sends through a test relay.
type outboxEnv struct {
	*runEnv
	relay *smtptest.Relay
}

// newOutboxEnv starts Dovecot and the relay and writes the config; serve
// is appended as it is (a [serve] table, or "").
func newOutboxEnv(t *testing.T, serve string) *outboxEnv {
	t.Helper()
	e := &outboxEnv{runEnv: newRunEnv(t, "outbox", "INBOX"), relay: smtptest.StartRelay(t, smtptest.RelayOptions{})}
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n  [accounts.smtp]\n  host = %q\n  port = %d\n  tls = \"starttls\"\n  ca_file = %q\n  username = %q\n  password = %q\n%s",
		e.relay.Host, e.relay.Port, e.relay.CAFile, e.relay.Username, e.relay.Password, serve)
	f.Close()
	return e
}

// outgoing is a test message: what goes into send and what must come out.
type outgoing struct {
	id       string // Message-ID, without <>
	raw      string // as the client writes it (LF)
	rcpts    []string
	stored   string // as it must reach the relay: CRLF, Bcc removed
	bccAddrs []string
}

// newOutgoing makes message i: To, Cc and (every other one) Bcc.
func newOutgoing(i int) outgoing {
	o := outgoing{id: fmt.Sprintf("%d.%d@outbox.test", i, time.Now().UnixNano())}
	head := fmt.Sprintf("From: Me <me@outbox.test>\nTo: to%d@example.org\nCc: cc%d@example.org\n", i, i)
	o.rcpts = []string{fmt.Sprintf("to%d@example.org", i), fmt.Sprintf("cc%d@example.org", i)}
	bcc := ""
	if i%2 == 0 {
		o.bccAddrs = []string{fmt.Sprintf("bcc%d@example.org", i)}
		o.rcpts = append(o.rcpts, o.bccAddrs...)
		bcc = fmt.Sprintf("Bcc: bcc%d@example.org\n", i)
	}
	rest := fmt.Sprintf("Subject: outbox test %d\nDate: Sat, 5 Dec 2026 12:00:00 +0000\nMessage-ID: <%s>\n\nline one of %d\nBcc: in the body stays\n", i, o.id, i)
	o.raw = head + bcc + rest
	o.stored = strings.ReplaceAll(head+rest, "\n", "\r\n")
	return o
}

// send queues o with `postfach send -t`, as mutt calls it.
func (e *outboxEnv) send(t *testing.T, o outgoing) {
	t.Helper()
	r := runIn(t, o.raw, "--config", e.config, "send", "-oem", "-oi", "-t")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("send: %s", r)
	}
}

// delivered returns, per Message-ID, how often the relay got the message
// for each recipient, and the data of each (the last one).
func (e *outboxEnv) delivered(t *testing.T) (map[string]map[string]int, map[string][]byte) {
	t.Helper()
	list, err := e.relay.Delivered()
	if err != nil {
		t.Fatal(err)
	}
	counts, data := map[string]map[string]int{}, map[string][]byte{}
	for _, d := range list {
		m, err := mail.ReadMessage(bytes.NewReader(d.Data))
		if err != nil {
			t.Fatalf("the relay got a message it cannot parse: %v\n%s", err, d.Data)
		}
		id := strings.Trim(m.Header.Get("Message-ID"), "<>")
		if counts[id] == nil {
			counts[id] = map[string]int{}
		}
		for _, to := range d.To {
			counts[id][strings.ToLower(to)]++
		}
		data[id] = d.Data
	}
	return counts, data
}

// waitDelivered waits until the relay got every message of msgs for all
// its recipients, then checks each went exactly once to each, and that
// what arrived is the message as it must be stored (the relay may add a
// Received field above it), no Bcc field in it.
func (e *outboxEnv) waitDelivered(t *testing.T, msgs []outgoing, limit time.Duration) {
	t.Helper()
	if _, err := agenttest.Poll(limit, 50*time.Millisecond, func() (bool, error) {
		counts, _ := e.delivered(t)
		for _, o := range msgs {
			for _, r := range o.rcpts {
				if counts[o.id][r] == 0 {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		counts, _ := e.delivered(t)
		t.Fatalf("not all delivered within %v: %v", limit, counts)
	}
	counts, data := e.delivered(t)
	for _, o := range msgs {
		want := map[string]int{}
		for _, r := range o.rcpts {
			want[r] = 1
		}
		if fmt.Sprint(counts[o.id]) != fmt.Sprint(want) {
			t.Errorf("%s: delivered %v, want each recipient once: %v", o.id, counts[o.id], want)
		}
		// The relay may keep the message with LF line ends.
		got := bytes.ReplaceAll(data[o.id], []byte("\r\n"), []byte("\n"))
		if want := strings.ReplaceAll(o.stored, "\r\n", "\n"); !bytes.HasSuffix(got, []byte(want)) {
			t.Errorf("%s: the relay got\n%q\nwant it to end with\n%q", o.id, data[o.id], o.stored)
		}
		if head, _, _ := bytes.Cut(got, []byte("\n\n")); bytes.Contains(bytes.ToLower(head), []byte("\nbcc:")) {
			t.Errorf("%s: a Bcc field reached the relay:\n%s", o.id, head)
		}
	}
}

// outboxSize is how many messages the tests send.
func outboxSize() int {
	if testing.Short() {
		return 4
	}
	return 20
}

// TestOutboxSendThroughAgent: with `postfach run` running, messages
// queued by `postfach send` (one process each, as a mail client calls
// sendmail) leave at once: each reaches the relay exactly once per
// recipient, Bcc recipients in the envelope and in no copy; the queue is
// empty after. With the real outbox, each lands in Sent on Dovecot (Bcc
// stripped there too) after the next sync.
func TestOutboxSendThroughAgent(t *testing.T) {
	e := newOutboxEnv(t, "")
	e.startAgent(t)
	var msgs []outgoing
	for i := range outboxSize() {
		o := newOutgoing(i)
		msgs = append(msgs, o)
		e.send(t, o)
	}
	e.waitDelivered(t, msgs, 15*time.Second) // nudged: not the sender's next round
	if _, err := agenttest.Poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		return len(queueList(t, e.config).Messages) == 0, nil
	}); err != nil {
		t.Errorf("the queue is not empty after delivery: %+v", queueList(t, e.config).Messages)
	}
	if st := getStatus(t, e.config); st.Accounts[0].Outbox != 0 || st.Accounts[0].OutboxFailed != 0 {
		t.Errorf("status after delivery: %+v", st.Accounts[0])
	}
	e.checkSent(t, msgs)
}

// checkSent syncs and checks that Dovecot's Sent folder holds each of msgs
// once, as it was stored (no Bcc field), and that no local copy in Sent
// names a Bcc recipient.
func (e *outboxEnv) checkSent(t *testing.T, msgs []outgoing) {
	t.Helper()
	mustRun(t, nil, "--config", e.config, "sync")
	server := serverFolders(t, e.d)
	var sent []string
	for name, list := range server {
		if name != "Sent" {
			continue
		}
		for _, m := range list {
			sent = append(sent, string(m.Raw))
		}
	}
	// The local copies, as the store filed them.
	var local []string
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(e.local.Dir("Sent"), sub)
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, ent.Name())); err == nil {
				local = append(local, string(b))
			}
		}
	}
	for _, o := range msgs {
		nLocal := 0
		for _, s := range local {
			if strings.Contains(s, "<"+o.id+">") {
				nLocal++
				for _, b := range o.bccAddrs {
					if strings.Contains(s, b) {
						t.Errorf("%s: the local copy in Sent names the Bcc recipient %s:\n%s", o.id, b, s)
					}
				}
			}
		}
		n := 0
		for _, s := range sent {
			if strings.Contains(s, "<"+o.id+">") {
				n++
				for _, b := range o.bccAddrs {
					if strings.Contains(s, b) {
						t.Errorf("%s: the copy in Sent names the Bcc recipient %s:\n%s", o.id, b, s)
					}
				}
			}
		}
		if n != 1 || nLocal != 1 {
			t.Errorf("%s: %d copies in Sent on the server, %d in the local Sent, want 1", o.id, n, nLocal)
		}
	}
}

// TestOutboxQueueFlushWithoutAgent: without an agent, `postfach queue`
// lists what `postfach send` queued; with the relay down, `queue --flush`
// defers it (attempts and the reason shown); once the relay is back,
// `queue --flush` sends each message exactly once and empties the queue.
func TestOutboxQueueFlushWithoutAgent(t *testing.T) {
	e := newOutboxEnv(t, "")
	mustRun(t, nil, "--config", e.config, "sync")
	msgs := []outgoing{newOutgoing(0), newOutgoing(1)}
	for _, o := range msgs {
		e.send(t, o)
	}
	if err := e.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	q := queueList(t, e.config, "--flush")
	if len(q.Flushed) != 1 || q.Flushed[0].Account != runAccount || q.Flushed[0].Sent != 0 || q.Flushed[0].Deferred != 2 {
		t.Errorf("flush with the relay down: %+v", q.Flushed)
	}
	if len(q.Messages) != 2 {
		t.Fatalf("queue after a deferred flush: %+v", q.Messages)
	}
	for i, m := range q.Messages {
		if m.Attempts < 1 || m.LastReply == "" || m.State != "queued" || m.Subject != fmt.Sprintf("outbox test %d", i) ||
			len(m.Recipients) != len(msgs[i].rcpts) || strings.Trim(m.MessageID, "<>") != msgs[i].id {
			t.Errorf("deferred message %d: %+v", i, m)
		}
	}
	table := mustRun(t, nil, "--config", e.config, "queue").stdout
	if !strings.Contains(table, "to0@example.org, cc0@example.org, bcc0@example.org") {
		t.Errorf("queue table:\n%s", table)
	}
	if err := e.relay.Start(); err != nil {
		t.Fatal(err)
	}
	q = queueList(t, e.config, "--flush")
	if len(q.Flushed) != 1 || q.Flushed[0].Sent != 2 || len(q.Messages) != 0 {
		t.Errorf("flush with the relay back: %+v, left %+v", q.Flushed, q.Messages)
	}
	e.waitDelivered(t, msgs, 5*time.Second)
}

// TestOutboxRelayDownWithAgent: with the agent running and the relay
// down, a message stays queued and `postfach queue` and `status` show it
// deferred; once the relay is back the agent delivers it exactly once by
// itself (no nudge, no flush, no restart), within the sender's probe
// interval for a relay on a loopback address (outbox.DefaultConnRetryLocal)
// although its backoff is a minute and more. Down again, `queue --flush`
// (which the agent carries out: it holds the store) sends the next one.
func TestOutboxRelayDownWithAgent(t *testing.T) {
	e := newOutboxEnv(t, "")
	a := e.startAgent(t)
	if err := e.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	o := newOutgoing(0)
	e.send(t, o)
	var q queueJSON
	if _, err := agenttest.Poll(20*time.Second, 50*time.Millisecond, func() (bool, error) {
		q = queueList(t, e.config)
		return len(q.Messages) == 1 && q.Messages[0].Attempts >= 1, nil
	}); err != nil {
		t.Fatalf("the agent never tried the message: %+v", q.Messages)
	}
	if m := q.Messages[0]; m.LastReply == "" || m.State != "queued" || m.NextAttempt == "" || !strings.Contains(m.LastReply, "refused") {
		t.Errorf("deferred: %+v", m)
	}
	if st := getStatus(t, e.config); st.Accounts[0].Outbox != 1 {
		t.Errorf("status with one message deferred: %+v", st.Accounts[0])
	}
	if err := e.relay.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	e.waitDelivered(t, []outgoing{o}, outbox.DefaultConnRetryLocal+20*time.Second)
	t.Logf("the relay back, the agent delivered the deferred message %v later by itself", time.Since(back).Round(time.Millisecond))

	// Down again: a flush once it is back goes through the agent.
	if err := e.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	o2 := newOutgoing(1)
	e.send(t, o2)
	if _, err := agenttest.Poll(20*time.Second, 50*time.Millisecond, func() (bool, error) {
		q = queueList(t, e.config)
		return len(q.Messages) == 1 && q.Messages[0].Attempts >= 1, nil
	}); err != nil {
		t.Fatalf("the agent never tried the second message: %+v", q.Messages)
	}
	if err := e.relay.Start(); err != nil {
		t.Fatal(err)
	}
	// The agent holds the store's lock: a flush that did not go through
	// it would fail on the lock.
	q = queueList(t, e.config, "--flush")
	if len(q.Flushed) != 1 || q.Flushed[0].Account != runAccount || q.Flushed[0].Error != "" {
		t.Errorf("flush through the agent: %+v", q.Flushed)
	}
	e.waitDelivered(t, []outgoing{o, o2}, 10*time.Second)
	select {
	case <-a.Exited():
		t.Fatalf("the agent exited: %v", a.ExitErr())
	default:
	}
}

// TestOutboxSubmission: a client submits to `postfach run`'s submission
// endpoint over STARTTLS with the local login; MAIL before AUTH is
// refused; what it submits reaches the relay once per recipient, Bcc
// stripped.
func TestOutboxSubmission(t *testing.T) {
	addr := freeLoopback(t)
	e := newOutboxEnv(t, fmt.Sprintf("\n[serve]\nsubmission = %q\n", addr))
	var creds credentialsOut
	r := mustRun(t, nil, "--config", e.config, "credentials", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &creds); err != nil {
		t.Fatal(err)
	}
	if creds.Submission != addr || creds.TLS != "starttls" {
		t.Errorf("credentials: submission %q with TLS %q, want %q with starttls", creds.Submission, creds.TLS, addr)
	}
	pem, err := os.ReadFile(creds.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	e.startAgent(t)
	var c *smtp.Client
	if _, err := agenttest.Poll(waitLimit, 20*time.Millisecond, func() (bool, error) {
		c, err = smtp.DialStartTLS(addr, tlsCfg)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("submission endpoint %s: %v", addr, err)
	}
	defer c.Close()
	var se *smtp.SMTPError
	if err := c.Mail("me@outbox.test", nil); !errors.As(err, &se) || se.Code/100 != 5 {
		t.Fatalf("MAIL before AUTH: %v, want a 5xx refusal", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", creds.Username, creds.Password)); err != nil {
		t.Fatalf("AUTH with the local login: %v", err)
	}
	o := newOutgoing(2)
	if err := c.SendMail("me@outbox.test", o.rcpts, strings.NewReader(strings.ReplaceAll(o.raw, "\n", "\r\n"))); err != nil {
		t.Fatalf("submitting: %v", err)
	}
	c.Quit()
	e.waitDelivered(t, []outgoing{o}, 30*time.Second)
}

// TestOutboxRecipientRefused (real outbox only): a 5xx recipient fails at
// once with a failure notice in the local INBOX, the others are
// delivered; a 4xx recipient is retried and then delivered; the copy in
// Sent is made once.
func TestOutboxRecipientRefused(t *testing.T) {
	e := newOutboxEnv(t, "")
	mustRun(t, nil, "--config", e.config, "sync")
	o := newOutgoing(0) // to0, cc0, bcc0
	if err := e.relay.Reject("cc0@example.org", 550); err != nil {
		t.Fatal(err)
	}
	if err := e.relay.Reject("bcc0@example.org", 450); err != nil {
		t.Fatal(err)
	}
	e.send(t, o)
	q := queueList(t, e.config, "--flush")
	if len(q.Messages) != 1 {
		t.Fatalf("after the first flush: %+v", q.Messages)
	}
	states := map[string]string{}
	for _, r := range q.Messages[0].Recipients {
		states[r.Addr] = r.State
	}
	if want := map[string]string{"to0@example.org": "sent", "cc0@example.org": "failed", "bcc0@example.org": "pending"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("recipients after the first flush: %v, want %v", states, want)
	}
	e.relay.Reject("bcc0@example.org", 0)
	q = queueList(t, e.config, "--flush")
	// The failed message stays listed, each recipient with its outcome.
	if len(q.Messages) != 1 || q.Messages[0].State != "failed" {
		t.Fatalf("after the second flush: %+v", q.Messages)
	}
	for _, r := range q.Messages[0].Recipients {
		want := "sent"
		if r.Addr == "cc0@example.org" {
			want = "failed"
			if !strings.HasPrefix(r.Reply, "550") {
				t.Errorf("cc0's reply %q, want the relay's 550", r.Reply)
			}
		}
		if r.State != want {
			t.Errorf("%s: %s (%s), want %s", r.Addr, r.State, r.Reply, want)
		}
	}
	// The relay hands on what it took in its own time: wait for both.
	if _, err := agenttest.Poll(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		counts, _ := e.delivered(t)
		return counts[o.id]["to0@example.org"] > 0 && counts[o.id]["bcc0@example.org"] > 0, nil
	}); err != nil {
		counts, _ := e.delivered(t)
		t.Fatalf("to0 and bcc0 not both delivered: %v", counts[o.id])
	}
	counts, data := e.delivered(t)
	if want := map[string]int{"to0@example.org": 1, "bcc0@example.org": 1}; fmt.Sprint(counts[o.id]) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want %v", counts[o.id], want)
	}
	got := bytes.ReplaceAll(data[o.id], []byte("\r\n"), []byte("\n"))
	if want := strings.ReplaceAll(o.stored, "\r\n", "\n"); !bytes.HasSuffix(got, []byte(want)) {
		t.Errorf("the relay got\n%q\nwant it to end with\n%q", data[o.id], o.stored)
	}
	// The failure notice, once, in the local INBOX: a delivery-status
	// report on cc0 alone, with the relay's reply and the original's
	// header (no Bcc in it).
	inbox := filepath.Join(e.store, runAccount, "INBOX")
	var notices []string
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(inbox, sub))
		for _, ent := range ents {
			b, _ := os.ReadFile(filepath.Join(inbox, sub, ent.Name()))
			if bytes.Contains(b, []byte("cc0@example.org")) {
				notices = append(notices, string(b))
			}
		}
	}
	if len(notices) != 1 {
		t.Fatalf("%d failure notices naming cc0@example.org in the local INBOX, want 1:\n%s", len(notices), strings.Join(notices, "\n----\n"))
	}
	notice := notices[0]
	for _, want := range []string{
		"Subject: Undelivered mail: outbox test 0\n", "Content-Type: multipart/report; report-type=delivery-status;",
		"  <cc0@example.org>: 550 ", "Final-Recipient: rfc822; cc0@example.org\nAction: failed\nStatus: 5.",
		"Diagnostic-Code: smtp; 550 ", "Content-Type: text/rfc822-headers\n\nFrom: Me <me@outbox.test>\nTo: to0@example.org\nCc: cc0@example.org\nSubject: outbox test 0\n",
		"Message-ID: <" + o.id + ">\n",
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("the notice lacks %q:\n%s", want, notice)
		}
	}
	for _, not := range []string{"Final-Recipient: rfc822; to0@", "Final-Recipient: rfc822; bcc0@", "Bcc:"} {
		if strings.Contains(notice, not) {
			t.Errorf("the notice has %q:\n%s", not, notice)
		}
	}
	// One copy in Sent (after the first recipient took it), not one per
	// flush.
	e.checkSent(t, []outgoing{o})
}

// outboxLoad is how many messages TestOutboxLoad queues with `postfach
// send` and submits with Python's smtplib: issue 12's 1,000 and 100 with
// POSTFACH_OUTBOX_FULL=1, fewer by default (the suite's time budget).
func outboxLoad() (sends, submits int) {
	switch {
	case os.Getenv("POSTFACH_OUTBOX_FULL") == "1":
		return 1000, 100
	case testing.Short():
		return 10, 5
	}
	return 50, 10
}

// smtplibScript submits messages to the submission endpoint: argv host,
// port, user, password, cafile, then one file per message whose first
// line is the envelope "FROM RCPT RCPT...".
const smtplibScript = `
import smtplib, ssl, sys
host, port, user, pw, cafile = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP(host, int(port))
s.starttls(context=ctx)
s.login(user, pw)
for path in sys.argv[6:]:
    with open(path, "rb") as f:
        env, msg = f.read().split(b"\n", 1)
    words = env.decode().split()
    s.sendmail(words[0], words[1:], msg)
s.quit()
`

// TestOutboxLoad (issue 12's first done-when item, at outboxLoad's
// scale): messages queued by `postfach send`, one process each, and
// submitted with Python's smtplib to the submission endpoint while the
// agent runs are all delivered exactly once per recipient, Bcc stripped;
// with the real outbox each has one copy in Sent on Dovecot after the
// next sync, Bcc stripped there too.
func TestOutboxLoad(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed (Python's smtplib): %v", err)
	}
	addr := freeLoopback(t)
	e := newOutboxEnv(t, fmt.Sprintf("\n[serve]\nsubmission = %q\n", addr))
	var creds credentialsOut
	r := mustRun(t, nil, "--config", e.config, "credentials", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &creds); err != nil {
		t.Fatal(err)
	}
	e.startAgent(t)
	sends, submits := outboxLoad()
	var msgs []outgoing
	start := time.Now()
	for i := range sends {
		o := newOutgoing(i)
		msgs = append(msgs, o)
		e.send(t, o)
	}
	sendTook := time.Since(start)
	dir := t.TempDir()
	args := []string{"-c", smtplibScript, "127.0.0.1", strings.Split(addr, ":")[1], creds.Username, creds.Password, creds.CertFile}
	for i := sends; i < sends+submits; i++ {
		o := newOutgoing(i)
		msgs = append(msgs, o)
		path := filepath.Join(dir, fmt.Sprintf("%d.eml", i))
		env := "me@outbox.test " + strings.Join(o.rcpts, " ")
		if err := os.WriteFile(path, []byte(env+"\n"+strings.ReplaceAll(o.raw, "\n", "\r\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, path)
	}
	if out, err := exec.Command(python, args...).CombinedOutput(); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	e.waitDelivered(t, msgs, time.Minute+time.Duration(sends+submits)*50*time.Millisecond)
	t.Logf("%d messages queued by postfach send in %v (%v each), %d submitted with smtplib; all delivered %v after the first send",
		sends, sendTook.Round(time.Millisecond), (sendTook / time.Duration(max(sends, 1))).Round(time.Microsecond), submits, time.Since(start).Round(time.Millisecond))
	e.checkSent(t, msgs)
}

// outboxKills is how often TestOutboxKill9 kills the agent.
func outboxKills() int {
	if testing.Short() {
		return 5
	}
	return 30
}

// killTally counts what TestOutboxKill9's kills did.
type killTally struct {
	// window[id][rcpt]: kills that left message id "sending" with rcpt
	// pending: each is one send the next agent repeats (the queue's
	// Interrupted count), the one accepted cause of a duplicate.
	window                   map[string]map[string]int
	idle, midPass, afterPass int      // kills before the first send, within a pass, after the queue emptied
	sending                  []string // per kill that left a message "sending", its Message-ID
}

// tally reads the queue of a killed agent: the messages it left
// "sending" and how far it got (unsent was the count of messages with
// pending recipients before it started).
func (k *killTally) tally(t *testing.T, e *outboxEnv, unsent int) (left int) {
	t.Helper()
	sending := ""
	for _, m := range queueList(t, e.config).Messages {
		pending := 0
		for _, r := range m.Recipients {
			if r.State == "pending" {
				pending++
				if m.State == "sending" {
					id := strings.Trim(m.MessageID, "<>")
					if k.window[id] == nil {
						k.window[id] = map[string]int{}
					}
					k.window[id][r.Addr]++
				}
			}
		}
		if pending > 0 {
			left++
		}
		if m.State == "sending" {
			sending = strings.Trim(m.MessageID, "<>")
		}
	}
	switch {
	case sending != "":
		k.sending = append(k.sending, sending)
		k.midPass++
	case left == unsent:
		k.idle++
	case left == 0:
		k.afterPass++
	default:
		k.midPass++
	}
	return left
}

// checkQueueFiles checks that no file of the queue names a Bcc
// recipient of msgs (send removed the field before it stored the
// message).
func (e *outboxEnv) checkQueueFiles(t *testing.T, msgs []outgoing) {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(e.store, ".postfach", "outbox", sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
			if err != nil {
				continue // sent and removed meanwhile
			}
			head, _, _ := bytes.Cut(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n\n"))
			if bytes.Contains(bytes.ToLower(head), []byte("\nbcc:")) {
				t.Errorf("a queue file has a Bcc field:\n%s", head)
			}
			for _, o := range msgs {
				for _, a := range o.bccAddrs {
					if bytes.Contains(b, []byte(a)) {
						t.Errorf("queue file %s names the Bcc recipient %s", ent.Name(), a)
					}
				}
			}
		}
	}
}

// TestOutboxKill9 (issue 12's second done-when item): `kill -9` of the
// agent at random moments while it sends loses nothing: once an agent
// runs to the end, every message has reached every recipient, and each
// has one copy in Sent on Dovecot (Bcc stripped from it, from the local
// copy and from the queue's files). Every duplicate delivery must come
// from a kill that left its message "sending" with that recipient
// pending (between the relay's final reply, or the final ".", and the
// commit that records it: the queue's Interrupted count); those are
// counted and logged, any other duplicate fails.
func TestOutboxKill9(t *testing.T) {
	e := newOutboxEnv(t, "")
	mustRun(t, nil, "--config", e.config, "sync")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	var msgs []outgoing
	perRound := 4
	k := &killTally{window: map[string]map[string]int{}}
	unsent := 0
	for i := range outboxKills() {
		for range perRound {
			o := newOutgoing(len(msgs))
			msgs = append(msgs, o)
			e.send(t, o)
		}
		unsent += perRound
		e.checkQueueFiles(t, msgs)
		a := e.spawnAgent(t)
		if i%3 != 0 {
			// Most kills while it sends: after its first attempt of
			// this run (whose outcome the next claim commits), then a
			// random while more.
			agenttest.Poll(10*time.Second, 2*time.Millisecond, func() (bool, error) {
				return strings.Contains(a.Log().String(), "outbox: attempt"), nil
			})
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		a.Kill()
		unsent = k.tally(t, e, unsent)
	}
	e.startAgent(t)
	if _, err := agenttest.Poll(2*time.Minute, 100*time.Millisecond, func() (bool, error) {
		counts, _ := e.delivered(t)
		for _, o := range msgs {
			for _, r := range o.rcpts {
				if counts[o.id][r] == 0 {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		counts, _ := e.delivered(t)
		lost := 0
		for _, o := range msgs {
			for _, r := range o.rcpts {
				if counts[o.id][r] == 0 {
					lost++
				}
			}
		}
		t.Fatalf("%d deliveries lost after %d kills (of %d messages)", lost, outboxKills(), len(msgs))
	}
	counts, _ := e.delivered(t)
	accepted, other := 0, 0
	for _, o := range msgs {
		for _, r := range o.rcpts {
			dup := counts[o.id][r] - 1
			if dup <= 0 {
				continue
			}
			in := min(dup, k.window[o.id][r])
			accepted += in
			if dup > in {
				other += dup - in
				t.Errorf("%s to %s: delivered %d times, of which %d resends after a kill cut its send off: %d duplicates of another cause",
					o.id, r, dup+1, in, dup-in)
			}
		}
	}
	inWindow := 0 // kills that hit the window: their message went twice
	for _, id := range k.sending {
		for _, n := range counts[id] {
			if n > 1 {
				inWindow++
				break
			}
		}
	}
	t.Logf("%d messages, %d kills -9 (%d before any send, %d within a pass, %d after it; %d left a message \"sending\", %d of them after the relay took it): nothing lost; duplicate deliveries: %d in the accepted window (a kill between the final \".\" and the commit of the reply), %d of any other cause",
		len(msgs), outboxKills(), k.idle, k.midPass, k.afterPass, len(k.sending), inWindow, accepted, other)
	e.checkSent(t, msgs)
}
