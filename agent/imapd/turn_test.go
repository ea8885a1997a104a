package imapd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestStoreWaitsForTheRun: a STORE and an EXPUNGE sent while a sync run
// holds the account's turn wait for it, then act on the rows as the run
// left them: a flag the run merged (\Flagged, with its merge base) is not
// lost by a STORE +FLAGS \Answered read before it, and an EXPUNGE leaves
// alone a message the run undeleted (review of issue 11: the rows were
// read before the turn).
func TestStoreWaitsForTheRun(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	ctx := context.Background()
	m1 := deliver(t, st, fs["INBOX"], 1, msgPlain, maildir.FlagSeen)
	m2 := deliver(t, st, fs["INBOX"], 2, msgPlain, maildir.FlagSeen|maildir.FlagDeleted)
	_, addr := startServer(t, st, "acct")
	c := dialT(t, addr, "c")

	release := st.SyncTurn(fs["INBOX"].Account)
	done := make(chan string, 2)
	go func() {
		_, status := c.cmd("", "UID STORE %d +FLAGS.SILENT (\\Answered)", m1.LocalUID)
		done <- "store " + status
		_, status = c.cmd("", "EXPUNGE")
		done <- "expunge " + status
	}()
	select {
	case s := <-done:
		t.Fatalf("%s went through during the run's turn", s)
	case <-time.After(200 * time.Millisecond):
	}
	// What the run does meanwhile: \Flagged from upstream on m1, \Deleted
	// cleared upstream on m2 (flags and merge base).
	for _, ch := range []struct {
		m     *index.Message
		flags maildir.Flags
	}{{m1, maildir.FlagSeen | maildir.FlagFlagged}, {m2, maildir.FlagSeen}} {
		cur := *ch.m
		if err := st.SetFlags(ctx, []index.FlagChange{{Message: &cur, Flags: ch.flags, Keywords: cur.Keywords,
			Synced: &index.SyncedState{Flags: ch.flags, Keywords: cur.Keywords}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range 2 {
		select {
		case s := <-done:
			if !strings.HasPrefix(s, "store OK") && !strings.HasPrefix(s, "expunge OK") {
				t.Errorf("%s after the run", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the STORE or EXPUNGE still waits 10 s after the run")
		}
	}
	var rows []*index.Message
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.Messages(fs["INBOX"].ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d messages left, want both (the run undeleted the second)", len(rows))
	}
	for _, m := range rows {
		if m.ID == m1.ID && m.Flags != maildir.FlagSeen|maildir.FlagFlagged|maildir.FlagAnswered {
			t.Errorf("flags after the STORE: %s, want the run's \\Flagged kept and \\Answered added", m.Flags.Info())
		}
	}
}
