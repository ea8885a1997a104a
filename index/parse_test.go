package index_test

import (
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestParseHeaderSkipsBadLines: a header line that is neither a field nor
// a continuation (a blank-led first line, a line without colon, an 8-bit
// key) is left out instead of ending the header, as IMAP servers do: the
// fields around it are read, so the Message-ID found in the whole header
// is the one the server's BODY[HEADER.FIELDS (MESSAGE-ID)] gives (before,
// a blank-led first line lost every field, and sync/migrate copied such a
// message again on every run).
func TestParseHeaderSkipsBadLines(t *testing.T) {
	for _, raw := range []string{
		"  X-Indented: first line starts with a blank\r\nSubject: s\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n",
		"\tcontinued nothing\r\n more\r\nSubject: s\r\nMessage-ID: <a@b>\r\n\r\n",
		"Subject: s\r\nThis line has no colon\r\n continued\r\nMessage-ID: <a@b>\r\n\r\n",
		"Subject: s\n\xff\xfe: 8-bit key\nMessage-ID: <a@b>\n\n",
		"Subject: s\r\n: empty key\r\nX: ok\r\n folded\r\nMessage-ID: <a@b>\r\n",
	} {
		h := index.ParseHeader([]byte(raw))
		if h.MessageID != "a@b" || h.Subject != "s" {
			t.Errorf("%q: Message-ID %q, Subject %q; want a@b, s", raw, h.MessageID, h.Subject)
		}
		if fields := index.ParseHeader([]byte("Message-ID: <a@b>\r\n\r\n")); fields.MessageID != h.MessageID {
			t.Errorf("%q: %q from the whole header, %q from the field alone", raw, h.MessageID, fields.MessageID)
		}
	}
	// The body is not the header: a bad line after the blank line does not
	// matter, and fields there are not read.
	if h := index.ParseHeader([]byte("Subject: s\r\n\r\nno colon\r\nMessage-ID: <body@x>\r\n")); h.MessageID != "" || h.Subject != "s" {
		t.Errorf("fields read from the body: %+v", h)
	}
}

// TestGroupNames: an address field's groups are searchable by name: the
// column keeps the groups' names ("Team:") before the members (the parsed
// list has only the members); a colon in a quoted name, a comment or an
// address is no group.
func TestGroupNames(t *testing.T) {
	for _, c := range []struct {
		cc, prefix string
	}{
		{`Team: a@example.org, "Bo: b" <b@example.org>;`, "Team:"},
		{`"Big Team": ;, c@example.org, Ops (the: ops): d@example.org;`, "Big Team: Ops (the: ops):"},
		{`"x:y" <x@example.org>, d@example.org`, "x:y <x@example.org>"},
		{`a@example.org`, "<a@example.org>"},
	} {
		h := index.ParseHeader([]byte("From: z@example.org\r\nCc: " + c.cc + "\r\nSubject: x\r\n\r\nbody\r\n"))
		if !strings.HasPrefix(h.Cc, c.prefix) {
			t.Errorf("Cc: %s: column %q, want it to begin with %q", c.cc, h.Cc, c.prefix)
		}
	}
}
