package imapsync_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// Local changes made through the store's door, as the local endpoints make
// them (index.Store.Expunge and MoveTo: the door's Remove and Move, with
// the journal intent in the same transaction), carried upstream by the
// sync (intents.go).

// folderRow returns a folder's index row.
func (e *env) folderRow(folder string) *index.Folder {
	e.t.Helper()
	var f *index.Folder
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err = tx.FolderByName(a, folder)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// rowByUID returns the row of folder holding upstream uid (nil: none).
func (e *env) rowByUID(folder string, uid uint32) *index.Message {
	e.t.Helper()
	f := e.folderRow(folder)
	var out *index.Message
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		rows, err := tx.Messages(f.ID)
		for _, m := range rows {
			if m.UID == uid {
				out = m
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// rowByID returns a message row by its id (nil: gone).
func (e *env) rowByID(id index.MessageID) *index.Message {
	e.t.Helper()
	m := &index.Message{ID: id, Partial: true}
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) error { return tx.Fill([]*index.Message{m}) }); err != nil {
		e.t.Fatal(err)
	}
	if m.Partial {
		return nil
	}
	return m
}

// doorExpunge removes the message with uid from folder as the local
// endpoints do (Store.Expunge): file and row gone, an "expunge" intent.
func (e *env) doorExpunge(folder string, uid uint32) *index.Message {
	e.t.Helper()
	f, m := e.folderRow(folder), e.rowByUID(folder, uid)
	if m == nil {
		e.t.Fatalf("%s: no row with UID %d", folder, uid)
	}
	err := e.store.Remove(context.Background(), []*index.Message{m}, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: f.Account, Folder: f.ID, Op: "expunge",
			Arg: fmt.Sprintf("%d/%d", uid, f.UIDValidity)})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// doorMove moves the message with uid from one folder to another as the
// local endpoints do (Store.MoveTo): the row moves with UID 0, a "move"
// intent names its source UID.
func (e *env) doorMove(from, to string, uid uint32) *index.Message {
	e.t.Helper()
	src, dst, m := e.folderRow(from), e.folderRow(to), e.rowByUID(from, uid)
	if m == nil {
		e.t.Fatalf("%s: no row with UID %d", from, uid)
	}
	err := e.store.Move(context.Background(), m, dst.ID, 0, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: src.Account, Folder: src.ID, Message: m.ID, Op: "move",
			Arg: fmt.Sprintf("%d/%d", uid, src.UIDValidity)})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// doorFlags sets a message's flags as the local endpoints do (SetFlags
// without Synced: the merge base stays).
func (e *env) doorFlags(m *index.Message, flags maildir.Flags, kw ...string) {
	e.t.Helper()
	if err := e.store.SetFlags(context.Background(), []index.FlagChange{{Message: m, Flags: flags, Keywords: kw}}, nil); err != nil {
		e.t.Fatal(err)
	}
}

// openIntents counts the journal's open intents of the account.
func (e *env) openIntents() int {
	e.t.Helper()
	n := 0
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		fs, err := tx.Folders(a)
		for _, f := range fs {
			in, err := tx.Intents(f.ID)
			if err != nil {
				return err
			}
			n += len(in)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// serverSetFlags changes a server message's flags.
func (e *env) serverSetFlags(folder string, uid uint32, op imap.StoreFlagsOp, flags ...imap.Flag) {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	defer c.Logout()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		e.t.Fatal(err)
	}
}

// TestQueuedExpunges: messages expunged through the door are deleted
// upstream, exactly those UIDs; one changed upstream since the last sync
// is kept and comes back; flags changed through the door are pushed.
func TestQueuedExpunges(t *testing.T) {
	e := bugEnv(t)
	inbox := e.entries("INBOX")
	archive := e.entries("Archive")
	gone1 := e.fileMessageID("INBOX", inbox[0])
	gone2 := e.fileMessageID("INBOX", inbox[1])
	keptID := e.fileMessageID("INBOX", inbox[2])
	e.doorExpunge("INBOX", inbox[0].UID)
	e.doorExpunge("INBOX", inbox[1].UID)
	e.doorExpunge("INBOX", inbox[2].UID)
	e.serverSetFlags("INBOX", inbox[2].UID, imap.StoreFlagsAdd, imap.FlagFlagged) // changed there
	flaggedID := e.fileMessageID("Archive", archive[0])
	m := e.rowByUID("Archive", archive[0].UID)
	e.doorFlags(m, m.Flags|maildir.FlagFlagged|maildir.FlagSeen, "$Label1")

	res, _ := e.sync()
	tot := res.Totals()
	if tot.ExpungedRemote != 2 || tot.FlagsPushed != 1 || tot.New != 1 {
		t.Errorf("got %+v, want 2 deleted upstream, 1 flag change pushed, 1 fetched again (kept)", tot)
	}
	server := e.compare()
	for _, id := range []string{gone1, gone2} {
		if got := findServer(server, id); len(got) != 0 {
			t.Errorf("expunged through the door: server still has %s", uidsOf(got))
		}
	}
	if got := findServer(server, keptID); len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&maildir.FlagFlagged == 0 {
		t.Errorf("deleted here, flagged there: server has %s, want it kept in INBOX, \\Flagged", uidsOf(got))
	}
	if got := findServer(server, flaggedID); len(got["Archive"]) != 1 || got["Archive"][0].Flags&(maildir.FlagFlagged|maildir.FlagSeen) != maildir.FlagFlagged|maildir.FlagSeen ||
		len(got["Archive"][0].Keywords) != 1 {
		t.Errorf("flags set through the door: server has %s, want \\Flagged \\Seen $Label1", uidsOf(got))
	}
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents left open", n)
	}
	// Nothing more to do.
	res, _ = e.sync()
	if tot := res.Totals(); tot.New+tot.Uploaded+tot.ExpungedRemote+tot.Expunged+tot.FlagsPushed+tot.FlagsChanged != 0 {
		t.Errorf("second run did something: %+v", tot)
	}
}

// TestQueuedMoves: messages moved through the door are moved upstream with
// UID MOVE (never uploaded, never fetched again), with the flags changed
// through the door pushed after; a moved message expunged since is an
// expunge; one whose source UID left the server is uploaded as new; one
// moved back takes its UID again.
func TestQueuedMoves(t *testing.T) {
	e := bugEnv(t)
	inbox := e.entries("INBOX")
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = e.fileMessageID("INBOX", inbox[i])
	}
	plain := e.doorMove("INBOX", "Archive", inbox[0].UID)
	flagged := e.doorMove("INBOX", "Archive", inbox[1].UID)
	e.doorFlags(flagged, flagged.Flags|maildir.FlagFlagged)
	thenGone := e.doorMove("INBOX", "Archive", inbox[2].UID)
	if err := e.store.Remove(context.Background(), []*index.Message{thenGone}, nil); err != nil { // UID 0: no intent
		t.Fatal(err)
	}
	e.doorMove("INBOX", "Archive", inbox[3].UID)
	e.serverExpunge("INBOX", inbox[3].UID) // gone upstream meanwhile
	back := e.doorMove("INBOX", "Archive", inbox[4].UID)
	if err := e.store.Move(context.Background(), back, e.folderRow("INBOX").ID, 0, nil); err != nil { // moved back: UID 0, no intent
		t.Fatal(err)
	}

	res, _ := e.sync()
	tot := res.Totals()
	if res.Moved != 2 || tot.Uploaded != 1 || tot.ExpungedRemote != 1 || tot.New != 0 || tot.FlagsPushed != 1 {
		t.Errorf("got moved %d, %+v; want 2 moved, 1 uploaded (its source gone), 1 deleted upstream, nothing fetched, 1 flag change pushed", res.Moved, tot)
	}
	server := e.compare()
	want := map[int]string{0: "Archive", 1: "Archive", 2: "", 3: "Archive", 4: "INBOX"}
	for i, folder := range want {
		got := findServer(server, ids[i])
		n := 0
		for _, l := range got {
			n += len(l)
		}
		switch {
		case folder == "" && n != 0:
			t.Errorf("message %d moved, then expunged: server has %s", i, uidsOf(got))
		case folder != "" && (n != 1 || len(got[folder]) != 1):
			t.Errorf("message %d: server has %s, want it once in %s", i, uidsOf(got), folder)
		}
	}
	if got := findServer(server, ids[1]); len(got["Archive"]) == 1 && got["Archive"][0].Flags&maildir.FlagFlagged == 0 {
		t.Errorf("moved and flagged through the door: server has %s, want \\Flagged", uidsOf(got))
	}
	for _, m := range []*index.Message{plain, flagged} {
		row := e.rowByID(m.ID)
		if row == nil || row.UID == 0 {
			t.Errorf("moved row %d: %+v, want a UID (from COPYUID)", m.ID, row)
		}
	}
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents left open", n)
	}
}

