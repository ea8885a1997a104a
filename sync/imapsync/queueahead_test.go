package imapsync_test

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestNewQueuedBeforeFlags: when a folder has more new server messages
// than a chunk, they are queued for any worker before the folder's flag
// changes are carried out (queueAhead), not after them: by the time the
// plan's STOREs are answered every one of them is queued. Both sides end
// equal, each new message downloaded once, the flag changes made both
// ways. A first run, and a run with no more new messages than a chunk,
// queue none ahead (the few are fetched on the plan's own connection
// after the flags).
func TestNewQueuedBeforeFlags(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(21, 12, corpus.Options{Folders: []string{"INBOX"}}))
	e.opts = func(o *imapsync.Options) { o.ChunkSize = 3 }
	defer func() { e.opts = nil }()
	before := imapsync.QueuedAhead()
	if res, _ := e.sync(); res.Totals().New != 12 {
		t.Fatalf("first run: %+v, want 12 new", res.Totals())
	}
	if n := imapsync.QueuedAhead() - before; n != 0 {
		t.Errorf("the first run queued %d messages ahead, want none", n)
	}

	// Upstream: 10 new messages and \Flagged on 3 old ones; here, \Seen
	// toggled on another (a STORE to send).
	for i := range 10 {
		e.appendServer("INBOX", fmt.Sprintf("ahead-%d", i))
	}
	ents := e.entries("INBOX")
	for _, en := range ents[:3] {
		e.serverSetFlags("INBOX", en.UID, imap.StoreFlagsAdd, imap.FlagFlagged)
	}
	if _, err := e.dir("INBOX").SetFlags(ents[3], ents[3].Flags^maildir.FlagSeen); err != nil {
		t.Fatal(err)
	}
	before = imapsync.QueuedAhead()
	atStores := int64(-1)
	imapsync.SetFlagsStoredHook(func() { atStores = imapsync.QueuedAhead() - before })
	defer imapsync.SetFlagsStoredHook(nil)
	res, _ := e.sync()
	imapsync.SetFlagsStoredHook(nil)
	if atStores != 10 {
		t.Errorf("when the STOREs were answered, %d new messages were queued, want all 10", atStores)
	}
	if tot := res.Totals(); tot.New != 10 || tot.FlagsChanged != 3 || tot.FlagsPushed != 1 {
		t.Errorf("run did %+v, want 10 new, 3 flag changes here, 1 pushed", tot)
	}
	e.compare()

	// No more new messages than a chunk: none ahead.
	for i := range 3 {
		e.appendServer("INBOX", fmt.Sprintf("few-%d", i))
	}
	before = imapsync.QueuedAhead()
	if res, _ := e.sync(); res.Totals().New != 3 {
		t.Errorf("run did %+v, want 3 new", res.Totals())
	}
	if n := imapsync.QueuedAhead() - before; n != 0 {
		t.Errorf("%d of 3 new messages queued ahead, want none", n)
	}
	e.compare()
}
