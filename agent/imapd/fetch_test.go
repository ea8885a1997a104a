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