// TestQueuedChangesKilled: a run killed at each step of carrying out a
// queued expunge or move (before any command, after STORE \Deleted, after
// UID EXPUNGE, after MOVE; each before its outcome is committed) is
// finished by the next run: both sides equal, nothing lost, nothing
// doubled.
func TestQueuedChangesKilled(t *testing.T) {
	for _, stage := range []string{"checked", "flagged", "expunged", "moved"} {
		t.Run(stage, func(t *testing.T) {
			e := bugEnv(t)
			inbox := e.entries("INBOX")
			var ids []string
			for _, x := range inbox[:3] {
				ids = append(ids, e.fileMessageID("INBOX", x))
			}
			e.doorExpunge("INBOX", inbox[0].UID)
			moved := e.doorMove("INBOX", "Archive", inbox[1].UID)
			e.doorFlags(moved, moved.Flags|maildir.FlagAnswered)
			e.doorMove("INBOX", "Archive", inbox[2].UID)
			killed := errors.New("killed")
			imapsync.SetIntentHook(func(s string) error {
				if s == stage {
					return killed
				}
				return nil
			})
			_, _, err := e.trySync(false)
			imapsync.SetIntentHook(nil)
			if !errors.Is(err, killed) {
				t.Fatalf("killed run: %v, want the kill", err)
			}
			e.sync()
			server := e.compare()
			want := []string{"", "Archive", "Archive"}
			for i, folder := range want {
				got := findServer(server, ids[i])
				n := 0
				for _, l := range got {
					n += len(l)
				}
				if (folder == "" && n != 0) || (folder != "" && (n != 1 || len(got[folder]) != 1)) {
					t.Errorf("message %d: server has %s, want it in %q only", i, uidsOf(got), folder)
				}
			}
			if got := findServer(server, ids[1]); len(got["Archive"]) == 1 && got["Archive"][0].Flags&maildir.FlagAnswered == 0 {
				t.Errorf("moved and answered through the door: server has %s, want \\Answered", uidsOf(got))
			}
			if n := e.openIntents(); n != 0 {
				t.Errorf("%d intents left open", n)
			}
		})
	}
}

