package imapsync_test

// Deterministic reproductions of failures that TestModel and TestKillTwoWay
// found, kept as regression tests. Each states the rule it checks.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// bugEnv is a synced account with 10 messages in INBOX and 10 in Archive.
func bugEnv(t *testing.T) *env {
	e := newEnv(t)
	msgs := corpus.Generate(11, 20, corpus.Options{Folders: []string{"INBOX", "Archive"}})
	for i := range msgs {
		msgs[i].Folder = []string{"INBOX", "Archive"}[i%2]
		msgs[i].Flags = nil
	}
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)
	e.sync()
	e.compare()
	return e
}

// fileMessageID returns the Message-ID of a local message file.
func (e *env) fileMessageID(folder string, en maildir.Entry) string {
	e.t.Helper()
	raw, err := os.ReadFile(e.dir(folder).FilePath(en))
	if err != nil {
		e.t.Fatal(err)
	}
	return index.ParseHeader(raw).MessageID
}

// serverExpunge deletes the message with uid from folder upstream.
func (e *env) serverExpunge(folder string, uid uint32) {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		e.t.Fatal(err)
	}
	set := imap.UIDSetNum(imap.UID(uid))
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		e.t.Fatal(err)
	}
	if err := c.UIDExpunge(set).Close(); err != nil {
		e.t.Fatal(err)
	}
}

// findServer returns the server copies of Message-ID id per folder.
func findServer(server map[string][]mirrortest.ServerMessage, id string) map[string][]mirrortest.ServerMessage {
	out := map[string][]mirrortest.ServerMessage{}
	for f, msgs := range server {
		for _, m := range msgs {
			if index.ParseHeader(m.Raw).MessageID == id {
				out[f] = append(out[f], m)
			}
		}
	}
	return out
}

