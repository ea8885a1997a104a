package index_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postfach/postfach/index"
)

// FuzzParseHeader: the header fields of the index, the Message-ID that
// identifies a message among them, are the same whether the header is read
// as stored (LF) or as a server sends it (CRLF), and with or without the
// body after it; every field but the Message-ID is valid UTF-8 and the
// Message-ID has no brackets around it.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\nSubject: =?utf-8?q?=C3=A4?=\nFrom: A <a@x>, b@y\nDate: Tue, 1 Jul 2003 10:52:37 +0200\n"), []byte("body\n"))
	f.Add([]byte("Message-Id:\n  < folded@x >\nTo: \xff\xfe\n"), []byte(""))
	f.Add([]byte("Subject: a\n b\nCc: undisclosed-recipients:;\n"), []byte("\n\nx"))
	f.Add([]byte("Message-ID: <<x>>\n"), []byte("Message-ID: <body@x>\n"))
	f.Fuzz(func(t *testing.T, hdr, body []byte) {
		if bytes.Contains(hdr, []byte("\n\n")) || bytes.HasPrefix(hdr, []byte("\n")) || bytes.Contains(hdr, []byte("\r")) {
			return // hdr is one header block, LF form
		}
		if len(hdr) > 0 && hdr[len(hdr)-1] != '\n' {
			hdr = append(hdr, '\n')
		}
		stored := append(append(bytes.Clone(hdr), '\n'), body...)
		h := index.ParseHeader(stored)
		// The Message-ID is kept byte for byte (it is an identity: two
		// invalid ones must not become one), the fields shown are UTF-8.
		for _, s := range []string{h.From, h.To, h.Cc, h.Subject} {
			if !utf8.ValidString(s) {
				t.Fatalf("ParseHeader(%q) = %+v: invalid UTF-8", stored, h)
			}
		}
		// (Spaces inside the brackets stay: "< a@b >" gives " a@b ".)
		if id := h.MessageID; strings.HasPrefix(id, "<") || strings.HasSuffix(id, ">") {
			t.Fatalf("ParseHeader(%q): Message-ID %q", stored, id)
		}
		if only := index.ParseHeader(append(bytes.Clone(hdr), '\n')); !sameHeader(only, h) {
			t.Fatalf("ParseHeader(%q) = %+v, without the body %+v", stored, h, only)
		}
		wire := bytes.ReplaceAll(append(bytes.Clone(hdr), '\n'), []byte("\n"), []byte("\r\n"))
		if w := index.ParseHeader(wire); !sameHeader(w, h) {
			t.Fatalf("ParseHeader(%q) = %+v, in CRLF form %+v", stored, h, w)
		}
	})
}

// sameHeader compares two headers, their dates as instants (each parse of
// a numeric zone makes a zone of its own).
func sameHeader(a, b index.Header) bool {
	da, db := a.Date, b.Date
	a.Date, b.Date = da.UTC(), db.UTC()
	return a == b && da.Equal(db)
}