// TestQueuedExpungeRacesServerChange: a server copy changed after the
// run read its state and before its STORE \Deleted (another client, at
// that instant) is kept: the STORE is UNCHANGEDSINCE the last sync's
// HIGHESTMODSEQ, and the message comes back here with the server's flags.
func TestQueuedExpungeRacesServerChange(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	e.doorExpunge("INBOX", x.UID)
	imapsync.SetIntentHook(func(stage string) error {
		if stage == "checked" {
			e.serverSetFlags("INBOX", x.UID, imap.StoreFlagsAdd, "$Label3")
		}
		return nil
	})
	res, _ := e.sync()
	imapsync.SetIntentHook(nil)
	if tot := res.Totals(); tot.ExpungedRemote != 0 || tot.New != 1 {
		t.Errorf("got %+v, want nothing deleted upstream, the message fetched again", tot)
	}
	server := e.compare()
	if got := findServer(server, id); len(got["INBOX"]) != 1 || len(got["INBOX"][0].Keywords) != 1 {
		t.Errorf("deleted here, labelled there meanwhile: server has %s, want it kept with $Label3", uidsOf(got))
	}
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents left open", n)
	}
}

// TestQueuedMoveDuringRun: a message moved through the door while a run is
// under way (after it read the queued changes) is neither uploaded to its
// new folder nor fetched again into its old one by that run's plans; the
// next run moves it upstream.
func TestQueuedMoveDuringRun(t *testing.T) {
	e := bugEnv(t)
	inbox := e.entries("INBOX")
	id := e.fileMessageID("INBOX", inbox[1])
	e.doorExpunge("INBOX", inbox[0].UID)
	imapsync.SetIntentHook(func(stage string) error {
		if stage == "checked" {
			e.doorMove("INBOX", "Archive", inbox[1].UID)
		}
		return nil
	})
	res, _ := e.sync()
	imapsync.SetIntentHook(nil)
	if tot := res.Totals(); tot.Uploaded != 0 || tot.New != 0 || tot.ExpungedRemote != 1 {
		t.Errorf("run with a move made during it: %+v, want nothing uploaded or fetched, 1 deleted upstream", tot)
	}
	if n := e.openIntents(); n != 1 {
		t.Errorf("%d intents open after the run, want the move's", n)
	}
	res, _ = e.sync()
	if tot := res.Totals(); res.Moved != 1 || tot.Uploaded != 0 || tot.New != 0 {
		t.Errorf("next run: moved %d, %+v; want 1 moved, nothing uploaded or fetched", res.Moved, tot)
	}
	server := e.compare()
	if got := findServer(server, id); len(got["Archive"]) != 1 || len(got) != 1 {
		t.Errorf("moved during a run: server has %s, want it once in Archive", uidsOf(got))
	}
}

