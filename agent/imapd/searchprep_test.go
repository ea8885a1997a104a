package imapd

import (
	"slices"
	"testing"
)

// TestEndpointSearchNewMail: SEARCH finds messages as the sync stores
// them (through Deliver: no IMAP view computed yet, full-text entry
// pending) by the keys that read the view or the full-text index:
// HEADER Message-ID (how clients find a message again: the end-to-end
// test of `postfach run` does), BCC, SENTSINCE, LARGER, TEXT and BODY.
func TestEndpointSearchNewMail(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	deliver(t, st, fs["INBOX"], 10, "Message-ID: <a@example.org>\r\nDate: Tue, 3 Nov 2026 10:00:00 +0000\r\nSubject: one\r\n\r\nnothing here\r\n", 0)
	deliver(t, st, fs["INBOX"], 11, "Message-ID: <b@example.org>\r\nDate: Wed, 4 Nov 2026 10:00:00 +0000\r\nBcc: hidden@example.org\r\nSubject: two\r\n\r\nthe quokka parade, padded to be the larger message\r\n", 0)
	_, addr := startServer(t, st)
	c := dialT(t, addr, "c")
	for _, q := range []string{
		`UID SEARCH HEADER Message-ID "<b@example.org>"`,
		`UID SEARCH BCC hidden`,
		`UID SEARCH SENTSINCE 4-Nov-2026`,
		`UID SEARCH LARGER 100`,
		`UID SEARCH TEXT quokka`,
		`UID SEARCH BODY parade`,
	} {
		if got := c.must("%s", q); !slices.Equal(got, []string{"* SEARCH 2"}) {
			t.Errorf("%s: %q, want the second message (UID 2)", q, got)
		}
	}
}
