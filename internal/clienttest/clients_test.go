package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// seededPair gives two fresh Dovecot accounts (on two instances) holding
// ClientCorpus.
func seededPair(t *testing.T) (ref, target Target) {
	t.Helper()
	ref, target = DovecotEndpoint(t, 1)(t), DovecotEndpoint(t, 1)(t)
	for _, tg := range []Target{ref, target} {
		if err := Seed(tg, ClientCorpus()); err != nil {
			t.Fatal(err)
		}
	}
	return ref, target
}

// inboxRaw is the raw bytes of ClientCorpus's INBOX by UID (as seeded in
// order into an empty INBOX).
func inboxRaw() map[string][]byte {
	out := map[string][]byte{}
	n := 0
	for _, m := range ClientCorpus() {
		if m.Folder == "INBOX" {
			n++
			out[fmt.Sprint(n)] = m.Raw
		}
	}
	return out
}

// TestIMAPLib: imaplib sees the same on two Dovecots (after
// normalisation), gets every message byte for byte through BODY[],
// BODY[HEADER]+BODY[TEXT] and the partial, and is told of a message
// appended during IDLE.
func TestIMAPLib(t *testing.T) {
	ref, target := seededPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type res struct {
		run *IMAPLibRun
		err error
	}
	ch := make(chan res, 1)
	go func() { r, err := RunIMAPLib(ctx, ref); ch <- res{r, err} }()
	got, err := RunIMAPLib(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	want := <-ch
	if want.err != nil {
		t.Fatal(want.err)
	}
	for _, r := range []*IMAPLibRun{want.run, got} {
		if r.Err != "" {
			t.Fatalf("imaplib script stopped: %s", r.Err)
		}
	}
	if diffs := CompareClientSteps(want.run.Steps, got.Steps); len(diffs) > 0 {
		t.Errorf("imaplib saw different things on two Dovecots:\n%s", strings.Join(diffs, "\n"))
	}

	raw := inboxRaw()
	bodies := got.Step("fetch (UID BODY.PEEK[])").Items("BODY[]")
	heads := got.Step("fetch (UID BODY.PEEK[HEADER])").Items("BODY[HEADER]")
	texts := got.Step("fetch (UID BODY.PEEK[TEXT])").Items("BODY[TEXT]")
	parts := got.Step("fetch (UID BODY.PEEK[]<0.100>)").Items("BODY[]<0>")
	if len(bodies) != len(raw) {
		t.Errorf("BODY[] of %d messages, want %d", len(bodies), len(raw))
	}
	for uid, want := range raw {
		if !bytes.Equal(bodies[uid], want) {
			t.Errorf("UID %s: BODY[] differs from the message seeded (%d bytes, want %d)", uid, len(bodies[uid]), len(want))
		}
		if hb := append(append([]byte(nil), heads[uid]...), texts[uid]...); !bytes.Equal(hb, want) {
			t.Errorf("UID %s: BODY[HEADER] + BODY[TEXT] differ from the message seeded", uid)
		}
		if !bytes.Equal(parts[uid], want[:100]) {
			t.Errorf("UID %s: BODY[]<0.100> = %q, want %q", uid, parts[uid], want[:100])
		}
	}
	archive := got.Step("fetch Archive").Items("BODY[]")
	found := false
	for _, b := range archive {
		found = found || bytes.Equal(b, AppendedMessage())
	}
	if !found {
		t.Errorf("the message appended to Archive is not in Archive byte for byte (%d messages there)", len(archive))
	}
	if idle := strings.Join(got.Step("idle").Normal, "\n"); !strings.Contains(idle, "EXISTS") {
		t.Errorf("IDLE was not told of the appended message:\n%s", idle)
	}
}
