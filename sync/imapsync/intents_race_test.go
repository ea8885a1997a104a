package imapsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestQueuedMoveChangedWhileMoving: a message moved through the door is
// moved on (back to INBOX, its first folder) or expunged through the door
// while the run's UID MOVE of it is under way (before the run records the
// new UID), as a local client does without waiting for the sync. The
// change waits for the run's turn on the account to end (index.Store.
// SyncTurn), and the next run carries it out: the server has the message
// once in INBOX, or not at all; the run does not fail.
func TestQueuedMoveChangedWhileMoving(t *testing.T) {
	for _, then := range []string{"move back", "expunge"} {
		t.Run(then, func(t *testing.T) {
			e := bugEnv(t)
			ctx := context.Background()
			x := e.entries("INBOX")[0]
			id := e.fileMessageID("INBOX", x)
			m := e.doorMove("INBOX", "Archive", x.UID)
			changed := make(chan error, 1)
			imapsync.SetIntentHook(func(stage string) error {
				if stage != "moved" {
					return nil
				}
				go func() { // as an endpoint does: the turn, then the row
					release := e.store.LocalChangeOf(e.folderRow("INBOX").Account)
					defer release()
					row := e.rowByID(m.ID) // in Archive, UID 0 (or moved on by the run)
					var err error
					if then == "expunge" {
						err = e.store.Expunge(ctx, []*index.Message{row})
					} else {
						_, err = e.store.MoveTo(ctx, []*index.Message{row}, e.folderRow("INBOX").ID)
					}
					changed <- err
				}()
				select { // it waits for the run's turn to end
				case err := <-changed:
					t.Errorf("the %s went through the door while the run held its turn (%v)", then, err)
				case <-time.After(100 * time.Millisecond):
				}
				return nil
			})
			res, _, err := e.trySync(false)
			imapsync.SetIntentHook(nil)
			select {
			case err := <-changed:
				if err != nil {
					t.Errorf("the %s after the run: %v", then, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the %s still waits 10 s after the run ended", then)
			}
			if err != nil {
				t.Errorf("the run with the message changed during its MOVE: %v", err)
			}
			if res != nil {
				for _, f := range res.Folders {
					if f.Err != nil {
						t.Errorf("the run with the message changed during its MOVE: %s: %v", f.Name, f.Err)
					}
				}
			}
			e.sync()
			server := e.compare()
			got := findServer(server, id)
			if then == "expunge" && len(got) != 0 || then == "move back" && (len(got) != 1 || len(got["INBOX"]) != 1) {
				t.Errorf("%s during the upstream MOVE: server has %s", then, uidsOf(got))
			}
			if n := e.openIntents(); n != 0 {
				t.Errorf("%d intents left open", n)
			}
		})
	}
}

// TestQueuedMoveThenExpungePartial: a message moved through the door is
// moved upstream by a partial run of its source folder (as the agent's
// runs are, naming the folders that changed), then expunged through the
// door in its new folder. The expunge reaches the server: the copy the
// run's own MOVE made is not taken for a change made there since the
// last sync ("deleted here, changed there: kept"), because the run
// that moved it synced the destination too and recorded its state.
func TestQueuedMoveThenExpungePartial(t *testing.T) {
	e := bugEnv(t)
	ctx := context.Background()
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	m := e.doorMove("INBOX", "Archive", x.UID)
	e.opts = func(o *imapsync.Options) { o.Only = []string{"INBOX"} }
	e.sync()
	row := e.rowByID(m.ID)
	if row == nil || row.UID == 0 {
		t.Fatalf("after the partial run the moved row is %+v, want it with its new UID", row)
	}
	if err := e.store.Expunge(ctx, []*index.Message{row}); err != nil {
		t.Fatal(err)
	}
	e.opts = func(o *imapsync.Options) { o.Only = []string{"Archive"} }
	e.sync()
	e.opts = nil
	server := e.compare()
	if got := findServer(server, id); len(got) != 0 {
		t.Errorf("moved, then expunged in its new folder: server has %s, want it gone", uidsOf(got))
	}
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents left open", n)
	}
}

// TestDryRunDuringLocalChange: a dry run (postfach sync --dry-run, asked of
// a running agent) does not wait for the account's turn: its view holds
// the store's write connection from its first read, and a local change
// holding its turn may be waiting for that connection (review of issue
// 11: the two waited for each other, and every write to the store
// stopped).
func TestDryRunDuringLocalChange(t *testing.T) {
	e := bugEnv(t)
	release := e.store.LocalChangeOf(e.folderRow("INBOX").Account)
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := e.runWith(true, false)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the dry run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the dry run waits for a local change's turn")
	}
}
