package imapsync_test

import (
	"context"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestArchiveMoveInto: a local client's MOVE into the archive view (the
// local endpoint's Store.MoveTo) takes the message out of the synced
// folders: it is deleted upstream, stays in the view, and the queued move
// is done (no intent left open).
func TestArchiveMoveInto(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.Archive, o.CreateFolders = true, true }
	e.seedSpread(4, 4, "INBOX")
	e.sync()
	e.serverExpunge("INBOX", 1)
	e.sync() // makes the view
	id2, raw2 := e.rawByUID("INBOX", 2)
	view := e.folderRow(index.ArchiveFolder("INBOX"))
	if _, err := e.store.MoveTo(context.Background(), []*index.Message{e.rowByUID("INBOX", 2)}, view.ID); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.sync(); res.Totals().ExpungedRemote != 1 || res.Totals().Uploaded != 0 {
		t.Errorf("%+v, want 1 deleted upstream, nothing uploaded", res.Totals())
	}
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents open", n)
	}
	if _, ok := e.serverMsgs("INBOX")[id2]; ok {
		t.Errorf("%s still upstream", id2)
	}
	if got := e.localMsgs(index.ArchiveFolder("INBOX"))[id2]; string(got) != string(raw2) {
		t.Errorf("%s not in the view", id2)
	}
	e.quiet("move into the view")
}
