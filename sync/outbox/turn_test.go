package outbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// waitFor polls cond until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after %s: %s", limit, what)
		}
	}
}

// TestSyncRunDoesNotStallSending: while a sync run of the account holds
// its turn (minutes, for a first sync), passes still send: the copies
// to Sent wait, recorded, and are filed (once each, byte for byte) by
// Run once the run is over, without a nudge.
func TestSyncRunDoesNotStallSending(t *testing.T) {
	defer func(d time.Duration) { followupRetry = d }(followupRetry)
	followupRetry = 100 * time.Millisecond
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	var id index.AccountID
	if err := st.Write(context.Background(), func(tx *index.Tx) error {
		var err error
		id, err = tx.EnsureAccount(acct)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	release := st.SyncTurn(id) // a sync run of the account is under way
	defer release()
	s := sender(t, st, r, "none")
	submit(t, st, msgBcc)
	done := make(chan FlushReport, 1)
	go func() { rep, _ := s.Flush(context.Background()); done <- rep }()
	select {
	case rep := <-done:
		if rep != (FlushReport{Sent: 1}) {
			t.Errorf("Flush during a sync run: %+v, want the message sent", rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Flush waits for the sync run's turn (10 s)")
	}
	if got := folderMessages(t, st, "Sent"); len(got) != 0 {
		t.Errorf("a copy was filed in Sent during the sync run: %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { s.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	submit(t, st, "From: ann@example.org\nTo: zed@example.org\nSubject: second\nMessage-ID: <2@example.org>\n\nx\n")
	s.Nudge()
	waitFor(t, 10*time.Second, "the second message is not sent during the sync run", func() bool { return len(r.Delivered()) == 2 })
	release() // the sync run ends
	waitFor(t, 10*time.Second, "the copies are not filed after the sync run", func() bool { return len(folderMessages(t, st, "Sent")) == 2 })
	got := folderMessages(t, st, "Sent")
	if got[0] != wire || got[1] != "From: ann@example.org\r\nTo: zed@example.org\r\nSubject: second\r\nMessage-ID: <2@example.org>\r\n\r\nx\r\n" {
		t.Errorf("Sent holds %q", got)
	}
	waitFor(t, 10*time.Second, "the outbox keeps the sent files", func() bool {
		es, err := os.ReadDir(filepath.Join(st.Root(), ".postfach", "outbox", "cur"))
		return err == nil && len(es) == 0
	})
}

// TestFilingErrorKeepsSending: a copy to Sent that cannot be filed (here
// a file where the Sent folder's Maildir goes) does not stop the
// account's sending; the copies stay recorded and are filed, once each,
// when filing works again.
func TestFilingErrorKeepsSending(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	s := sender(t, st, r, "none")
	dir, err := maildir.FolderDir(st.Root(), acct, "Sent")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	submit(t, st, msgBcc)
	if rep, err := s.Flush(context.Background()); rep != (FlushReport{Sent: 1}) || err == nil {
		t.Errorf("Flush: %+v %v, want the message sent and the filing error", rep, err)
	}
	const second = "From: ann@example.org\nTo: zed@example.org\nSubject: second\n\nx\n"
	submit(t, st, second)
	if rep, _ := s.Flush(context.Background()); rep != (FlushReport{Sent: 1}) {
		t.Errorf("Flush after a filing error: %+v, want the second message sent", rep)
	}
	if n := len(r.Delivered()); n != 2 {
		t.Fatalf("relay got %d messages, want 2", n)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	flush(t, s, FlushReport{})
	got := folderMessages(t, st, "Sent")
	if len(got) != 2 || got[0] != wire || got[1] != strings.ReplaceAll(second, "\n", "\r\n") {
		t.Errorf("Sent holds %q, want the two copies", got)
	}
	outboxEmpty(t, st)
}

// TestMissingFileStillFilesNotice: a message whose file is gone when its
// follow-ups are filed gets no copy in Sent, but its failure notice is
// filed and its follow-ups are cleared (not left pending for ever).
func TestMissingFileStillFilesNotice(t *testing.T) {
	st := newStore(t)
	r := startRelay(t, relayOpts{})
	r.Reject("carl@example.org", 550)
	var id index.AccountID
	if err := st.Write(context.Background(), func(tx *index.Tx) error {
		var err error
		id, err = tx.EnsureAccount(acct)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	release := st.SyncTurn(id) // keeps the follow-ups recorded
	s := sender(t, st, r, "none")
	m := submit(t, st, msgBcc)
	flush(t, s, FlushReport{Failed: 1})
	release()
	if err := os.Remove(m.Path); err != nil {
		t.Fatal(err)
	}
	flush(t, s, FlushReport{})
	if got := folderMessages(t, st, "Sent"); len(got) != 0 {
		t.Errorf("Sent holds %q, want nothing (the file was gone)", got)
	}
	inbox := folderMessages(t, st, "INBOX")
	if len(inbox) != 1 || !strings.Contains(inbox[0], "Subject: Undelivered mail: hello\r\n") ||
		!strings.Contains(inbox[0], "<carl@example.org>: 550 5.1.1 rejected carl@example.org") {
		t.Errorf("INBOX holds %q, want the failure notice for carl", inbox)
	}
	if ls := listed(t, st); len(ls) != 1 || ls[0].Followups != 0 || ls[0].State != index.OutboxFailedState {
		t.Errorf("outbox lists %+v, want the failed message with no follow-ups left", ls)
	}
}