// uidsOf describes server copies as folder: uid (flags keywords).
func uidsOf(copies map[string][]mirrortest.ServerMessage) string {
	var parts []string
	for _, f := range sortedKeys(copies) {
		for _, m := range copies[f] {
			parts = append(parts, fmt.Sprintf("%s: uid %d (%s %v)", f, m.UID, m.Flags.Info(), m.Keywords))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func (e *env) serverNow() map[string][]mirrortest.ServerMessage {
	e.t.Helper()
	server, err := mirrortest.ServerFolders(e.d.Client(e.t, testenv.DefaultUser.Name))
	if err != nil {
		e.t.Fatal(err)
	}
	return server
}

// TestServerExpungeKeepsLocalChange: "A message deleted on one side while
// changed on the other is kept" (DESIGN.md, Identity and safety rules), in
// the direction expunged upstream, flags changed locally: the message is
// uploaded again with the local flags. (Found by TestModel, seeds 2 and 3,
// round 1, before c721d69.)
func TestServerExpungeKeepsLocalChange(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	if _, err := e.dir("INBOX").SetFlags(x, x.Flags|maildir.FlagFlagged); err != nil {
		t.Fatal(err)
	}
	e.serverExpunge("INBOX", x.UID)
	e.sync()

	got := findServer(e.serverNow(), id)
	if len(got["INBOX"]) != 1 || got["INBOX"][0].Flags&maildir.FlagFlagged == 0 {
		t.Errorf("flagged locally, expunged upstream: server has %s, want it once in INBOX, \\Flagged (kept with the local flags)", uidsOf(got))
	}
	found := 0
	for _, en := range e.entries("INBOX") {
		if e.fileMessageID("INBOX", en) == id {
			found++
		}
	}
	if found != 1 {
		t.Errorf("flagged locally, expunged upstream: %d local copies, want 1", found)
	}
	e.compare()
}

// TestLocalMoveWithFlagChange: a mail client marks a message and moves it
// to another folder (rename into the other Maildir with new info letters,
// key and ,U= tag kept). The move is carried out upstream (UID MOVE) and
// the flag change goes with it. (Found by TestModel, seeds 1, 2, 4, 7, 9,
// before c721d69: the moved row kept its old flags, the file had the new
// ones, and the server copy never got them.)
func TestLocalMoveWithFlagChange(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	from := e.dir("INBOX").FilePath(x)
	name, _, _ := strings.Cut(x.Name, ":")
	to := filepath.Join(e.dir("Archive").Path, "cur", name+":"+(x.Flags|maildir.FlagAnswered).Info())
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
	e.sync()

	server := e.serverNow()
	got := findServer(server, id)
	if len(got["INBOX"]) != 0 || len(got["Archive"]) != 1 {
		t.Fatalf("after the move: server copies %s, want one in Archive", uidsOf(got))
	}
	if got["Archive"][0].Flags&maildir.FlagAnswered == 0 {
		t.Errorf("moved with \\Answered set: server flags %q, want \\Answered", got["Archive"][0].Flags.Info())
	}
	for _, d := range mirrortest.Compare(context.Background(), server, e.root, "acct", e.store) {
		t.Error(d)
	}
}

// TestExpungeLocalCrashWindow: a local expunge that removed the rows but
// not yet the files (the order before bf8ddbb) leaves files with ,U= tags
// and no rows after a kill; the next run must not index them as new local
// messages and upload them again (messages expunged upstream coming back on
// both sides), since their tagged UIDs were issued and are gone upstream. This sets up exactly the
// state such a kill leaves (TestKillTwoWay hit it in about one run in five
// before bf8ddbb).
func TestExpungeLocalCrashWindow(t *testing.T) {
	e := bugEnv(t)
	x := e.entries("INBOX")[0]
	id := e.fileMessageID("INBOX", x)
	e.serverExpunge("INBOX", x.UID)
	// The kill: expungeLocal's transaction committed, the file not removed.
	err := e.store.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, "INBOX")
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		for _, m := range rows {
			if m.Key == x.Key {
				return tx.DeleteMessage(m.ID)
			}
		}
		t.Fatalf("no row for %s", x.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 0 {
		t.Errorf("a message expunged upstream was uploaded again: %+v", tot)
	}
	if got := findServer(e.serverNow(), id); len(got) != 0 {
		t.Errorf("expunged upstream, then a crash in the local expunge: the server has it again: %s", uidsOf(got))
	}
	e.compare()
}

// TestKeywordsAfterCrashedDownload: a message with a keyword is downloaded;
// a kill after its file reached cur/ and before its row was committed
// leaves the file to the next run, whose reconcile indexes it from disk
// (with its ,U= tag, flags from the name, and no keywords: file names cannot
// carry them); a kill of that run before its flag merge leaves the row so.
// The folder's UIDNEXT was never recorded past the message, and the run
// after that takes the incremental path, which fetches flags only below the
// recorded UIDNEXT: the message's keywords are never fetched, and the local
// copy stays without them for good. This sets up the state the two kills
// leave (TestKillTwoWay hit it before bf8ddbb: "tiny-0001-000138 has flags
// RS, want RS+$L3"; mirror: "keywords [], server [$L3]").
func TestKeywordsAfterCrashedDownload(t *testing.T) {
	e := bugEnv(t)
	var before index.Folder
	e.folderState("Archive", func(tx *index.Tx, f *index.Folder) error {
		before = *f
		return nil
	})
	c := e.d.Client(t, testenv.DefaultUser.Name)
	raw := []byte("From: a@example.org\r\nSubject: labelled\r\nMessage-ID: <labelled@example.org>\r\n\r\nbody\r\n")
	cmd := c.Append("Archive", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, "$L3"}})
	cmd.Write(raw)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.compare()

	// The state after the two kills: the row as reconcile builds it from
	// the file, the folder's upstream state as before the download.
	e.folderState("Archive", func(tx *index.Tx, f *index.Folder) error {
		rows, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		for _, m := range rows {
			if m.Header.MessageID == "labelled@example.org" {
				if err := tx.SetFlags(m.ID, f.ID, m.Flags, nil); err != nil {
					return err
				}
				if err := tx.SetSyncedFlags(m.ID, m.Flags, nil); err != nil {
					return err
				}
			}
		}
		return tx.SetRemoteState(f.ID, before.UIDValidity, before.UIDNext, before.HighestModSeq)
	})
	e.sync()
	e.compare() // "keywords [], server [$L3]"
}

// folderState runs fn on a folder's index row in a write transaction.
func (e *env) folderState(folder string, fn func(*index.Tx, *index.Folder) error) {
	e.t.Helper()
	err := e.store.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, folder)
		if err != nil {
			return err
		}
		return fn(tx, f)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestCopiedFileSameUIDAndSize: a file copied under its own name (cp) into
// another folder carries the source folder's ,U= tag. When the destination
// folder has a server message with that UID and the same size (common for
// machine-made mail), the tag must not be taken as that message's: the copy
// is a new message and is uploaded. Otherwise two local files claim the
// UID, the copy never goes upstream, and when the user deletes the copy
// again, the other message with that UID is expunged on both sides: a
// message nobody deleted is lost.
func TestCopiedFileSameUIDAndSize(t *testing.T) {
	e := newEnv(t)
	var msgs []corpus.Message
	for i := range 10 {
		var id string
		raw := crlf(tinyMessage(99, i, &id))
		msgs = append(msgs, corpus.Message{Folder: []string{"INBOX", "Archive"}[i%2], MessageID: id, Raw: raw})
	}
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)
	e.sync()
	e.compare()

	var src, victim maildir.Entry
	for _, en := range e.entries("INBOX") {
		if en.UID == 3 {
			src = en
		}
	}
	for _, en := range e.entries("Archive") {
		if en.UID == 3 {
			victim = en
		}
	}
	id, victimID := e.fileMessageID("INBOX", src), e.fileMessageID("Archive", victim)
	raw, err := os.ReadFile(e.dir("INBOX").FilePath(src))
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(e.dir("Archive").Path, "cur", src.Name)
	if err := os.WriteFile(copyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	e.sync()
	server := e.serverNow()
	if got := findServer(server, id); len(got["INBOX"]) != 1 || len(got["Archive"]) != 1 {
		t.Errorf("copied (cp) from INBOX uid 3 to Archive, which has another message of the same size as uid 3: server copies %s, want one in each folder", uidsOf(got))
	}
	for _, d := range mirrortest.Compare(context.Background(), server, e.root, "acct", e.store) {
		t.Error(d)
	}

	// The user deletes the copy again (its name changed: it was uploaded
	// and got Archive's UID for it).
	for _, en := range e.entries("Archive") {
		if en.Key == src.Key {
			copyPath = e.dir("Archive").FilePath(en)
		}
	}
	if err := os.Remove(copyPath); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.sync()
	if got := findServer(e.serverNow(), victimID); len(got["Archive"]) != 1 {
		t.Errorf("after deleting the copy again: Archive's own uid 3 (%s) is gone upstream", victimID)
	}
	found := false
	for _, en := range e.entries("Archive") {
		if e.fileMessageID("Archive", en) == victimID {
			found = true
		}
	}
	if !found {
		t.Errorf("after deleting the copy again: Archive's own uid 3 (%s) is gone locally", victimID)
	}
}
