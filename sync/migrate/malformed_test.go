package migrate_test

import (
	"bytes"
	"context"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/migrate"
	"github.com/postfach/postfach/sync/pop3"
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
func bodies(t *testing.T, e *env, user string) [][]byte { return bodiesOf(t, e, user, "INBOX") }

// bodiesOf returns the messages (BODY[]) of user's folder sorted by their
// bytes.
func bodiesOf(t *testing.T, e *env, user, folder string) [][]byte {
	t.Helper()
	c := e.d.Client(t, user)
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
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

// TestMalformedMigrateFromPOP3: the same corpus fetched over POP3 (which,
// unlike Dovecot's IMAP, sends NUL as it is and adds a CRLF to a message
// without a final line end) and migrated into bob's IMAP account: each
// copied once, and bob's server holds what it makes of each stored file
// sent with CRLF line ends: the same bytes APPENDed by the test to a
// reference folder and fetched back. A second run copies nothing.
func TestMalformedMigrateFromPOP3(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seeded := e.d.SeedMalformed(t, alice.Name, "INBOX")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fres, err := pop3.Fetch(ctx, pop3.FetchOptions{
		Account: "alicepop", Root: e.root, Index: e.st,
		Addr: e.d.POP3Addr(), TLS: pop3.TLSNone, Username: alice.Name, Password: alice.Password,
		Keep: true, Timeout: 30 * time.Second,
	})
	if err != nil || fres.New != len(seeded) {
		t.Fatalf("POP3 fetch: %+v, %v; want %d new", fres, err, len(seeded))
	}

	o := e.options()
	o.Source = "alicepop"
	rep, err := migrate.Run(ctx, o)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	tot := rep.Totals()
	if tot.Copied != len(seeded) || tot.Missing != 0 || tot.Extra != 0 || tot.Failed != 0 || len(tot.Damaged) != 0 || !rep.Complete() {
		t.Errorf("first run: %+v, want %d copied and nothing missing", tot, len(seeded))
	}

	// The reference: each stored file in wire form, APPENDed by the test.
	p, err := maildir.FolderDir(e.root, "alicepop", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	d := &maildir.Dir{Path: p}
	files, err := d.Scan()
	if err != nil {
		t.Fatal(err)
	}
	c := e.d.Client(t, alice.Name)
	if err := c.Create("Ref", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		stored, err := os.ReadFile(d.FilePath(f))
		if err != nil {
			t.Fatal(err)
		}
		var wire bytes.Buffer
		maildir.NewCRLFWriter(&wire).Write(stored)
		cmd := c.Append("Ref", int64(wire.Len()), nil)
		cmd.Write(wire.Bytes())
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	want, got := bodiesOf(t, e, alice.Name, "Ref"), bodiesOf(t, e, bob.Name, "INBOX")
	if len(want) != len(seeded) || len(got) != len(seeded) {
		t.Fatalf("reference %d messages, bob %d; want %d each", len(want), len(got), len(seeded))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Errorf("bob's messages are not the stored files as sent (first difference in the %d-th smallest: %d and %d bytes)", i, len(want[i]), len(got[i]))
			break
		}
	}

	rep, err = migrate.Run(ctx, o)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if tot := rep.Totals(); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 || !rep.Complete() {
		t.Errorf("second run: %+v, want nothing copied", tot)
	}
}
