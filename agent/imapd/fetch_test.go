package imapd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// TestEndpointLargeMessage: a message too large to be held in memory is
// streamed from its file, whole and in windows, byte for byte.
func TestEndpointLargeMessage(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	var b strings.Builder
	b.WriteString("Subject: large\r\nContent-Type: text/plain\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "line %d of a long message, with some text to fill it up\r\n", i)
	}
	raw := b.String()
	deliver(t, st, fs["INBOX"], 1, raw, 0)
	_, addr := startServer(t, st)
	var out map[string]any
	python(t, "big.py", addr, &out)
	sum := func(s string) []any {
		h := sha256.Sum256([]byte(s))
		return []any{hex.EncodeToString(h[:]), float64(len(s))}
	}
	hdr := strings.Index(raw, "\r\n\r\n") + 4
	want := map[string]any{
		"BODY.PEEK[]":                   sum(raw),
		"BODY.PEEK[TEXT]":               sum(raw[hdr:]),
		"BODY.PEEK[HEADER]":             sum(raw[:hdr]),
		"BODY.PEEK[]<1000000.5000>":     sum(raw[1000000:1005000]),
		"BODY.PEEK[TEXT]<10.100000000>": sum(raw[hdr+10:]),
		"BODY.PEEK[1]":                  sum(raw[hdr:]),
		"RFC822.SIZE":                   fmt.Sprintf("1 (UID 1 RFC822.SIZE %d)", len(raw)),
	}
	for k, w := range want {
		if fmt.Sprint(out[k]) != fmt.Sprint(w) {
			t.Errorf("%s: %v, want %v", k, out[k], w)
		}
	}
}

// TestSeqBeyondMailbox: a sequence number beyond the client's view of the
// mailbox, or "*" in an empty one, is answered BAD (RFC 3501/9051 seq-
// number); a message another session expunged that this one has not
// been told of yet may still be named.
func TestSeqBeyondMailbox(t *testing.T) {
	st, fs := testStore(t, "INBOX", "Empty")
	deliver(t, st, fs["INBOX"], 50, "Subject: one\r\n\r\nx\r\n", 0)
	deliver(t, st, fs["INBOX"], 51, "Subject: two\r\n\r\ny\r\n", 0)
	_, addr := startServer(t, st)
	a, b := dialT(t, addr, "a"), dialT(t, addr, "b")
	for _, cmd := range []string{"FETCH 3 FLAGS", "FETCH 1:3 FLAGS", "STORE 99 +FLAGS (\\Seen)", "COPY 3 Empty", "MOVE 3 Empty"} {
		if _, status := a.cmd("", "%s", cmd); !strings.HasPrefix(status, "BAD") {
			t.Errorf("%s: %q, want BAD", cmd, status)
		}
	}
	for _, cmd := range []string{"FETCH 2 FLAGS", "FETCH 1:* FLAGS", "UID FETCH 99 FLAGS"} {
		if _, status := a.cmd("", "%s", cmd); !strings.HasPrefix(status, "OK") {
			t.Errorf("%s: %q, want OK", cmd, status)
		}
	}
	b.must("STORE 2 +FLAGS.SILENT (\\Deleted)")
	b.must("EXPUNGE")
	if _, status := a.cmd("", "FETCH 2 FLAGS"); !strings.HasPrefix(status, "OK") {
		t.Errorf("FETCH 2 while its expunge is not sent yet: %q, want OK", status)
	}
	a.must("NOOP")
	if _, status := a.cmd("", "FETCH 2 FLAGS"); !strings.HasPrefix(status, "BAD") {
		t.Errorf("FETCH 2 after its expunge was sent: %q, want BAD", status)
	}
	e := dialLogin(t, addr, "e")
	e.must("SELECT Empty")
	if _, status := e.cmd("", "FETCH * FLAGS"); !strings.HasPrefix(status, "BAD") {
		t.Errorf("FETCH * in an empty mailbox: %q, want BAD", status)
	}
}

// TestExaminePermanentFlags: EXAMINE names no permanent flag (nothing
// may be changed, RFC 9051 6.3.3; RFC 3501 7.1), SELECT names the system
// flags and \* (any keyword).
func TestExaminePermanentFlags(t *testing.T) {
	st, _ := testStore(t, "INBOX")
	_, addr := startServer(t, st)
	c := dialLogin(t, addr, "c")
	has := func(lines []string, want string) bool {
		for _, l := range lines {
			if strings.HasPrefix(l, want) {
				return true
			}
		}
		return false
	}
	if u := c.must("EXAMINE INBOX"); !has(u, "* OK [PERMANENTFLAGS ()]") {
		t.Errorf("EXAMINE: %q, want PERMANENTFLAGS ()", u)
	}
	if u := c.must("SELECT INBOX"); !has(u, `* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Forwarded \*)]`) {
		t.Errorf("SELECT: %q, want the system flags, $Forwarded and \\*", u)
	}
}

// TestFetchReadAhead: rows a body-only FETCH read ahead never answer for
// what can change. Session A fetches message 1's body (reading ahead the
// rows of 2 and 3); B then flags message 2 and expunges message 3. A's
// FETCH of 2's FLAGS shows B's flag, and its FETCH of 3's body leaves the
// expunged message out rather than serving it from the stale row.
func TestFetchReadAhead(t *testing.T) {
	st, folders := testStore(t, "INBOX")
	for i := 1; i <= 3; i++ {
		deliver(t, st, folders["INBOX"], uint32(i), fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i), 0)
	}
	_, addr := startServer(t, st)
	a := dialT(t, addr, "A")
	a.raw = true
	if u := a.must("UID FETCH 1 (BODY.PEEK[])"); !strings.Contains(strings.Join(u, "\n"), "body 1") {
		t.Fatalf("FETCH 1: %q", u)
	}
	b := dialT(t, addr, "B")
	b.must(`UID STORE 2 +FLAGS (\Flagged)`)
	b.must(`UID STORE 3 +FLAGS (\Deleted)`)
	b.must("EXPUNGE")

	u := a.must("UID FETCH 2 (FLAGS BODY.PEEK[])")
	var resp string // the response to the FETCH (B's flag may also come before it, unsolicited)
	for _, l := range u {
		if strings.Contains(l, "BODY[]") {
			resp = l
		}
	}
	if !strings.Contains(resp, `\Flagged`) || !strings.Contains(strings.Join(u, "\n"), "body 2") {
		t.Errorf("FETCH 2 after B flagged it: %q, want \\Flagged in %q and its body", u, resp)
	}
	for _, l := range a.must("UID FETCH 3 (BODY.PEEK[])") {
		if strings.Contains(l, "body 3") {
			t.Errorf("FETCH 3 after B expunged it served its body: %q", l)
		}
	}
}
