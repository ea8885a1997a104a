package imapsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestDeletedFlagCrash: another IMAP client deletes a message
// the usual way, STORE \Deleted then EXPUNGE. A run between the two sees
// \Deleted and applies it locally through the door (index.Store.SetFlags:
// the file renamed to :2,T, then the row and merge base committed); a
// kill between the rename and the commit leaves a file carrying T under a
// row and base without it, which the next run reads as a local flag
// change. The message is then gone upstream: "deleted there, changed
// here" must not count \Deleted alone as a change, or the message the
// other client expunged is uploaded again (TestRunKill9 found it:
// "deleted (upstream), but 1 copies remain ... U=380:2,T"). The same
// holds without a crash for a mail client that marked the message
// deleted here (T) while the server expunged it; a real change with it
// (\Flagged) still keeps the message.
func TestDeletedFlagCrash(t *testing.T) {
	for _, c := range []struct {
		name  string
		crash bool          // the door's SetFlags killed before its commit; otherwise a mail client's rename
		add   maildir.Flags // what the local file gets
		kept  bool
	}{
		{"killed", true, maildir.FlagDeleted, false},
		{"T", false, maildir.FlagDeleted, false},
		{"TF", false, maildir.FlagDeleted | maildir.FlagFlagged, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := bugEnv(t)
			ctx := context.Background()
			var x *index.Message
			if err := e.store.Read(ctx, func(tx *index.ReadTx) error {
				acct, err := tx.Account("acct")
				if err != nil {
					return err
				}
				f, err := tx.FolderByName(acct, "INBOX")
				if err != nil {
					return err
				}
				rows, err := tx.Messages(f.ID)
				if err != nil {
					return err
				}
				x = rows[0]
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var en maildir.Entry
			for _, fe := range e.entries("INBOX") {
				if fe.Key == x.Key {
					en = fe
				}
			}
			id := e.fileMessageID("INBOX", en)

			cl := e.d.Client(t, testenv.DefaultUser.Name)
			if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			set := imap.UIDSetNum(imap.UID(x.UID))
			if err := cl.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if c.crash {
				// What the run that saw \Deleted leaves when killed in the
				// door: the file renamed, the transaction never committed.
				errKilled := errors.New("killed")
				ch := index.FlagChange{Message: x, Flags: x.Flags | c.add, Keywords: x.Keywords,
					Synced: &index.SyncedState{Flags: x.SyncedFlags | c.add, Keywords: x.SyncedKeywords}}
				if err := e.store.SetFlags(ctx, []index.FlagChange{ch}, func(*index.Tx) error { return errKilled }); !errors.Is(err, errKilled) {
					t.Fatalf("SetFlags: %v", err)
				}
			} else if _, err := e.dir("INBOX").SetFlags(en, en.Flags|c.add); err != nil {
				t.Fatal(err)
			}
			if err := cl.UIDExpunge(set).Close(); err != nil {
				t.Fatal(err)
			}
			cl.Logout()

			res, _ := e.sync()
			got := findServer(e.serverNow(), id)
			local := 0
			for _, fe := range e.entries("INBOX") {
				if fe.Key == x.Key || e.fileMessageID("INBOX", fe) == id {
					local++
				}
			}
			if c.kept {
				if len(got["INBOX"]) != 1 || local != 1 {
					t.Errorf("changed here, expunged upstream: server has %s, %d local copies; want it kept once on both sides", uidsOf(got), local)
				}
			} else {
				if tot := res.Totals(); tot.Uploaded != 0 {
					t.Errorf("a message expunged upstream was uploaded again: %+v", tot)
				}
				if len(got) != 0 || local != 0 {
					t.Errorf("expunged upstream with only \\Deleted set here: server has %s, %d local copies; want none", uidsOf(got), local)
				}
			}
			e.compare()
		})
	}
}

// TestFlagsCommitCrash: the general form of TestDeletedFlagCrash, through
// the engine itself. Another client sets \Answered; the run that carries it
// here is killed after the door renamed the file (:2,RS) and before its
// commit (flagsCommitHook fails that transaction). The server then
// expunges the message. The next run must take the file's flags for what
// the killed run was committing (its journaled intent), not for a change
// made here, and delete the message here instead of uploading it again
// (TestRunKill9: "deleted (upstream), but 1 copies remain ... U=57:2,R",
// flags set to 2,R upstream and expunged 135 ms later).
func TestFlagsCommitCrash(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	cl := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	set := imap.UIDSetNum(imap.UID(x.UID))
	if err := cl.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	errKilled := errors.New("killed")
	imapsync.SetFlagsCommitHook(func() error { return errKilled })
	_, _, err := e.trySync(false)
	imapsync.SetFlagsCommitHook(nil)
	if !errors.Is(err, errKilled) && (err == nil || !strings.Contains(err.Error(), "killed")) {
		t.Fatalf("the run killed in its flag commit: %v", err)
	}
	renamed := false
	for _, fe := range e.entries("INBOX") {
		if fe.Key == x.Key && fe.Flags&maildir.FlagAnswered != 0 {
			renamed = true
		}
	}
	if !renamed {
		t.Fatalf("the killed run did not rename the file to carry \\Answered: %v", e.entries("INBOX"))
	}
	cl.Logout()
	e.serverExpunge("INBOX", x.UID)

	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 0 {
		t.Errorf("a message expunged upstream was uploaded again: %+v", tot)
	}
	got := findServer(e.serverNow(), id)
	local := 0
	for _, fe := range e.entries("INBOX") {
		if fe.Key == x.Key || e.fileMessageID("INBOX", fe) == id {
			local++
		}
	}
	if len(got) != 0 || local != 0 {
		t.Errorf("\\Answered upstream, a kill in the local commit, then expunged upstream: server has %s, %d local copies; want none", uidsOf(got), local)
	}
	e.compare()
}

// TestPushedFlagsThenLocalDelete: a mail client changes a message's flags
// here; the run that pushes the change (STORE) is killed before it commits
// the new base; the user then deletes the file. The server's flags differ
// from the old base only by this side's own change, which is no change
// made there: the deletion must be carried upstream, not undone by
// fetching the message again (TestRunKill9: "deleted (local), but 1
// copies remain", renamed to 2,FR, deleted 0.6 s later).
func TestPushedFlagsThenLocalDelete(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	ne, err := e.dir("INBOX").SetFlags(x, x.Flags|maildir.FlagFlagged)
	if err != nil {
		t.Fatal(err)
	}
	errKilled := errors.New("killed")
	imapsync.SetFlagsCommitHook(func() error { return errKilled })
	_, _, err = e.trySync(false)
	imapsync.SetFlagsCommitHook(nil)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run killed in its flag commit: %v", err)
	}
	if got := findServer(e.serverNow(), id); len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&maildir.FlagFlagged == 0 {
		t.Fatalf("the killed run did not push \\Flagged: server has %s", uidsOf(got))
	}
	if err := os.Remove(e.dir("INBOX").FilePath(ne)); err != nil {
		t.Fatal(err)
	}

	res, _ := e.sync()
	if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 {
		t.Errorf("after the killed push and the local deletion: %+v; want nothing fetched or uploaded", tot)
	}
	if got := findServer(e.serverNow(), id); len(got) != 0 {
		t.Errorf("flagged here, pushed, killed, then deleted here: the server still has %s", uidsOf(got))
	}
	for _, fe := range e.entries("INBOX") {
		if e.fileMessageID("INBOX", fe) == id {
			t.Errorf("flagged here, pushed, killed, then deleted here: back as %s", fe.Name)
		}
	}
	e.compare()
}

