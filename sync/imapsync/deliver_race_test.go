package imapsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestSyncDuringDoorDelivery: a run that scans a folder while the door
// delivers into it (a local endpoint's APPEND: the file renamed into new/,
// its row not committed yet) leaves the file to the delivery, which then
// commits; the next run uploads it once. The run used to index the file
// itself, and the APPEND failed on the folder's unique key (or, the other
// way round, the run did).
func TestSyncDuringDoorDelivery(t *testing.T) {
	e := bugEnv(t)
	ctx := context.Background()
	f := e.folderRow("INBOX")
	d, err := e.store.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	raw := "Message-ID: <door-race@example.org>\r\nSubject: appended\r\n\r\nbody\r\n"
	if _, err := w.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a := &index.Arrival{Folder: f, File: w}
	a.Row.RFC822Size = int64(len(raw))
	a.Row.InternalDate = time.Now()
	a.Row.Header = index.ParseHeader(w.Header())
	a.Row.DeferText = true
	var runErr error
	err = e.store.Deliver(ctx, &index.Batch{Arrivals: []*index.Arrival{a}, Hook: func(stage string) error {
		if stage == "renamed" {
			_, _, runErr = e.trySync(false)
		}
		return nil
	}})
	if err != nil {
		t.Errorf("the delivery with a run during it: %v", err)
	}
	if runErr != nil {
		t.Errorf("the run during the delivery: %v", runErr)
	}
	e.sync()
	server := e.compare()
	if got := findServer(server, "door-race@example.org"); len(got) != 1 || len(got["INBOX"]) != 1 {
		t.Errorf("delivered during a run: server has %s, want it once in INBOX", uidsOf(got))
	}
}
