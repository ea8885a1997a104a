package imapsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestSyncPublishesChanges: what a sync applies locally goes through the
// store's door and reaches the change feed, each change once, with its
// file already changed: a flag change pulled from the server (the file
// renamed), a server expunge (the file gone), a move made in the Maildir
// (the row moved to the other folder, the source tombstoned); and
// ChangesSince tells the same.
func TestSyncPublishesChanges(t *testing.T) {
	e := bugEnv(t)
	ctx := context.Background()
	var inbox, arch *index.Folder
	var rows []*index.Message
	err := e.store.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account("acct")
		if err != nil {
			return err
		}
		if inbox, err = tx.FolderByName(acct, "INBOX"); err != nil {
			return err
		}
		if arch, err = tx.FolderByName(acct, "Archive"); err != nil {
			return err
		}
		rows, err = tx.Messages(inbox.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	flagged, expunged, moved := rows[0], rows[1], rows[2]

	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(imap.UID(flagged.UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	e.serverExpunge("INBOX", expunged.UID)
	me := e.entryByKey("INBOX", moved.Key)
	if err := os.Rename(e.dir("INBOX").FilePath(me), filepath.Join(e.dir("Archive").Path, "cur", me.Name)); err != nil {
		t.Fatal(err)
	}

	sub := e.store.Subscribe(0)
	defer sub.Close()
	e.sync()
	var got []string
	var changes []index.Change
	for more := true; more; {
		select {
		case ch := <-sub.C():
			changes = append(changes, ch)
			name := map[index.FolderID]string{inbox.ID: "INBOX", arch.ID: "Archive"}[ch.Folder]
			got = append(got, fmt.Sprintf("%s %s %s", ch.Kind, name, ch.Key))
		default:
			more = false
		}
	}
	slices.Sort(got)
	want := []string{
		"flags-changed INBOX " + flagged.Key,
		"message-added Archive " + moved.Key,
		"message-removed INBOX " + expunged.Key,
		"message-removed INBOX " + moved.Key,
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("feed after the sync:\n got %q\nwant %q", got, want)
	}
	for _, ch := range changes {
		switch {
		case ch.Kind == index.FlagsChanged:
			if ch.Flags&maildir.FlagFlagged == 0 || e.entryByKey("INBOX", flagged.Key).Flags&maildir.FlagFlagged == 0 {
				t.Errorf("flag change published %+v; file %+v", ch, e.entryByKey("INBOX", flagged.Key))
			}
		case ch.Key == expunged.Key:
			for _, en := range e.entries("INBOX") {
				if en.Key == expunged.Key {
					t.Errorf("expunged message's file still there: %s", en.Name)
				}
			}
		}
	}
	var fc *index.FolderChanges
	if err := e.store.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		fc, err = tx.ChangesSince(inbox.ID, inbox.LocalModSeq)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	removed := []uint32{expunged.LocalUID, moved.LocalUID}
	slices.Sort(removed)
	if len(fc.Changed) != 1 || fc.Changed[0].Key != flagged.Key || !slices.Equal(fc.Removed, removed) {
		t.Errorf("ChangesSince: %+v; want %s changed, local UIDs %v removed", fc, flagged.Key, removed)
	}
	e.compare()
}

// TestRemoveCrashWindow: index.Store.Remove deletes files before rows. A
// kill between the two, while applying a server expunge, leaves a row
// whose file is gone and whose UID the server no longer has: the next run
// drops the row, and deletes, uploads or fetches nothing else.
func TestRemoveCrashWindow(t *testing.T) {
	e := bugEnv(t)
	before := e.serverMsgs("INBOX")
	var rows []*index.Message
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, "INBOX")
		if err != nil {
			return err
		}
		rows, err = tx.Messages(f.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	x := rows[0]
	e.serverExpunge("INBOX", x.UID)
	// The state a kill between the two steps leaves: the door's Remove
	// whose transaction fails removed the file and left the row.
	errKilled := errors.New("killed")
	if err := e.store.Remove(context.Background(), []*index.Message{x}, func(*index.Tx) error { return errKilled }); !errors.Is(err, errKilled) {
		t.Fatalf("Remove: %v", err)
	}
	for _, en := range e.entries("INBOX") {
		if en.Key == x.Key {
			t.Fatalf("file still there after a Remove that failed to commit: %s", en.Name)
		}
	}
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 0 || tot.New != 0 || tot.ExpungedRemote != 0 {
		t.Errorf("after the crash window: %+v; want nothing uploaded, fetched or deleted upstream", tot)
	}
	after := e.serverMsgs("INBOX")
	if len(after) != len(before)-1 {
		t.Errorf("server INBOX has %d messages, want %d", len(after), len(before)-1)
	}
	e.compare()
}
