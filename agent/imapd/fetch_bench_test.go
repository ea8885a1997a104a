package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
)

// BenchmarkFetchEach measures what mbsync's initial pull costs the
// endpoint: one UID FETCH (BODY.PEEK[]) per message, pipelined.
//
//	go test -run '^$' -bench FetchEach -benchtime 2000x ./agent/imapd/
func BenchmarkFetchEach(b *testing.B) {
	const messages = 2000
	c := benchMailbox(b, messages)
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	b.ResetTimer()
	const window = 50 // commands in flight, as mbsync pipelines
	var cmds []*imapclient.FetchCommand
	for i := range b.N {
		uid := imap.UID(i%messages + 1)
		cmds = append(cmds, c.Fetch(imap.UIDSetNum(uid), opts))
		if len(cmds) == window {
			if _, err := cmds[0].Collect(); err != nil {
				b.Fatal(err)
			}
			cmds = cmds[1:]
		}
	}
	for _, cmd := range cmds {
		if _, err := cmd.Collect(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResync measures what mbsync's resync costs the endpoint: SELECT
// and UID FETCH 1:* (UID FLAGS) of a 2,000-message mailbox.
//
//	go test -run '^$' -bench Resync ./agent/imapd/
func BenchmarkResync(b *testing.B) {
	c := benchMailbox(b, 2000)
	opts := &imap.FetchOptions{UID: true, Flags: true}
	b.ResetTimer()
	for range b.N {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			b.Fatal(err)
		}
		msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil || len(msgs) != 2000 {
			b.Fatal(len(msgs), err)
		}
	}
}

// benchMailbox is a logged-in client with INBOX of a store of messages
// selected.
func benchMailbox(b *testing.B, messages int) *imapclient.Client {
	st, folders := testStore(b, "INBOX")
	d, err := st.Dir(*folders["INBOX"])
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("Some text of the message, long enough to matter.\n", 80)
	var batch index.Batch
	for i := range messages {
		w, err := d.NewDelivery()
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(w, "From: a@example.org\nTo: b@example.org\nSubject: message %d\nMessage-ID: <%d@bench>\nDate: Tue, 3 Nov 2026 10:20:30 +0000\n\n%s", i, i, body)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		a := &index.Arrival{Folder: folders["INBOX"], File: w}
		a.Row.UID = uint32(i + 1)
		a.Row.Header = index.ParseHeader(w.Header())
		a.Row.InternalDate = time.Date(2026, 11, 3, 10, 20, 30, 0, time.UTC)
		a.Row.DeferText = true
		batch.Arrivals = append(batch.Arrivals, a)
	}
	if err := st.Deliver(context.Background(), &batch); err != nil {
		b.Fatal(err)
	}
	_, addr := startServer(b, st)
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}
