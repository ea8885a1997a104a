package index_test

import (
	"context"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestQueuedUpstream: the count of an account's local changes waiting to
// go upstream is its open expunge and move intents plus its synced
// folders' messages without UID or with flags other than their merge base,
// a moved message once; nothing else (a sync's own append intent, a
// message of a folder never synced, a clean message) counts.
func TestQueuedUpstream(t *testing.T) {
	ctx := context.Background()
	st, inbox, d := doorStore(t)
	var archive, local *index.Folder
	err := st.Write(ctx, func(tx *index.Tx) error {
		if err := tx.SetRemoteState(inbox.ID, 7, 200, 0); err != nil {
			return err
		}
		rel, _ := index.FolderPath("acct", "Archive")
		var err error
		if archive, err = tx.EnsureFolder(inbox.Account, "Archive", rel); err != nil {
			return err
		}
		if err := tx.SetRemoteState(archive.ID, 8, 1, 0); err != nil {
			return err
		}
		rel, _ = index.FolderPath("acct", "Local")
		local, err = tx.EnsureFolder(inbox.Account, "Local", rel) // never synced
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*index.Folder{archive, local} {
		if dd, err := st.Dir(*f); err != nil {
			t.Fatal(err)
		} else if _, err := maildir.Open(dd.Path); err != nil {
			t.Fatal(err)
		}
	}
	as := arrivals(t, inbox, d, 6)
	as[5].Row.UID = 0 // new here: to upload
	for _, a := range as {
		a.Row.SyncedFlags = a.Row.Flags
	}
	if err := st.Deliver(ctx, &index.Batch{Arrivals: as}); err != nil {
		t.Fatal(err)
	}
	ld, _ := st.Dir(*local)
	la := arrivals(t, local, ld, 1)
	la[0].Row.UID = 0
	if err := st.Deliver(ctx, &index.Batch{Arrivals: la}); err != nil {
		t.Fatal(err)
	}
	queued := func() (n int, in, ar bool) {
		t.Helper()
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			if n, err = tx.QueuedUpstream(inbox.Account); err != nil {
				return err
			}
			if in, err = tx.FolderQueued(inbox.ID); err != nil {
				return err
			}
			ar, err = tx.FolderQueued(archive.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n, in, ar
	}
	if n, _, ar := queued(); n != 1 || ar {
		t.Fatalf("queued %d (Archive %v), want 1 (the new message), Archive clean", n, ar)
	}
	rows := rowsOf(t, st, inbox)
	byUID := map[uint32]*index.Message{}
	for _, m := range rows {
		byUID[m.UID] = m
	}
	// A flag change through the door, an expunge and a move with their
	// intents, and a sync's append intent (its row is counted already).
	if err := st.SetFlags(ctx, []index.FlagChange{{Message: byUID[100], Flags: byUID[100].Flags | maildir.FlagFlagged}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(ctx, []*index.Message{byUID[101]}, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: inbox.Account, Folder: inbox.ID, Op: "expunge", Arg: "101/7"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Move(ctx, byUID[102], archive.ID, 0, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: inbox.Account, Folder: inbox.ID, Message: byUID[102].ID, Op: "move", Arg: "102/7"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: inbox.Account, Folder: inbox.ID, Message: byUID[0].ID, Op: "append", Arg: "200"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n, in, ar := queued(); n != 4 || !in || !ar {
		t.Errorf("queued %d (INBOX %v, Archive %v), want 4: new, flags, expunge, move; both folders with something queued", n, in, ar)
	}
	var ops []string
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		all, err := tx.AccountIntents(inbox.Account, "expunge", "move")
		for _, in := range all {
			ops = append(ops, in.Op+" "+in.Arg)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ops, ", "); got != "expunge 101/7, move 102/7" {
		t.Errorf("AccountIntents: %s, want the expunge and the move, in order", got)
	}
}
