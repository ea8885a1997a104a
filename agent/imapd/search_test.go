package imapd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEndpointSearch: sequence numbers in SEARCH are turned into local
// UIDs for the index; ESEARCH's return options; SAVE and "$".
func TestEndpointSearch(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	for i := range 5 {
		deliver(t, st, fs["INBOX"], uint32(50+i), fmt.Sprintf("Subject: %s %d\r\n\r\nx\r\n", []string{"odd", "even"}[i%2], i), 0)
	}
	_, addr := startServer(t, st)
	c := dialT(t, addr, "c")
	c.must("STORE 2 +FLAGS.SILENT (\\Deleted)")
	c.must("EXPUNGE") // UIDs 1 3 4 5 at sequence numbers 1 to 4
	same := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	same("SEARCH", c.must("SEARCH SUBJECT odd"), "* SEARCH 1 2 4")
	same("UID SEARCH", c.must("UID SEARCH SUBJECT odd"), "* SEARCH 1 3 5")
	same("SEARCH 2:3", c.must("SEARCH 2:3"), "* SEARCH 2 3")
	same("SEARCH NOT 2:*", c.must("SEARCH NOT 2:*"), "* SEARCH 1")
	same("SEARCH OR", c.must("SEARCH OR 1 SUBJECT even"), "* SEARCH 1 3")
	same("ESEARCH", c.must("UID SEARCH RETURN (MIN MAX COUNT) ALL"), fmt.Sprintf(`* ESEARCH (TAG "t%d") UID MIN 1 MAX 5 COUNT 4`, c.n))
	// (go-imap answers a lone SAVE with ESEARCH ALL, where RFC 5182 wants
	// nothing: the library writes it, not the session.)
	c.must("SEARCH RETURN (SAVE) SUBJECT even")
	same("FETCH $", c.must("FETCH $ (UID)"), "* 3 FETCH (UID 4)")
	same("SEARCH *", c.must("SEARCH *"), "* SEARCH 4")
	same("UID SEARCH UID *", c.must("UID SEARCH UID 9:*"), "* SEARCH 5")
}

// TestEndpointSearchPrepared: SEARCH finds by keys that need what the
// index computes after delivery (full-text entries, the IMAP view): body
// words, BCC, any header, the Date header's day, right after delivery.
func TestEndpointSearchPrepared(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	for _, raw := range []string{
		"Date: Thu, 7 Mar 2024 12:00:00 +0000\r\nBcc: dave@example.org\r\nX-Ticket: T-42\r\nSubject: a\r\n\r\nthe quarterly figures\r\n",
		"Date: Fri, 8 Mar 2024 12:00:00 +0000\r\nSubject: b\r\n\r\nnothing here\r\n",
	} {
		// As a client's APPEND or a sync stores it: full text deferred.
		if _, err := st.Append(context.Background(), fs["INBOX"].ID, strings.NewReader(raw), 0, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	_, addr := startServer(t, st)
	c := dialT(t, addr, "c")
	for _, q := range []string{`BODY "quarterly"`, `TEXT "figures"`, `BCC "dave"`, `HEADER X-Ticket "T-42"`, `SENTBEFORE 8-Mar-2024`} {
		if got := c.must("SEARCH %s", q); !slices.Equal(got, []string{"* SEARCH 1"}) {
			t.Errorf("SEARCH %s: %q, want message 1", q, got)
		}
	}
}
