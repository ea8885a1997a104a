package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
)

// TestTLS: the raw IMAP and POP3 sessions, Seed, poplib, imaplib's connection, mbsync
// and fetchmail reach a target over STARTTLS and over implicit TLS,
// trusting only the target's CAFile.
func TestTLS(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.WithTLS(testenv.TLSOn),
		testenv.User{Name: "s", Password: "pass-s"}, testenv.User{Name: "i", Password: "pass-i"})
	starttls := DovecotTarget(d, "s")
	implicit := DovecotTarget(d, "i")
	implicit.IMAP, implicit.POP3, implicit.TLS = d.IMAPSAddr(), d.POP3SAddr(), TLSImplicit
	if starttls.TLS != TLSStartTLS || starttls.CAFile == "" {
		t.Fatalf("DovecotTarget of a TLS Dovecot: %+v", starttls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	want := inboxMessages()
	for _, tg := range []Target{starttls, implicit} {
		t.Run([...]string{"none", "starttls", "implicit"}[tg.TLS], func(t *testing.T) {
			t.Parallel()
			if err := Seed(tg, ClientCorpus()); err != nil {
				t.Fatal(err)
			}
			tr, err := Exec(ctx, tg, "a1 SELECT INBOX", "a2 FETCH 1 BODY.PEEK[]")
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Records[1].Normal(); len(got) != 2 {
				t.Errorf("FETCH over TLS: %q", got)
			}
			ss, err := Sessions()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range ss {
				if s.Name != "pop3-auth" {
					continue
				}
				tr, err := RunSession(ctx, tg, s)
				if err != nil {
					t.Fatal(err)
				}
				if last := tr.Records[len(tr.Records)-2].Normal(); len(last) != 1 || !strings.HasPrefix(last[0], fmt.Sprintf("+OK %d ", len(want))) {
					t.Errorf("POP3 session over TLS: STAT after SASL PLAIN gave %q", last)
				}
			}
			pop, err := RunPoplib(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			if len(pop.Messages) != len(want) || !bytes.Equal(pop.Messages[0].Raw, want[0]) {
				t.Errorf("poplib over TLS: %d messages", len(pop.Messages))
			}
			mb, err := NewMbsync(ctx, t.TempDir(), tg)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := mb.Run(ctx); err != nil {
				t.Fatal(err, out)
			}
			folders, err := mb.Folders()
			if err != nil {
				t.Fatal(err)
			}
			if len(folders["INBOX"]) != len(want) {
				t.Errorf("mbsync over TLS: %d messages in INBOX, want %d", len(folders["INBOX"]), len(want))
			}
			fm, err := NewFetchmail(t.TempDir(), tg)
			if err != nil {
				t.Fatal(err)
			}
			run, err := fm.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Messages) != len(want) {
				t.Errorf("fetchmail over TLS: %d messages, want %d:\n%s", len(run.Messages), len(want), run.Output)
			}
		})
	}
}
