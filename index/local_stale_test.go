package index_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestLocalStaleUID: a client's MOVE or EXPUNGE queues the upstream UID
// the row has when it is carried out, not the one the client's copy of
// the row had: the sync may have given the row its UID in between (it
// uploaded the message, or carried out an earlier move of it upstream).
// With the stale UID 0 no intent was queued, and the message stayed
// upstream in its old folder (a duplicate after a move, a deletion lost).
func TestLocalStaleUID(t *testing.T) {
	ctx := context.Background()
	st, fs, msgs := localStore(t)
	inbox, archive := fs["a/INBOX"], fs["a/Archive"]
	setUID := func(m *index.Message, uid uint32) { // the sync, after the client read m
		t.Helper()
		if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetUID(m.ID, uid, m.RFC822Size) }); err != nil {
			t.Fatal(err)
		}
	}

	stale := *msgs[2] // local, UID 0 as the client read it
	setUID(msgs[2], 21)
	if _, err := st.MoveTo(ctx, []*index.Message{&stale}, archive.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%d %d %d move 21/700", inbox.Account, inbox.ID, msgs[2].ID)}
	if got := intents(t, st, inbox, archive); !slices.Equal(got, want) {
		t.Errorf("MOVE of a row uploaded since it was read: intents %q, want %q", got, want)
	}

	// Now in Archive with UID 0 (stale, updated by MoveTo, says so); the
	// sync carries the move out (UID 5 there) after the client read it,
	// and the client expunges it.
	if stale.Folder != archive.ID || stale.UID != 0 {
		t.Fatalf("after MoveTo: folder %d, UID %d", stale.Folder, stale.UID)
	}
	if err := st.Write(ctx, func(tx *index.Tx) error {
		ins, err := tx.Intents(inbox.ID)
		if err != nil || len(ins) != 1 {
			return fmt.Errorf("intents of INBOX: %v (%d)", err, len(ins))
		}
		return tx.DoneIntent(ins[0].ID)
	}); err != nil {
		t.Fatal(err)
	}
	setUID(msgs[2], 5)
	if err := st.Expunge(ctx, []*index.Message{&stale}); err != nil {
		t.Fatal(err)
	}
	want = []string{fmt.Sprintf("%d %d 0 expunge 5/800", archive.Account, archive.ID)}
	if got := intents(t, st, inbox, archive); !slices.Equal(got, want) {
		t.Errorf("EXPUNGE of a row given a UID since it was read: intents %q, want %q", got, want)
	}
}
