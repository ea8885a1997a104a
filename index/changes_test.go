package index_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// setup creates account "acct" with the named folders.
func setup(t *testing.T, st *index.Store, names ...string) (index.AccountID, []*index.Folder) {
	t.Helper()
	var acct index.AccountID
	var folders []*index.Folder
	err := st.Write(context.Background(), func(tx *index.Tx) error {
		var err error
		if acct, err = tx.EnsureAccount("acct"); err != nil {
			return err
		}
		for _, n := range names {
			f, err := tx.EnsureFolder(acct, n, "acct/"+n)
			if err != nil {
				return err
			}
			folders = append(folders, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return acct, folders
}

func write(t *testing.T, st *index.Store, fn func(*index.Tx) error) {
	t.Helper()
	if err := st.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func changesSince(t *testing.T, st *index.Store, f index.FolderID, modseq uint64) *index.FolderChanges {
	t.Helper()
	var fc *index.FolderChanges
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		fc, err = tx.ChangesSince(f, modseq)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fc
}

// TestChangesSince: every kind of message change gives the folder a new
// MODSEQ; ChangesSince reports exactly the messages changed after a
// MODSEQ, with their flags, and the local UIDs removed (tombstones),
// also for a message moved away; local UIDs are not reused.
func TestChangesSince(t *testing.T) {
	st := open(t)
	_, fs := setup(t, st, "INBOX", "Archive")
	inbox, arch := fs[0], fs[1]
	start := changesSince(t, st, inbox.ID, 0)
	if len(start.Changed) != 0 || len(start.Removed) != 0 {
		t.Fatalf("new folder: %+v", start)
	}
	var ids []index.MessageID
	write(t, st, func(tx *index.Tx) error {
		var err error
		ids, err = tx.AddMessages([]*index.NewMessage{newMsg(inbox.ID, "k1", "a", ""), newMsg(inbox.ID, "k2", "b", ""),
			newMsg(inbox.ID, "k3", "c", ""), newMsg(inbox.ID, "k4", "d", "")})
		return err
	})
	added := changesSince(t, st, inbox.ID, start.ModSeq)
	if added.ModSeq != start.ModSeq+1 || len(added.Changed) != 4 || len(added.Removed) != 0 {
		t.Fatalf("after adding 4 in one transaction: %+v (start %d)", added, start.ModSeq)
	}
	uids := map[string]uint32{}
	for _, m := range added.Changed {
		uids[m.Key] = m.LocalUID
		if m.ModSeq != added.ModSeq || m.Flags != maildir.FlagSeen {
			t.Errorf("added %+v", m)
		}
	}
	// One transaction: a flag change and a removal share the next MODSEQ.
	write(t, st, func(tx *index.Tx) error {
		if err := tx.SetFlags(ids[0], inbox.ID, maildir.FlagFlagged, []string{"$Work"}); err != nil {
			return err
		}
		return tx.DeleteMessage(ids[1])
	})
	c := changesSince(t, st, inbox.ID, added.ModSeq)
	want := &index.FolderChanges{ModSeq: added.ModSeq + 1,
		Changed: []index.ChangedMessage{{ID: ids[0], LocalUID: uids["k1"], Key: "k1", Flags: maildir.FlagFlagged,
			Keywords: []string{"$Work"}, ModSeq: added.ModSeq + 1}},
		Removed: []uint32{uids["k2"]}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("after a flag change and a removal:\n got %+v\nwant %+v", c, want)
	}
	// A move: a tombstone in INBOX, a new local UID in Archive.
	archStart := changesSince(t, st, arch.ID, 0)
	write(t, st, func(tx *index.Tx) error {
		return tx.MoveMessage(ids[2], arch.ID, 0, "cur/k3:2,S", maildir.FlagSeen)
	})
	c = changesSince(t, st, inbox.ID, added.ModSeq+1)
	if c.ModSeq != added.ModSeq+2 || len(c.Changed) != 0 || !slices.Equal(c.Removed, []uint32{uids["k3"]}) {
		t.Errorf("source after a move: %+v", c)
	}
	a := changesSince(t, st, arch.ID, archStart.ModSeq)
	if a.ModSeq != archStart.ModSeq+1 || len(a.Changed) != 1 || a.Changed[0].ID != ids[2] || a.Changed[0].Key != "k3" ||
		len(a.Removed) != 0 {
		t.Errorf("destination after a move: %+v", a)
	}
	// From the start, INBOX shows what is left and both tombstones.
	all := changesSince(t, st, inbox.ID, start.ModSeq)
	var keys []string
	for _, m := range all.Changed {
		keys = append(keys, m.Key)
	}
	if !slices.Equal(keys, []string{"k1", "k4"}) || !slices.Equal(all.Removed, []uint32{uids["k2"], uids["k3"]}) {
		t.Errorf("all changes: %+v", all)
	}
	// Nothing changed since the current MODSEQ; local UIDs go on upward.
	if c := changesSince(t, st, inbox.ID, all.ModSeq); len(c.Changed)+len(c.Removed) != 0 || c.ModSeq != all.ModSeq {
		t.Errorf("nothing changed: %+v", c)
	}
	write(t, st, func(tx *index.Tx) error {
		_, err := tx.AddMessage(newMsg(inbox.ID, "k5", "e", ""))
		return err
	})
	c = changesSince(t, st, inbox.ID, all.ModSeq)
	if len(c.Changed) != 1 || c.Changed[0].LocalUID <= uids["k4"] {
		t.Errorf("a new message after removals: %+v (last local UID %d)", c, uids["k4"])
	}
	// A folder removed: ErrNotFound.
	write(t, st, func(tx *index.Tx) error { return tx.DeleteFolder(arch.ID) })
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		_, err := tx.ChangesSince(arch.ID, 0)
		return err
	})
	if !errors.Is(err, index.ErrNotFound) {
		t.Errorf("removed folder: %v", err)
	}
}

// next takes the next change from sub, failing after a while.
func next(t *testing.T, sub *index.Subscription) (index.Change, bool) {
	t.Helper()
	select {
	case c, ok := <-sub.C():
		return c, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered")
	}
	return index.Change{}, false
}

// TestFeedKinds: each mutator publishes its change kind with account,
// folder, message, local UID, key and MODSEQ; a rolled-back Write and a
// dry-run view publish nothing.
func TestFeedKinds(t *testing.T) {
	st := open(t)
	sub := st.Subscribe(0)
	defer sub.Close()
	acct, fs := setup(t, st, "INBOX", "Old")
	inbox, old := fs[0], fs[1]
	for _, f := range fs {
		c, _ := next(t, sub)
		if c.Kind != index.FolderCreated || c.Account != acct || c.Folder != f.ID || c.Name != f.Name {
			t.Errorf("folder created: %+v", c)
		}
	}
	var id index.MessageID
	write(t, st, func(tx *index.Tx) error {
		var err error
		id, err = tx.AddMessage(newMsg(inbox.ID, "k1", "a", ""))
		return err
	})
	add, _ := next(t, sub)
	if add.Kind != index.MessageAdded || add.Account != acct || add.Folder != inbox.ID || add.Message != id ||
		add.Key != "k1" || add.LocalUID == 0 || add.Flags != maildir.FlagSeen || add.ModSeq != inbox.LocalModSeq+1 {
		t.Errorf("added: %+v (folder %+v)", add, inbox)
	}
	// Rolled back: nothing.
	err := st.Write(context.Background(), func(tx *index.Tx) error {
		if _, err := tx.AddMessage(newMsg(inbox.ID, "k2", "b", "")); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	if err == nil {
		t.Fatal("the failing Write succeeded")
	}
	// A dry run: nothing.
	dry := st.DryRun()
	if err := dry.Write(context.Background(), func(tx *index.Tx) error { return tx.DeleteMessage(id) }); err != nil {
		t.Fatal(err)
	}
	if err := dry.Discard(); err != nil {
		t.Fatal(err)
	}
	write(t, st, func(tx *index.Tx) error { return tx.SetFlags(id, inbox.ID, maildir.FlagFlagged, []string{"x"}) })
	fl, _ := next(t, sub)
	if fl.Kind != index.FlagsChanged || fl.Message != id || fl.LocalUID != add.LocalUID || fl.Key != "k1" ||
		fl.Flags != maildir.FlagFlagged || !slices.Equal(fl.Keywords, []string{"x"}) || fl.ModSeq != add.ModSeq+1 ||
		fl.Commit != add.Commit+1 {
		t.Errorf("flags changed (after a rolled-back and a dry-run write, which must publish nothing): %+v", fl)
	}
	write(t, st, func(tx *index.Tx) error { return tx.MoveMessage(id, old.ID, 0, "cur/k1:2,F", maildir.FlagFlagged) })
	rm, _ := next(t, sub)
	in, _ := next(t, sub)
	if rm.Kind != index.MessageRemoved || rm.Folder != inbox.ID || rm.LocalUID != add.LocalUID || rm.ModSeq != fl.ModSeq+1 ||
		in.Kind != index.MessageAdded || in.Folder != old.ID || in.Message != id || in.Flags != maildir.FlagFlagged ||
		!slices.Equal(in.Keywords, []string{"x"}) || rm.Commit != in.Commit {
		t.Errorf("moved:\n%+v\n%+v", rm, in)
	}
	write(t, st, func(tx *index.Tx) error { return tx.DeleteMessage(id) })
	if c, _ := next(t, sub); c.Kind != index.MessageRemoved || c.Folder != old.ID || c.LocalUID != in.LocalUID || c.Key != "k1" {
		t.Errorf("removed: %+v", c)
	}
	write(t, st, func(tx *index.Tx) error { return tx.RenameFolder(old.ID, "New", "acct/New") })
	if c, _ := next(t, sub); c.Kind != index.FolderRenamed || c.Folder != old.ID || c.Name != "New" || c.OldName != "Old" {
		t.Errorf("renamed: %+v", c)
	}
	write(t, st, func(tx *index.Tx) error { return tx.DeleteFolder(old.ID) })
	if c, _ := next(t, sub); c.Kind != index.FolderRemoved || c.Folder != old.ID || c.Name != "New" || c.Account != acct {
		t.Errorf("folder removed: %+v", c)
	}
	sub.Close()
	sub.Close()
	if _, ok := next(t, sub); ok {
		t.Error("a closed subscription delivers")
	}
}

// TestFeedCommitOrder: concurrent writers, each transaction adding a
// message to a shared folder (its MODSEQ counts the commits: the database's
// own record of the commit order) and changing flags in its writer's
// folder. The subscriber sees exactly the committed changes, a commit's
// together, in the order of the commits; rolled-back transactions among
// them publish nothing.
func TestFeedCommitOrder(t *testing.T) {
	st := open(t)
	writers, per := 4, 20 // under a second; -short too, or it would not catch a reordering
	names := []string{"shared"}
	for w := range writers {
		names = append(names, fmt.Sprintf("w%d", w))
	}
	_, fs := setup(t, st, names...)
	shared := fs[0]
	sub := st.Subscribe(writers * per * 4)
	defer sub.Close()
	// Hold the fifth commit between its commit and its publication until
	// the next commit is done (or half a second has passed: the next
	// writer cannot commit before the held one is published, as it must
	// not). A feed that published in any other order than the commits'
	// would publish the sixth commit before the fifth here.
	var calls atomic.Int32
	sixth := make(chan struct{})
	index.SetTestHookCommitted(func() {
		switch calls.Add(1) {
		case 5:
			select {
			case <-sixth:
			case <-time.After(500 * time.Millisecond):
			}
		case 6:
			close(sixth)
		}
	})
	defer index.SetTestHookCommitted(nil)
	type commit struct {
		id     index.MessageID // the message added to shared
		modseq uint64          // shared's MODSEQ it got
	}
	committed := make([][]commit, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fs[w+1]
			for i := range per {
				var c commit
				err := st.Write(context.Background(), func(tx *index.Tx) error {
					m := newMsg(shared.ID, fmt.Sprintf("w%d-%d", w, i), "s", "")
					id, err := tx.AddMessage(m)
					if err != nil {
						return err
					}
					c = commit{id, m.ModSeq}
					o := newMsg(own.ID, fmt.Sprintf("o%d-%d", w, i), "o", "")
					oid, err := tx.AddMessage(o)
					if err != nil {
						return err
					}
					if err := tx.SetFlags(oid, own.ID, maildir.FlagFlagged, nil); err != nil {
						return err
					}
					if i%5 == 4 {
						return errRollback
					}
					return nil
				})
				if errors.Is(err, errRollback) {
					continue
				} else if err != nil {
					errs <- err
					return
				}
				committed[w] = append(committed[w], c)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byID := map[index.MessageID]uint64{}
	total := 0
	for _, cs := range committed {
		total += len(cs)
		for _, c := range cs {
			byID[c.id] = c.modseq
		}
	}
	// Each commit: shared's MessageAdded, then the writer folder's
	// MessageAdded and FlagsChanged, all with one Commit number.
	var lastCommit, lastModSeq uint64
	for n := range total {
		var got [3]index.Change
		for i := range got {
			got[i], _ = next(t, sub)
		}
		s, a, f := got[0], got[1], got[2]
		if s.Kind != index.MessageAdded || s.Folder != shared.ID || a.Kind != index.MessageAdded || f.Kind != index.FlagsChanged ||
			a.Message != f.Message || s.Commit != a.Commit || a.Commit != f.Commit {
			t.Fatalf("commit %d: not one transaction's changes: %+v", n, got)
		}
		if s.Commit <= lastCommit {
			t.Fatalf("commit numbers out of order: %d after %d", s.Commit, lastCommit)
		}
		want, ok := byID[s.Message]
		if !ok {
			t.Fatalf("commit %d: message %d was not committed", n, s.Message)
		}
		delete(byID, s.Message)
		// Shared's MODSEQ grows by one per commit: the feed's order is
		// the order in which the transactions committed.
		if s.ModSeq != want || s.ModSeq != lastModSeq+1 && lastModSeq != 0 {
			t.Fatalf("commit %d: shared folder MODSEQ %d (committed with %d) after %d: out of commit order", n, s.ModSeq, want, lastModSeq)
		}
		lastCommit, lastModSeq = s.Commit, s.ModSeq
	}
	select {
	case c := <-sub.C():
		t.Fatalf("more than the committed changes: %+v", c)
	default:
	}
	if len(byID) != 0 {
		t.Fatalf("%d committed transactions not delivered", len(byID))
	}
}

var errRollback = errors.New("roll back")

// TestFeedSlowSubscriber: a subscriber that does not read never holds up
// writers; once its buffer is full it gets a Resync as its last item and
// its channel closes, while another subscriber goes on getting
// everything.
func TestFeedSlowSubscriber(t *testing.T) {
	st := open(t)
	_, fs := setup(t, st, "INBOX")
	slow := st.Subscribe(5)
	defer slow.Close()
	fast := st.Subscribe(0)
	defer fast.Close()
	const n = 50
	var got []index.Change
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range fast.C() {
			got = append(got, c)
			if len(got) == n {
				return
			}
		}
	}()
	wrote := make(chan error, 1)
	go func() {
		for i := range n {
			err := st.Write(context.Background(), func(tx *index.Tx) error {
				_, err := tx.AddMessage(newMsg(fs[0].ID, fmt.Sprintf("k%d", i), "s", ""))
				return err
			})
			if err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("writers blocked by a subscriber that does not read")
	}
	var slowGot []index.Change
	for c := range slow.C() {
		slowGot = append(slowGot, c)
	}
	if len(slowGot) != 6 || slowGot[5].Kind != index.Resync || slowGot[5].Commit != slowGot[4].Commit+1 {
		t.Errorf("slow subscriber got %+v; want 5 changes then a Resync naming the first commit lost", slowGot)
	}
	for i, c := range slowGot[:min(5, len(slowGot))] {
		if c.Kind != index.MessageAdded || c.Key != fmt.Sprintf("k%d", i) {
			t.Errorf("slow subscriber's change %d: %+v", i, c)
		}
	}
	<-done
	for i, c := range got {
		if c.Kind != index.MessageAdded || c.Key != fmt.Sprintf("k%d", i) {
			t.Errorf("fast subscriber's change %d: %+v", i, c)
		}
	}
	// A commit larger than a buffer ends that subscription at once.
	tiny := st.Subscribe(1)
	write(t, st, func(tx *index.Tx) error {
		_, err := tx.AddMessages([]*index.NewMessage{newMsg(fs[0].ID, "big1", "", ""), newMsg(fs[0].ID, "big2", "", "")})
		return err
	})
	if c, ok := next(t, tiny); !ok || c.Kind != index.Resync {
		t.Errorf("commit larger than the buffer: %+v", c)
	}
	if _, ok := next(t, tiny); ok {
		t.Error("subscription goes on after a Resync")
	}
	// Closing the store ends the subscriptions.
	st.Close()
	for range fast.C() {
	}
}

// TestFeedSubscribeCloseWhileWriting: subscriptions made and closed while
// writers commit (and the store closed at the end) never block a writer,
// never deliver after their end, and each delivers the commits it got whole
// and in order (run with -race).
func TestFeedSubscribeCloseWhileWriting(t *testing.T) {
	st, err := index.Open(t.TempDir() + "/index.db")
	if err != nil {
		t.Fatal(err)
	}
	_, fs := setup(t, st, "INBOX")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := st.Write(context.Background(), func(tx *index.Tx) error {
					_, err := tx.AddMessages([]*index.NewMessage{newMsg(fs[0].ID, fmt.Sprintf("a%d-%d", w, i), "", ""),
						newMsg(fs[0].ID, fmt.Sprintf("b%d-%d", w, i), "", "")})
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 10 {
		sub := st.Subscribe(3)
		var last index.Change
		for range 4 {
			c, ok := next(t, sub)
			if !ok {
				break
			}
			if c.Kind != index.Resync && (c.Commit < last.Commit || c.Commit == last.Commit && c.ModSeq != last.ModSeq) {
				t.Fatalf("out of order: %+v after %+v", c, last)
			}
			last = c
		}
		sub.Close()
		for range sub.C() { // what was buffered, then the end
		}
	}
	late := st.Subscribe(0)
	close(stop)
	wg.Wait()
	st.Close()
	n := 0
	for c := range late.C() {
		if c.Kind != index.MessageAdded {
			t.Errorf("late subscriber: %+v", c)
		}
		n++
	}
	if n%2 != 0 {
		t.Errorf("late subscriber got %d changes: a commit split", n)
	}
	if after := st.Subscribe(0); func() bool { _, ok := <-after.C(); return ok }() {
		t.Error("a subscription to a closed store delivers")
	}
}
