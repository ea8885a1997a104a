package pop3_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/pop3"
)

// TestMalformedPOP3: every kind of the malformed corpus (internal/corpus)
// is fetched from a real Dovecot over POP3 and stored byte for byte
// (CRLF as LF), without a failure or a stall, the three messages sharing
// one Message-ID with different content all kept; a second run fetches
// nothing; the full-text index then takes them all and finds each marker
// the message's Subject or text carries.
//
// What Dovecot's RETR sends is the reference. It is checked against what
// its IMAP serves of the same message (testenv.SeedMalformed, which
// already accounts for bare LF and bare CR): the differences allowed are
// the CRLF POP3 adds to a message that does not end with a line end (see
// TestDovecot), and NUL, which POP3 sends as it is and IMAP as 0x80.
func TestMalformedPOP3(t *testing.T) {
	user := testenv.User{Name: "malformed", Password: "malformed-pass"}
	d := testenv.StartDovecot(t, user)
	seeded := d.SeedMalformed(t, user.Name, "INBOX")
	want := serverMessages(t, d.POP3Addr(), user.Name, user.Password)
	if len(want) != len(seeded) {
		t.Fatalf("POP3 lists %d messages, want %d", len(want), len(seeded))
	}
	order := uidlOrder(t, d.POP3Addr(), user.Name, user.Password)
	stored := map[string][]byte{} // kind -> what the store must hold
	for i, s := range seeded {
		got := want[order[i]]
		served := s.Server
		if bytes.IndexByte(s.Raw, 0) >= 0 {
			// Dovecot keeps a NUL; its IMAP shows it as 0x80, its POP3
			// sends it as it is (these kinds have CRLF line ends only).
			served = s.Raw
		}
		if !bytes.HasSuffix(served, []byte("\n")) {
			served = append(bytes.Clone(served), '\r', '\n')
		}
		if !bytes.Equal(got, served) {
			t.Errorf("%s: POP3 sends %d bytes, IMAP %d\n%q\n%q", s.Name, len(got), len(s.Server), got, s.Server)
		}
		stored[s.Name] = bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n"))
	}

	e := newFetchEnv(t, d, user)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res := e.fetch(ctx, e.opts())
	if res.New != len(seeded) || res.Failed != 0 || res.Skipped != 0 {
		t.Errorf("first run: %+v, want %d new", *res, len(seeded))
	}
	e.check(want) // each UIDL's file is its RETR with CRLF as LF, one row each
	res = e.fetch(ctx, e.opts())
	if res.New != 0 || res.Recovered != 0 {
		t.Errorf("second run: %+v, want nothing new", *res)
	}
	e.check(want)

	start := time.Now()
	n, err := e.st.IndexPending(ctx, e.root, nil)
	if err != nil {
		t.Fatalf("IndexPending: %v", err)
	}
	t.Logf("indexed %d messages in %v", n, time.Since(start))
	testenv.CheckMalformedSearch(t, e.st, map[string]map[string][]byte{"INBOX": stored})
}

// uidlOrder returns the UIDLs in message-number order.
func uidlOrder(t *testing.T, addr, user, pass string) []string {
	t.Helper()
	c, err := pop3.Dial(t.Context(), addr, &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(t.Context(), user, pass); err != nil {
		t.Fatal(err)
	}
	list, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(list))
	for i, m := range list {
		if m.Num != i+1 {
			t.Fatalf("UIDL line %d is message %d", i+1, m.Num)
		}
		out[i] = m.UID
	}
	c.Quit()
	return out
}
