package migrate_test

import (
	"bytes"
	"context"
	"sort"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/sync/migrate"
)

// TestMalformedMigrate: every kind of the malformed corpus (internal/
// corpus), pulled from alice's Dovecot account into the store, is copied
// into bob's without a failure or a stall, the three messages sharing one
// Message-ID with different content each copied; bob's server then holds
// exactly alice's bytes (each Dovecot alteration, see
// testenv.SeedMalformed, happened already on the way into alice's
// account, and Dovecot serves the altered form back unchanged), and a
// second run copies nothing.
func TestMalformedMigrate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seeded := e.d.SeedMalformed(t, alice.Name, "INBOX")
	e.pull()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := runCtx(ctx, e)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Logf("copied in %v", time.Since(start))
	tot := rep.Totals()
	if tot.Copied != len(seeded) || tot.Missing != 0 || tot.Extra != 0 || tot.Differ != 0 || tot.Failed != 0 ||
		len(tot.Damaged) != 0 || !rep.Complete() {
		t.Errorf("first run: %+v, want %d copied and nothing missing", tot, len(seeded))
	}
	sameMailboxes(t, mailbox(t, e.d, alice.Name), mailbox(t, e.d, bob.Name), nil)

	// Byte for byte: bob's messages are alice's, as a multiset.
	src, dest := bodies(t, e, alice.Name), bodies(t, e, bob.Name)
	if len(src) != len(seeded) || len(dest) != len(seeded) {
		t.Fatalf("alice has %d messages, bob %d; want %d each", len(src), len(dest), len(seeded))
	}
	for i := range src {
		if !bytes.Equal(src[i], dest[i]) {
			t.Errorf("bob's messages are not alice's bytes (first difference in the %d-th smallest: %d and %d bytes)", i, len(src[i]), len(dest[i]))
			break
		}
	}
	for _, s := range seeded {
		found := false
		for _, b := range dest {
			found = found || bytes.Equal(b, s.Server)
		}
		if !found {
			t.Errorf("%s: not on bob's server as alice's server holds it", s.Name)
		}
	}
	dups := 0
	for _, b := range dest {
		if bytes.Contains(b, []byte("<"+corpus.DupMessageID+">")) {
			dups++
		}
	}
	if dups != 3 {
		t.Errorf("bob has %d messages with Message-ID %s, want the 3 different ones", dups, corpus.DupMessageID)
	}

	rep, err = runCtx(ctx, e)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if tot := rep.Totals(); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 || !rep.Complete() {
		t.Errorf("second run: %+v, want nothing copied", tot)
	}
}

func runCtx(ctx context.Context, e *env) (*migrate.Report, error) {
	return migrate.Run(ctx, e.options())
}

// bodies returns user's INBOX messages (BODY[]) sorted by their bytes.
func bodies(t *testing.T, e *env, user string) [][]byte {
	t.Helper()
	c := e.d.Client(t, user)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.FindBodySection(section)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}
