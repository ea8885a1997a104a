package main

import (
	"strings"
	"testing"
	"time"
)

// TestSendMboxFromLineAddsFields: a message handed over with an mbox
// "From " first line and no Date or Message-ID field is queued: the line
// is dropped before the missing fields are added above the header (which
// would otherwise make it a malformed header line).
func TestSendMboxFromLineAddsFields(t *testing.T) {
	cfg := sendConfig(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	msg := "From me@work.example Sat Dec  5 12:00:00 2026\nFrom: me@work.example\nTo: a@example.org\nSubject: cron\n\nbody\n"
	p, err := prepareMessage(cfg, &sendOptions{headerRcpts: true}, []byte(msg), now)
	if err != nil {
		t.Fatalf("prepareMessage: %v", err)
	}
	data := string(p.data)
	head, rest, ok := strings.Cut(data, "From: me@work.example\r\n")
	if !ok || rest != "To: a@example.org\r\nSubject: cron\r\n\r\nbody\r\n" {
		t.Fatalf("stored message %q, want the original header and body after the added fields", data)
	}
	if !strings.HasPrefix(head, "Date: Sat, 05 Dec 2026 12:00:00 +0000\r\nMessage-ID: <") || strings.Count(head, "\r\n") != 2 {
		t.Errorf("added fields %q, want Date and Message-ID, and no mbox line", head)
	}
	if p.account != "work" || p.env.From != "me@work.example" || len(p.env.To) != 1 || p.env.To[0] != "a@example.org" {
		t.Errorf("account %q envelope %+v, want work, me@work.example -> a@example.org", p.account, p.env)
	}
}
