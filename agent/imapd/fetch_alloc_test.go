package imapd

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
)

// TestFetchHeadersGarbage: a header FETCH, as Thunderbird makes 200
// messages at a time on its first sync, allocates a few KiB per message,
// not a copy buffer per file read (io.Copy's 32 KiB: with 10 clients
// syncing a 100,000-message store that was 100 MB/s of garbage, and the
// agent's heap overshot to 200 MB between collections). The bound is
// per message, for the server and this test's client together, which
// run in one process.
func TestFetchHeadersGarbage(t *testing.T) {
	const messages = 200
	st, folders := testStore(t, "INBOX")
	d, err := st.Dir(*folders["INBOX"])
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("Some text of the message, long enough to matter.\n", 40) // 2 KB, the bench corpus's size
	var batch index.Batch
	for i := range messages {
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "From: a@example.org\nTo: b@example.org\nSubject: message %d\nMessage-ID: <%d@test>\nDate: Tue, 3 Nov 2026 10:20:30 +0000\n\n%s", i, i, body)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		a := &index.Arrival{Folder: folders["INBOX"], File: w}
		a.Row.UID = uint32(i + 1)
		a.Row.Header = index.ParseHeader(w.Header())
		a.Row.InternalDate = time.Date(2026, 11, 3, 10, 20, 30, 0, time.UTC)
		a.Row.DeferText = true
		batch.Arrivals = append(batch.Arrivals, a)
	}
	if err := st.Deliver(context.Background(), &batch); err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, st)
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true, Specifier: imap.PartSpecifierHeader,
			HeaderFields: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "References", "In-Reply-To", "Content-Type"}}}}
	fetch := func() {
		t.Helper()
		got, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != messages {
			t.Fatalf("FETCH answered for %d messages, want %d", len(got), messages)
		}
		for i, m := range got {
			want := fmt.Sprintf("From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@test>\r\nDate: Tue, 3 Nov 2026 10:20:30 +0000\r\n\r\n", i, i)
			if h := string(m.FindBodySection(opts.BodySection[0])); h != want {
				t.Fatalf("message %d: header %q, want %q", i+1, h, want)
			}
		}
	}
	fetch() // warm: statements prepared, buffers made
	const rounds = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		fetch()
	}
	runtime.ReadMemStats(&after)
	perMessage := (after.TotalAlloc - before.TotalAlloc) / (rounds * messages)
	t.Logf("%d bytes allocated per message fetched", perMessage)
	if perMessage > garbageLimit {
		t.Errorf("a header FETCH allocates %d bytes per message, want at most %d KiB", perMessage, garbageLimit>>10)
	}
}