// TestDoorFlagsDuringPush: a flag change made through the door while a run
// pushes the merged flags of the same message (after its STORE, before its
// local rename) is not undone: here the message was read (\Seen) before
// the run and flagged upstream; during the run the user marks it unread
// again. Both sides end with \Flagged alone.
func TestDoorFlagsDuringPush(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	m := e.rowByUID("INBOX", x.UID)
	e.doorFlags(m, m.Flags|maildir.FlagSeen)
	e.serverSetFlags("INBOX", x.UID, imap.StoreFlagsAdd, imap.FlagFlagged)
	imapsync.SetFlagsStoredHook(func() {
		imapsync.SetFlagsStoredHook(nil) // once
		now := e.rowByUID("INBOX", x.UID)
		e.doorFlags(now, now.Flags&^maildir.FlagSeen, now.Keywords...)
	})
	defer imapsync.SetFlagsStoredHook(nil)
	e.sync()
	e.sync()
	server := e.compare()
	got := findServer(server, id)
	if len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&(maildir.FlagSeen|maildir.FlagFlagged) != maildir.FlagFlagged {
		t.Errorf("read here, flagged there, then unread here during the push: server has %s, want \\Flagged without \\Seen", uidsOf(got))
	}
}

// TestQueuedMoveToOtherAccount: a message moved through the door into a
// folder of another account leaves this account's server (an expunge of
// its source); its row is the other account's.
func TestQueuedMoveToOtherAccount(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	var other *index.Folder
	err := e.store.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("other")
		if err != nil {
			return err
		}
		rel, err := index.FolderPath("other", "INBOX")
		if err != nil {
			return err
		}
		other, err = tx.EnsureFolder(a, "INBOX", rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.store.Dir(*other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := maildir.Open(d.Path); err != nil {
		t.Fatal(err)
	}
	src, m := e.folderRow("INBOX"), e.rowByUID("INBOX", x.UID)
	if err := e.store.Move(context.Background(), m, other.ID, 0, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: src.Account, Folder: src.ID, Message: m.ID, Op: "move",
			Arg: fmt.Sprintf("%d/%d", x.UID, src.UIDValidity)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	res, _ := e.sync()
	if tot := res.Totals(); res.Moved != 0 || tot.ExpungedRemote != 1 || tot.Uploaded != 0 || tot.New != 0 {
		t.Errorf("moved %d, %+v; want 1 deleted upstream, nothing moved, uploaded or fetched", res.Moved, tot)
	}
	server := e.compare()
	if got := findServer(server, id); len(got) != 0 {
		t.Errorf("moved to another account: this account's server still has %s", uidsOf(got))
	}
	if n := e.openIntents(); n != 0 {
		t.Errorf("%d intents left open", n)
	}
	if row := e.rowByID(m.ID); row == nil || row.Folder != other.ID {
		t.Errorf("the moved row: %+v, want it in the other account's INBOX", row)
	}
}