// TestPushedFlagsKeepServerChange: a mail client marks a message \Draft
// here while another client adds the keyword $L1 (and a message that had
// $L1 loses it) upstream; the run that pushes \Draft is killed after its
// STORE and before its local commit (the keyword and the new base). The
// "pushed" intent must make the base only what the STORE carried (the
// \Draft): the server's own change never reached this side, so taking it
// into the base would read its absence here as a removal made here and
// undo it upstream (TestKillTwoWay: "has flags DRS, want DRS+$L1" on both
// sides, some 20 messages after kills between the STOREs and the commit).
func TestPushedFlagsKeepServerChange(t *testing.T) {
	e := bugEnv(t)
	xs := e.entries("INBOX")
	x, y := xs[0], xs[1]
	xid, yid := e.fileMessageID("INBOX", x), e.fileMessageID("INBOX", y)
	cl := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// y has $L1 on both sides first.
	yset := imap.UIDSetNum(imap.UID(y.UID))
	if err := cl.Store(yset, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$L1"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	e.sync()
	for _, en := range e.entries("INBOX") {
		if en.Key == y.Key {
			y = en
		}
	}
	// Here: \Draft on both; there: $L1 added to x, removed from y.
	for _, en := range []maildir.Entry{x, y} {
		if _, err := e.dir("INBOX").SetFlags(en, en.Flags|maildir.FlagDraft); err != nil {
			t.Fatal(err)
		}
	}
	xset := imap.UIDSetNum(imap.UID(x.UID))
	if err := cl.Store(xset, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$L1"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Store(yset, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{"$L1"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	cl.Logout()

	errKilled := errors.New("killed")
	imapsync.SetFlagsCommitHook(func() error { return errKilled })
	_, _, err := e.trySync(false)
	imapsync.SetFlagsCommitHook(nil)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run killed in its flag commit: %v", err)
	}
	server := e.serverNow()
	for _, id := range []string{xid, yid} {
		if got := findServer(server, id); len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&maildir.FlagDraft == 0 {
			t.Fatalf("the killed run did not push \\Draft: server has %s", uidsOf(got))
		}
	}

	e.sync()
	server = e.compare()
	for _, c := range []struct {
		id   string
		want []string
	}{{xid, []string{"$L1"}}, {yid, nil}} {
		got := findServer(server, c.id)
		if len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&maildir.FlagDraft == 0 || !slices.Equal(got["INBOX"][0].Keywords, c.want) {
			t.Errorf("\\Draft here, keywords %v there, the push killed before its commit: server has %s, want \\Draft and %v",
				c.want, uidsOf(got), c.want)
		}
	}
}

// TestOwnDeletedThenBack: a mail client moves a message out of INBOX (its
// row's file is gone); the run carrying the deletion upstream is killed
// between its STORE \Deleted and its UID EXPUNGE; the client then moves
// the message back under a new file name. The next run adopts the file as
// the server copy (rematch, by content). The server's \Deleted is this
// side's own interrupted deletion, which the file's return undoes: it must
// be cleared upstream, not pulled down as T (TestRunKill9: "flags 2,ST,
// want 2,S" on both sides after a move out and back).
func TestOwnDeletedThenBack(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	d := e.dir("INBOX")
	raw, err := os.ReadFile(d.FilePath(x))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.FilePath(x)); err != nil {
		t.Fatal(err)
	}
	// The killed run's half of the deletion.
	cl := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Store(imap.UIDSetNum(imap.UID(x.UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	cl.Logout()
	// Back under a new name, with the flags it had.
	name := "1796461708.back_1.test:" + x.Flags.Info()
	if err := os.WriteFile(filepath.Join(d.Path, "cur", name), raw, 0o600); err != nil {
		t.Fatal(err)
	}

	res, _ := e.sync()
	if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 {
		t.Errorf("a message moved out and back: %+v; want nothing fetched or uploaded", tot)
	}
	got := findServer(e.serverNow(), id)
	if len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&maildir.FlagDeleted != 0 {
		t.Errorf("moved out and back after an interrupted deletion: server has %s; want it once, without \\Deleted", uidsOf(got))
	}
	for _, fe := range e.entries("INBOX") {
		if e.fileMessageID("INBOX", fe) == id && fe.Flags&maildir.FlagDeleted != 0 {
			t.Errorf("moved out and back after an interrupted deletion: the file is %s, marked deleted", fe.Name)
		}
	}
	e.compare()
}

// TestChangeAfterDownload: a run that pushed something re-reads the folder
// (refreshAfterPush) after downloading the new messages. A flag set
// upstream on one of them after its download (its flags read before the
// change) has no row in that merge; the MODSEQ the run records must not
// pass the change, or no later run sees it (TestRunKill9: "flags 2,, want
// 2,F" for a message downloaded as the flag was set).
func TestChangeAfterDownload(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	if _, err := e.dir("INBOX").SetFlags(x, x.Flags|maildir.FlagFlagged); err != nil { // something to push
		t.Fatal(err)
	}
	e.appendServer("INBOX", "late-flag")
	imapsync.SetRefreshHook(func() {
		cl := e.d.Client(t, testenv.DefaultUser.Name)
		defer cl.Logout()
		if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
			t.Error(err)
			return
		}
		crit := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "late-flag@example.org"}}}
		data, err := cl.UIDSearch(crit, nil).Wait()
		if err != nil || len(data.AllUIDs()) != 1 {
			t.Errorf("finding the new message: %v %v", data, err)
			return
		}
		if err := cl.Store(imap.UIDSetNum(data.AllUIDs()...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Error(err)
		}
	})
	e.sync()
	imapsync.SetRefreshHook(nil)
	e.sync()
	for _, fe := range e.entries("INBOX") {
		if e.fileMessageID("INBOX", fe) == "late-flag@example.org" && fe.Flags&maildir.FlagFlagged == 0 {
			t.Errorf("flagged upstream right after its download: still %s here after the next run", fe.Name)
		}
	}
	e.compare()
}

