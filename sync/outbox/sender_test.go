package outbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/auth"
)

const acct = "acct"

func newStore(t *testing.T) *index.Store {
	t.Helper()
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func creds() auth.Credentials {
	return auth.Credentials{Username: "user", Password: func(context.Context) (string, error) { return "secret", nil }}
}

// sender returns a sender for r with TLS as mode, trusting r's certificate.
func sender(t *testing.T, st *index.Store, r *testRelay, mode string, mod ...func(*Options)) *Sender {
	t.Helper()
	o := Options{Store: st, Account: acct, SaveSent: true,
		Relay: Relay{Host: r.Host, Port: r.Port, TLS: mode, TLSConfig: &tls.Config{RootCAs: r.Pool}, Auth: creds()}}
	for _, m := range mod {
		m(&o)
	}
	s, err := NewSender(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// submit queues a message as the submission endpoint and `postfach
// send -t` do: ReadSubmission, then Enqueue with every recipient.
func submit(t *testing.T, st *index.Store, msg string) *index.OutboxMessage {
	t.Helper()
	sub, err := ReadSubmission(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	env := index.Envelope{From: sub.From, To: slices.Concat(sub.To, sub.Cc, sub.Bcc)}
	m, err := st.Enqueue(context.Background(), acct, env, sub.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func flush(t *testing.T, s *Sender, want FlushReport) {
	t.Helper()
	got, err := s.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Flush: %+v, want %+v", got, want)
	}
}

func listed(t *testing.T, st *index.Store) []*index.OutboxMessage {
	t.Helper()
	var ms []*index.OutboxMessage
	if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.OutboxList(acct)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ms
}

// folderMessages returns the contents (CRLF) of the messages in the
// account's folder name, in order.
func folderMessages(t *testing.T, st *index.Store, name string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		id, err := tx.Account(acct)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(id, name)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ms, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		d, err := st.Dir(*f)
		if err != nil {
			return err
		}
		for _, m := range ms {
			b, err := os.ReadFile(filepath.Join(d.Path, m.File))
			if err != nil {
				return err
			}
			out = append(out, strings.ReplaceAll(string(b), "\n", "\r\n"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func outboxEmpty(t *testing.T, st *index.Store) {
	t.Helper()
	if ls := listed(t, st); len(ls) != 0 {
		t.Errorf("outbox still lists %+v", ls[0])
	}
	es, _ := os.ReadDir(filepath.Join(st.Root(), ".postfach", "outbox", "cur"))
	if len(es) != 0 {
		t.Errorf("outbox still holds %s", es[0].Name())
	}
}

const msgBcc = "From: Ann <ann@example.org>\n" +
	"To: Bob <bob@example.org>\n" +
	"Cc: carl@example.org\n" +
	"Bcc: secret-dan@example.org,\n  eve@example.org\n" +
	"Subject: hello\n" +
	"Message-ID: <1@example.org>\n" +
	"\n" +
	"body line\n.leading dot\n"

// wire is msgBcc as sent and stored: CRLF, no Bcc field.
const wire = "From: Ann <ann@example.org>\r\n" +
	"To: Bob <bob@example.org>\r\n" +
	"Cc: carl@example.org\r\n" +
	"Subject: hello\r\n" +
	"Message-ID: <1@example.org>\r\n" +
	"\r\n" +
	"body line\r\n.leading dot\r\n"

// TestSendStartTLS: over STARTTLS with AUTH, a message reaches every
// recipient, Bcc ones included, once, byte for byte without its Bcc
// field; the copy in Sent (the folder with special use \Sent) is the
// same bytes; the row and the file are gone.
func TestSendStartTLS(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	ctx := context.Background()
	var id index.AccountID
	if err := st.Write(ctx, func(tx *index.Tx) (err error) {
		id, err = tx.EnsureAccount(acct)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateFolder(ctx, id, "Sent Items", func(tx *index.Tx) error {
		f, err := tx.FolderByName(id, "Sent Items")
		if err != nil {
			return err
		}
		return tx.SetSpecialUse(f.ID, `\Sent`)
	}); err != nil {
		t.Fatal(err)
	}
	submit(t, st, msgBcc)
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 1})
	got := r.Delivered()
	if len(got) != 1 {
		t.Fatalf("relay got %d messages, want 1", len(got))
	}
	wantTo := []string{"bob@example.org", "carl@example.org", "secret-dan@example.org", "eve@example.org"}
	if got[0].From != "ann@example.org" || !slices.Equal(got[0].To, wantTo) {
		t.Errorf("envelope %s -> %v, want ann@example.org -> %v", got[0].From, got[0].To, wantTo)
	}
	if string(got[0].Data) != wire {
		t.Errorf("relay got\n%q\nwant\n%q", got[0].Data, wire)
	}
	if r.tlsMails != 1 || !slices.Equal(r.authed, []string{"user"}) {
		t.Errorf("MAIL over TLS %d, signed in %v", r.tlsMails, r.authed)
	}
	if sent := folderMessages(t, st, "Sent Items"); len(sent) != 1 || sent[0] != wire {
		t.Errorf("Sent holds %q, want the message without Bcc", sent)
	}
	outboxEmpty(t, st)
}

// TestStartTLSRequired: a relay that does not offer STARTTLS, or whose
// certificate does not verify, gets no MAIL: the message is deferred
// with the reason.
func TestStartTLSRequired(t *testing.T) {
	st := newStore(t)
	plain := startRelay(t, relayOpts{})
	submit(t, st, msgBcc)
	flush(t, sender(t, st, plain, "starttls"), FlushReport{Deferred: 1})
	if plain.mails != 0 || len(plain.authed) != 0 {
		t.Errorf("a relay without STARTTLS got %d MAIL, %d AUTH", plain.mails, len(plain.authed))
	}
	ls := listed(t, st)
	if len(ls) != 1 || !strings.Contains(ls[0].LastReply, "does not offer STARTTLS") || ls[0].Attempts != 1 {
		t.Fatalf("listed %+v", ls)
	}
	untrusted := startRelay(t, relayOpts{startTLS: true, auth: true})
	s := sender(t, st, untrusted, "starttls", func(o *Options) { o.Relay.TLSConfig = nil })
	flush(t, s, FlushReport{Deferred: 1})
	if untrusted.mails != 0 || len(untrusted.authed) != 0 {
		t.Errorf("a relay with an unverified certificate got %d MAIL, %d AUTH", untrusted.mails, len(untrusted.authed))
	}
	if ls := listed(t, st); !strings.Contains(ls[0].LastReply, "certificate") {
		t.Errorf("last reply %q does not name the certificate", ls[0].LastReply)
	}
}

// TestImplicitTLS: port-465 style, TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{implicit: true, auth: true})
	submit(t, st, msgBcc)
	flush(t, sender(t, st, r, "implicit"), FlushReport{Sent: 1})
	if len(r.Delivered()) != 1 || r.tlsMails != 1 {
		t.Errorf("delivered %d, over TLS %d", len(r.Delivered()), r.tlsMails)
	}
	// The same relay as "starttls" would talk SMTP to a TLS port: no
	// plaintext fallback either way.
}

// TestTemporaryThenSuccess: a 4xx recipient stays pending while the
// others are sent; the next attempt sends it alone; every recipient got
// the message once, and Sent has one copy.
func TestTemporaryThenSuccess(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	r.Reject("carl@example.org", 451)
	submit(t, st, msgBcc)
	now := time.Now()
	s := sender(t, st, r, "starttls", func(o *Options) { o.Now = func() time.Time { return now } })
	flush(t, s, FlushReport{Deferred: 1})
	ls := listed(t, st)
	if len(ls) != 1 || ls[0].State != "queued" || ls[0].Attempts != 1 || !strings.HasPrefix(ls[0].LastReply, "451 4.1.1") {
		t.Fatalf("after a 451: %+v", ls)
	}
	if want := now.Add(DefaultRetryMin).Truncate(time.Second); !ls[0].NextAttempt.Equal(want) {
		t.Errorf("next attempt %v, want %v", ls[0].NextAttempt, want)
	}
	for _, rc := range ls[0].Recipients {
		if want := map[bool]string{true: "pending", false: "sent"}[rc.Addr == "carl@example.org"]; rc.State != want {
			t.Errorf("%s is %s, want %s", rc.Addr, rc.State, want)
		}
	}
	// Not due yet: a pass of Run would not send it.
	if rep, err := s.pass(context.Background(), false, false); err != nil || rep != (FlushReport{}) {
		t.Errorf("a pass before the next attempt: %+v, %v", rep, err)
	}
	r.Reject("carl@example.org", 0)
	now = now.Add(DefaultRetryMin)
	if rep, err := s.pass(context.Background(), false, false); err != nil || rep != (FlushReport{Sent: 1}) {
		t.Errorf("a pass when due: %+v, %v", rep, err)
	}
	got := r.Delivered()
	if len(got) != 2 || !slices.Equal(got[1].To, []string{"carl@example.org"}) || string(got[1].Data) != wire {
		t.Errorf("deliveries %+v", got)
	}
	if sent := folderMessages(t, st, "Sent"); len(sent) != 1 || sent[0] != wire {
		t.Errorf("Sent holds %d copies", len(sent))
	}
	if inbox := folderMessages(t, st, "INBOX"); len(inbox) != 0 {
		t.Errorf("INBOX got %d notices for a message delivered", len(inbox))
	}
	outboxEmpty(t, st)
}

// TestPermanentFailsOne: a 5xx recipient fails at once, alone; a
// failure notice naming it and its reply lands in INBOX; the message is
// listed as failed until deleted.
func TestPermanentFailsOne(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	r.Reject("eve@example.org", 550)
	submit(t, st, msgBcc)
	flush(t, sender(t, st, r, "starttls"), FlushReport{Failed: 1})
	got := r.Delivered()
	if len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@example.org", "carl@example.org", "secret-dan@example.org"}) {
		t.Fatalf("deliveries %+v", got)
	}
	ls := listed(t, st)
	if len(ls) != 1 || ls[0].State != "failed" || ls[0].Recipients[3].State != "failed" || ls[0].Recipients[3].Reply != "550 5.1.1 rejected eve@example.org" {
		t.Fatalf("listed %+v", ls)
	}
	inbox := folderMessages(t, st, "INBOX")
	if len(inbox) != 1 {
		t.Fatalf("INBOX holds %d messages, want 1 notice", len(inbox))
	}
	n := inbox[0]
	for _, want := range []string{"Content-Type: multipart/report; report-type=delivery-status", "To: <ann@example.org>",
		"Final-Recipient: rfc822; eve@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
		"Diagnostic-Code: smtp; 550 5.1.1 rejected eve@example.org", "Subject: hello\r\n", "Content-Type: text/rfc822-headers"} {
		if !strings.Contains(n, want) {
			t.Errorf("notice lacks %q:\n%s", want, n)
		}
	}
	if strings.Contains(n, "bob@example.org>:") || strings.Contains(n, "Final-Recipient: rfc822; bob") {
		t.Errorf("notice names a delivered recipient:\n%s", n)
	}
	if sent := folderMessages(t, st, "Sent"); len(sent) != 1 {
		t.Errorf("Sent holds %d copies, want 1", len(sent))
	}
	// Nothing more to do for it: another flush sends nothing.
	flush(t, sender(t, st, r, "starttls"), FlushReport{})
	if err := st.OutboxDelete(context.Background(), ls[0].ID); err != nil {
		t.Fatal(err)
	}
	outboxEmpty(t, st)
}

// TestBackoffCapped: the waits double from RetryMin and stop at
// RetryMax, as recorded in the rows of a message whose relay is down.
func TestBackoffCapped(t *testing.T) {
	st := newStore(t)
	r := deadRelay(t)
	submit(t, st, msgBcc)
	now := time.Now()
	s := sender(t, st, r, "none", func(o *Options) {
		o.Now = func() time.Time { return now }
		o.RetryMin, o.RetryMax = time.Minute, 10*time.Minute
		o.Warn, o.Expiry = 1000*time.Hour, 2000*time.Hour
	})
	var waits []time.Duration
	for range 7 {
		flush(t, s, FlushReport{Deferred: 1})
		m := listed(t, st)[0]
		waits = append(waits, m.NextAttempt.Sub(now.Truncate(time.Second)))
		now = m.NextAttempt
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i := range want {
		want[i] *= time.Minute
	}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if m := listed(t, st)[0]; m.Attempts != 7 || !strings.Contains(m.LastReply, "connection refused") {
		t.Errorf("after 7 attempts: %+v", m)
	}
}

// TestWarnAndExpiry: past Warn a still-pending message gets one warning
// notice; past Expiry it fails with a notice saying so (4.4.7).
func TestWarnAndExpiry(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	r.Reject("bob@example.org", 421)
	submit(t, st, "From: ann@example.org\nTo: bob@example.org\nSubject: late\n\nx\n")
	now := time.Now().Add(5 * time.Hour)
	s := sender(t, st, r, "none", func(o *Options) { o.Now = func() time.Time { return now }; o.Relay.Auth = auth.Credentials{} })
	flush(t, s, FlushReport{Deferred: 1})
	flush(t, s, FlushReport{Deferred: 1})
	inbox := folderMessages(t, st, "INBOX")
	if len(inbox) != 1 || !strings.Contains(inbox[0], "Action: delayed") || !strings.Contains(inbox[0], "Status: 4.1.1") {
		t.Fatalf("INBOX after 5 hours: %q", inbox)
	}
	now = time.Now().Add(DefaultExpiry + time.Minute)
	flush(t, s, FlushReport{Failed: 1})
	inbox = folderMessages(t, st, "INBOX")
	if len(inbox) != 2 || !strings.Contains(inbox[1], "Action: failed\r\nStatus: 4.4.7") || !strings.Contains(inbox[1], "expired after") {
		t.Fatalf("INBOX after expiry: %q", inbox)
	}
	if len(r.Delivered()) != 0 {
		t.Error("delivered")
	}
	if ls := listed(t, st); len(ls) != 1 || ls[0].State != "failed" {
		t.Errorf("listed %+v", ls)
	}
}

// TestSMTPUTF8: a message that needs SMTPUTF8 fails at once, with that
// reason, at a relay without it, and goes out at one with it.
func TestSMTPUTF8(t *testing.T) {
	msg := "From: ann@example.org\nTo: jörg@bücher.example\nSubject: grüße\n\nx\n"
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	submit(t, st, msg)
	flush(t, sender(t, st, r, "starttls"), FlushReport{Failed: 1})
	ls := listed(t, st)
	if len(ls) != 1 || !strings.Contains(ls[0].LastReply, "needs SMTPUTF8") || r.mails != 0 {
		t.Fatalf("listed %+v, MAIL %d", ls, r.mails)
	}
	if inbox := folderMessages(t, st, "INBOX"); len(inbox) != 1 || !strings.Contains(inbox[0], "needs SMTPUTF8") {
		t.Errorf("no notice saying why: %q", inbox)
	}
	st2 := newStore(t)
	r2 := startRelay(t, relayOpts{startTLS: true, auth: true, utf8: true})
	submit(t, st2, msg)
	flush(t, sender(t, st2, r2, "starttls"), FlushReport{Sent: 1})
	if got := r2.Delivered(); len(got) != 1 || got[0].To[0] != "jörg@bücher.example" {
		t.Errorf("delivered %+v", got)
	}
}

// TestCrashDuplicate: a crash between the relay's reply and the commit
// (the one window) leaves the message "sending"; the next pass resends
// it, counted as interrupted: one duplicate, and no other.
func TestCrashDuplicate(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	m := submit(t, st, msgBcc)
	crashed := false
	testHookReplied = func(index.OutboxID) bool {
		if !crashed {
			crashed = true
			return true
		}
		return false
	}
	defer func() { testHookReplied = nil }()
	if _, err := sender(t, st, r, "starttls").Flush(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("first flush: %v", err)
	}
	if ls := listed(t, st); len(ls) != 1 || ls[0].State != "sending" {
		t.Fatalf("after the crash: %+v", ls)
	}
	var interrupted int
	testHookReplied = func(id index.OutboxID) bool {
		_ = st.Read(context.Background(), func(tx *index.ReadTx) error {
			mm, err := tx.OutboxMessage(id)
			if err == nil {
				interrupted = mm.Interrupted
			}
			return err
		})
		return false
	}
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 1})
	got := r.Delivered()
	dups := 0
	for i := range got {
		if i > 0 && bytes.Equal(got[i].Data, got[0].Data) && slices.Equal(got[i].To, got[0].To) {
			dups++
		}
	}
	t.Logf("message %d: %d deliveries, %d duplicate, interrupted %d", m.ID, len(got), dups, interrupted)
	if len(got) != 2 || dups != 1 || interrupted != 1 {
		t.Errorf("deliveries %d, duplicates %d, interrupted %d; want 2, 1, 1", len(got), dups, interrupted)
	}
	if sent := folderMessages(t, st, "Sent"); len(sent) != 1 {
		t.Errorf("Sent holds %d copies, want 1", len(sent))
	}
	outboxEmpty(t, st)
}

// TestOneConnection: several due messages go over one connection.
func TestOneConnection(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	for i := range 5 {
		submit(t, st, strings.Replace(msgBcc, "hello", "hello "+string(rune('a'+i)), 1))
	}
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 5})
	if got := r.Delivered(); len(got) != 5 || len(r.conns) != 1 {
		t.Errorf("delivered %d over %d connections, want 5 over 1", len(got), len(r.conns))
	}
	if sent := folderMessages(t, st, "Sent"); len(sent) != 5 || !strings.Contains(sent[4], "Subject: hello e\r\n") {
		t.Errorf("Sent holds %d", len(sent))
	}
}

// TestRunNudge: Run sends a message queued after it started when
// nudged, and stops with its context.
func TestRunNudge(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	got := make(chan struct{}, 10)
	r.onData = func() { got <- struct{}{} }
	s := sender(t, st, r, "starttls")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	sub := st.Subscribe(0)
	defer sub.Close()
	submit(t, st, msgBcc)
	if c := <-sub.C(); c.Kind == index.OutboxQueued && c.Name == acct {
		s.Nudge()
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not send a nudged message")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRunRelayBackSoon: a relay that was down (connections refused)
// and comes back while Run waits out a long backoff gets its mail within
// ConnRetry, with no nudge; the probes meanwhile count no attempts.
func TestRunRelayBackSoon(t *testing.T) {
	st := newStore(t)
	dead := deadRelay(t)
	s := sender(t, st, dead, "none", func(o *Options) {
		o.RetryMin, o.RetryMax, o.ConnRetry = time.Hour, time.Hour, 50*time.Millisecond
	})
	submit(t, st, msgBcc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ms := listed(t, st); len(ms) == 1 && ms[0].Attempts == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first attempt was not recorded: %+v", listed(t, st))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Several probes while it stays down: none counts as an attempt.
	time.Sleep(300 * time.Millisecond)
	if ms := listed(t, st); len(ms) != 1 || ms[0].Attempts != 1 || !strings.Contains(ms[0].LastReply, "refused") {
		t.Fatalf("after probes while down: %+v", ms[0])
	}
	r := startRelay(t, relayOpts{auth: true, port: dead.Port})
	back := time.Now()
	for len(r.Delivered()) == 0 {
		if time.Since(back) > 20*time.Second {
			t.Fatal("the relay came back and got nothing within 20s (the backoff is an hour)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.Delivered(); len(got) != 1 || string(got[0].Data) != wire {
		t.Errorf("delivered %+v, want the message once:\n%q", got, wire)
	}
	t.Logf("delivered %v after the relay came back", time.Since(back).Round(time.Millisecond))
}

// TestConnRetryDefault: a relay next door is looked for again sooner
// than one across the Internet.
func TestConnRetryDefault(t *testing.T) {
	st := newStore(t)
	for host, want := range map[string]time.Duration{
		"127.0.0.1": DefaultConnRetryLocal, "::1": DefaultConnRetryLocal, "localhost": DefaultConnRetryLocal,
		"192.168.1.2": DefaultConnRetryLocal, "10.0.0.1": DefaultConnRetryLocal, "fd00::1": DefaultConnRetryLocal,
		"smtp.example.org": DefaultConnRetry, "203.0.113.5": DefaultConnRetry, "2001:db8::1": DefaultConnRetry,
	} {
		s := sender(t, st, &testRelay{Host: host, Port: 587}, "starttls")
		if s.o.ConnRetry != want {
			t.Errorf("%s: ConnRetry %v, want %v", host, s.o.ConnRetry, want)
		}
	}
}

func TestReadSubmission(t *testing.T) {
	s, err := ReadSubmission(strings.NewReader(msgBcc))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(s.Body)
	if string(body) != strings.Replace(wire, "\r\n\r\nbody line\r\n.leading dot\r\n", "\r\n\r\nbody line\n.leading dot\n", 1) {
		t.Errorf("body %q", body)
	}
	if s.From != "ann@example.org" || !slices.Equal(s.To, []string{"bob@example.org"}) || !slices.Equal(s.Cc, []string{"carl@example.org"}) ||
		!slices.Equal(s.Bcc, []string{"secret-dan@example.org", "eve@example.org"}) {
		t.Errorf("%+v", s)
	}
	s, err = ReadSubmission(strings.NewReader("Sender: s@x.org\r\nResent-To: team: a@x.org, b@x.org;\r\nResent-Bcc:\r\nTo: =?utf-8?q?J=C3=B6rg?= <j@x.org>\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.From != "s@x.org" || !slices.Equal(s.To, []string{"a@x.org", "b@x.org", "j@x.org"}) || len(s.Bcc) != 0 {
		t.Errorf("%+v", s)
	}
	for _, bad := range []string{"", "Subject: x\nnot a field\n\n", " folded first\n\n", "To: <unterminated\n\n"} {
		if _, err := ReadSubmission(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error %q has a line break", err)
		}
	}
	if _, err := ReadSubmission(strings.NewReader("Subject: x\nnot a field\n\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v does not name line 2", err)
	}
}

// TestFlushBesideRun: Flush and a nudged Run at once send each message
// once (their passes take turns on the account's outbox lock).
func TestFlushBesideRun(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	n := 20
	if testing.Short() {
		n = 8
	}
	for i := range n {
		submit(t, st, strings.Replace(msgBcc, "hello", "hello "+strings.Repeat("x", i), 1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := sender(t, st, r, "starttls")
	done := make(chan error)
	go func() { done <- run.Run(ctx) }()
	run.Nudge()
	var total FlushReport
	for range 3 {
		rep, err := sender(t, st, r, "starttls").Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total.Sent += rep.Sent
		total.Deferred += rep.Deferred
		total.Failed += rep.Failed
	}
	// Run may still be in its pass: wait for the outbox to empty.
	deadline := time.Now().Add(30 * time.Second)
	for len(listed(t, st)) > 0 && time.Now().Before(deadline) {
		run.Nudge()
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := r.Delivered()
	seen := map[string]int{}
	for _, d := range got {
		seen[string(d.Data)]++
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%d messages delivered, %d different; want %d once each", len(got), len(seen), n)
	}
	if total.Deferred != 0 || total.Failed != 0 {
		t.Errorf("flushes: %+v", total)
	}
	if sent := folderMessages(t, st, "Sent"); len(sent) != n {
		t.Errorf("Sent holds %d copies, want %d", len(sent), n)
	}
	outboxEmpty(t, st)
}

// TestDataRefused: a 5xx to the end of DATA fails every recipient that
// RCPT took, with a notice; a 4xx there defers them; the next message
// over the same connection still goes.
func TestDataRefused(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	r.SetDataCode(554)
	submit(t, st, msgBcc)
	flush(t, sender(t, st, r, "starttls"), FlushReport{Failed: 1})
	ls := listed(t, st)
	if len(ls) != 1 || ls[0].State != "failed" || ls[0].LastReply != "554 5.6.0 content refused" {
		t.Fatalf("listed %+v", ls)
	}
	if inbox := folderMessages(t, st, "INBOX"); len(inbox) != 1 || strings.Count(inbox[0], "Action: failed") != 4 {
		t.Errorf("INBOX %q", inbox)
	}
	if sent := folderMessages(t, st, "Sent"); len(sent) != 0 {
		t.Errorf("Sent holds a message nobody got")
	}
	r.SetDataCode(452)
	submit(t, st, msgBcc)
	flush(t, sender(t, st, r, "starttls"), FlushReport{Deferred: 1})
	r.SetDataCode(0)
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 1})
	if got := r.Delivered(); len(got) != 1 || string(got[0].Data) != wire {
		t.Errorf("delivered %+v", got)
	}
}

// TestRelayBack: nudges while the relay is down do not stretch the
// wait; once a nudge (or any pass that connects) finds the relay, the
// messages that found none go at once, due or not.
func TestRelayBack(t *testing.T) {
	st := newStore(t)
	dead := deadRelay(t)
	submit(t, st, msgBcc)
	now := time.Now() // after the submission: it is due
	clock := func(o *Options) { o.Now = func() time.Time { return now } }
	down := sender(t, st, dead, "none", clock)
	if rep, err := down.pass(context.Background(), false, false); err != nil || rep.Deferred != 1 {
		t.Fatalf("first pass: %+v %v", rep, err)
	}
	first := listed(t, st)[0]
	// A nudge probes the relay; the message, not due, is not tried.
	for range 5 {
		if rep, err := down.pass(context.Background(), false, true); err != nil || rep != (FlushReport{}) {
			t.Fatalf("nudged pass: %+v %v", rep, err)
		}
	}
	if m := listed(t, st)[0]; m.Attempts != 1 || !m.NextAttempt.Equal(first.NextAttempt) || !strings.Contains(m.LastReply, "refused") {
		t.Errorf("after nudges while down: attempts %d, next %v (was %v), reply %q", m.Attempts, m.NextAttempt, first.NextAttempt, m.LastReply)
	}
	// Back: a timer pass sends nothing not due (nothing due, no dial);
	// a nudged one sends it.
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	up := sender(t, st, r, "starttls", clock)
	if rep, err := up.pass(context.Background(), false, false); err != nil || rep != (FlushReport{}) {
		t.Errorf("timer pass: %+v %v", rep, err)
	}
	if rep, err := up.pass(context.Background(), false, true); err != nil || rep != (FlushReport{Sent: 1}) {
		t.Errorf("nudged pass: %+v %v", rep, err)
	}
	// A pass that connects for a due message takes them along.
	submit(t, st, msgBcc)
	now = time.Now() // the message is due
	if rep, err := down.pass(context.Background(), false, false); err != nil || rep.Deferred != 1 {
		t.Fatalf("pass while down: %+v %v", rep, err)
	}
	submit(t, st, strings.Replace(msgBcc, "hello", "hello again", 1))
	now = time.Now()
	if rep, err := up.pass(context.Background(), false, false); err != nil || rep != (FlushReport{Sent: 2}) {
		t.Errorf("timer pass with a new message: %+v %v", rep, err)
	}
	if got := r.Delivered(); len(got) != 3 {
		t.Errorf("delivered %d, want 3", len(got))
	}
	outboxEmpty(t, st)
}

// TestNudgeWhileDownKeepsRows: while no relay answers, a nudge (each
// `postfach send` gives one) dials once and leaves the rows of the
// messages waiting for a relay as they are, so that a queue written
// offline costs each new message one dial, not a rewrite of the whole
// queue. Once a relay answers, a nudge sends them all.
func TestNudgeWhileDownKeepsRows(t *testing.T) {
	st := newStore(t)
	first, second := deadRelay(t), deadRelay(t)
	const n = 20
	for range n {
		submit(t, st, msgBcc)
	}
	now := time.Now()
	clock := func(o *Options) { o.Now = func() time.Time { return now } }
	if rep, err := sender(t, st, first, "none", clock).pass(context.Background(), false, false); err != nil || rep.Deferred != n {
		t.Fatalf("first pass: %+v %v", rep, err)
	}
	before := listed(t, st)
	// Another dead address: a rewritten row would name its port.
	down := sender(t, st, second, "none", clock)
	for k := range 3 {
		submit(t, st, msgBcc)
		now = time.Now() // the new message is due: tried and deferred
		if rep, err := down.pass(context.Background(), false, true); err != nil || rep.Deferred != 1 {
			t.Fatalf("nudged pass %d while down: %+v %v", k+1, rep, err)
		}
	}
	after := listed(t, st)
	if len(after) != n+3 {
		t.Fatalf("%d queued, want %d", len(after), n+3)
	}
	for i, m := range before {
		a := after[i]
		if a.ID != m.ID || a.LastReply != m.LastReply || a.Attempts != m.Attempts || !a.NextAttempt.Equal(m.NextAttempt) {
			t.Errorf("message %d rewritten by a nudge while down: %q, %d attempts, next %v; was %q, %d, %v",
				m.ID, a.LastReply, a.Attempts, a.NextAttempt, m.LastReply, m.Attempts, m.NextAttempt)
		}
	}
	for _, a := range after[n:] {
		if !strings.Contains(a.LastReply, strconv.Itoa(second.Port)) {
			t.Errorf("message %d queued while down: reply %q, want the dial to port %d", a.ID, a.LastReply, second.Port)
		}
	}
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	if rep, err := sender(t, st, r, "starttls", clock).pass(context.Background(), false, true); err != nil || rep != (FlushReport{Sent: n + 3}) {
		t.Errorf("nudged pass with the relay back: %+v %v", rep, err)
	}
	outboxEmpty(t, st)
}

// TestQueuedMeanwhile: messages queued while a pass sends (a mail
// client's burst of `postfach send`) go over the pass's connection, not
// over one of their own each.
func TestQueuedMeanwhile(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{startTLS: true, auth: true})
	submit(t, st, msgBcc)
	var queued []error
	r.onData = func() {
		if len(queued) > 0 {
			return
		}
		for i := range 2 {
			_, err := st.Enqueue(context.Background(), acct, index.Envelope{From: "me@example.org", To: []string{"later@example.org"}},
				strings.NewReader(strings.Replace(msgBcc, "hello", "later "+string(rune('a'+i)), 1)))
			queued = append(queued, err)
		}
	}
	flush(t, sender(t, st, r, "starttls"), FlushReport{Sent: 3})
	for _, err := range queued {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Delivered(); len(got) != 3 || len(r.conns) != 1 {
		t.Errorf("delivered %d over %d connections, want 3 over 1", len(got), len(r.conns))
	}
	outboxEmpty(t, st)
}
