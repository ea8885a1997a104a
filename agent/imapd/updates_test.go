package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestEndpointResync: changes that overflow the hub's feed buffer (a
// commit larger than it) still reach the sessions, read from the index.
func TestEndpointResync(t *testing.T) {
	old := feedBuffer
	feedBuffer = 3
	t.Cleanup(func() { feedBuffer = old })
	st, fs := testStore(t, "INBOX")
	inbox := fs["INBOX"]
	for i := range 3 {
		deliver(t, st, inbox, uint32(10+i), fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, i), 0)
	}
	srv, addr := startServer(t, st)
	a, idler := dialT(t, addr, "a"), dialT(t, addr, "idle")
	var truth tview
	a.check(&truth)
	idler.check(&truth)
	idler.startIdle()

	// One commit of 8 arrivals: more than the buffer.
	d, _ := st.Dir(*inbox)
	var as []*index.Arrival
	for i := range 8 {
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "Subject: batch %d\r\n\r\n.\r\n", i)
		w.Close()
		as = append(as, &index.Arrival{Folder: inbox, File: w})
	}
	if err := st.Deliver(context.Background(), &index.Batch{Arrivals: as}); err != nil {
		t.Fatal(err)
	}
	// And a flag change and a removal after it.
	var rows []*index.Message
	st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.LocalMessages(inbox.ID, []uint32{1, 2})
		return err
	})
	if err := st.SetFlags(context.Background(), []index.FlagChange{{Message: rows[0], Flags: maildir.FlagFlagged}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(context.Background(), rows[1:], nil); err != nil {
		t.Fatal(err)
	}
	settle(t, srv, inbox.ID)
	truth = tview{}
	a.check(&truth)
	if len(truth.uids) != 10 || truth.uids[0] != 1 || truth.uids[1] != 3 || truth.flags[1] != `\Flagged` {
		t.Fatalf("after the resync: %v %v", truth.uids, truth.flags)
	}
	idler.waitIdle(truth, time.Now())
	idler.stopIdle()
	idler.check(&truth)
}

// TestEndpointFolderRemoved: a selected folder removed through the door
// empties the sessions' views (every message expunged).
func TestEndpointFolderRemoved(t *testing.T) {
	st, fs := testStore(t, "INBOX", "Old")
	for i := range 3 {
		deliver(t, st, fs["Old"], uint32(10+i), fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, i), 0)
	}
	_, addr := startServer(t, st)
	c := dialT(t, addr, "c")
	c.must("SELECT Old")
	if len(c.view.uids) != 3 {
		t.Fatalf("view %v", c.view.uids)
	}
	if err := st.RemoveFolder(context.Background(), fs["Old"], nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.view.uids) > 0 && time.Now().Before(deadline) {
		c.must("NOOP")
	}
	if len(c.view.uids) > 0 {
		t.Fatalf("after the folder's removal the session still sees %v", c.view.uids)
	}
	if _, st := c.cmd("", "FETCH 1:* (UID)"); st[:2] == "OK" && len(c.view.uids) != 0 {
		t.Errorf("FETCH after the removal: %s", st)
	}
}

// TestEndpointIdleSeesQueued: an update queued for a session after its
// last command and before its IDLE is sent as IDLE starts (go-imap's
// SessionTracker.Idle would hold it until the next update).
func TestEndpointIdleSeesQueued(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	deliver(t, st, fs["INBOX"], 10, "Subject: one\r\n\r\n1\r\n", 0)
	srv, addr := startServer(t, st)
	c := dialT(t, addr, "c")
	var truth tview
	c.check(&truth)
	if _, err := st.Append(context.Background(), fs["INBOX"].ID, strings.NewReader("Subject: two\r\n\r\n2\r\n"), 0, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	settle(t, srv, fs["INBOX"].ID)
	c.startIdle()
	truth.uids = append(truth.uids, 2)
	truth.flags[2] = ""
	c.waitIdle(truth, time.Now())
	c.stopIdle()
	c.check(&truth)
}

// TestEndpointIdlePython: an idling imaplib session hears of another
// session's APPEND, STORE, MOVE and EXPUNGE within a second each.
func TestEndpointIdlePython(t *testing.T) {
	st, fs := testStore(t, "INBOX", "Archive")
	deliver(t, st, fs["INBOX"], 1, "Subject: a\r\n\r\na\r\n", 0)
	deliver(t, st, fs["INBOX"], 2, "Subject: b\r\n\r\nb\r\n", 0)
	_, addr := startServer(t, st)
	var out map[string]any
	python(t, "idle.py", addr, &out)
	want := map[string]string{"append": "* 3 EXISTS", "store": `* 1 FETCH (UID 1 FLAGS (\Flagged))`,
		"move": "* 1 EXPUNGE", "expunge": "* 1 EXPUNGE"}
	for k, w := range want {
		got, _ := out[k].([]any)
		if len(got) != 2 || got[0] != w {
			t.Errorf("%s: idler heard %v, want %q", k, out[k], w)
		}
	}
	if d, _ := out["done"].(string); !strings.Contains(d, " OK ") {
		t.Errorf("IDLE ended with %q", d)
	}
	if a, _ := out["after"].([]any); len(a) != 1 || a[0] != "1 (UID 3)" {
		t.Errorf("after IDLE: %v", out["after"])
	}
}

// TestEndpointCloseIdle: Close ends idling sessions and returns at once;
// Serve then returns nil.
func TestEndpointCloseIdle(t *testing.T) {
	st, _ := testStore(t, "INBOX")
	srv, addr := startServer(t, st)
	c := dialT(t, addr, "c")
	c.startIdle()
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case _, ok := <-c.idle:
		for ok {
			_, ok = <-c.idle
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the idling session was not ended")
	}
}