// TestPushedFlagsThenUndone: a mail client flags a message here; the run
// that pushes it (STORE +\Flagged) is killed before it commits the new
// base; the user then unflags it. The server's \Flagged is this side's
// own push, which the user undid: it must go, not come back down
// (TestRunKill9: "flags 2,F, want 2,"). And the other way: a push killed
// before its STORE leaves the server as it was, and the local change still
// goes up.
func TestPushedFlagsThenUndone(t *testing.T) {
	for _, stored := range []bool{true, false} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			e := bugEnv(t)
			x := e.entries("INBOX")[0]
			id := e.fileMessageID("INBOX", x)
			flagged, err := e.dir("INBOX").SetFlags(x, x.Flags|maildir.FlagFlagged)
			if err != nil {
				t.Fatal(err)
			}
			errKilled := errors.New("killed")
			imapsync.SetFlagsCommitHook(func() error { return errKilled })
			_, _, err = e.trySync(false)
			imapsync.SetFlagsCommitHook(nil)
			if err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("the run killed in its flag commit: %v", err)
			}
			if !stored { // as if the kill had come before the STORE
				e.serverSetFlags("INBOX", x.UID, imap.StoreFlagsDel, imap.FlagFlagged)
			}
			want := x.Flags
			if stored {
				// The user unflags it again.
				if _, err := e.dir("INBOX").SetFlags(flagged, x.Flags); err != nil {
					t.Fatal(err)
				}
			} else {
				want = x.Flags | maildir.FlagFlagged
			}
			e.sync()
			got := findServer(e.serverNow(), id)
			if len(got["INBOX"]) != 1 || got["INBOX"][0].Flags != want {
				t.Errorf("server has %s; want it with %s", uidsOf(got), want.Info())
			}
			for _, fe := range e.entries("INBOX") {
				if fe.Key == x.Key && fe.Flags != want {
					t.Errorf("local file %s; want %s", fe.Name, want.Info())
				}
			}
			e.compare()
		})
	}
}
