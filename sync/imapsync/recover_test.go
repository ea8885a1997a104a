package imapsync_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestInterruptedAppendMovedAway: a run is killed after the APPEND of a new
// local message (journaled with the folder's UIDNEXT before it) and before
// its result is recorded; then, before the next run, the user moves the
// file to another folder under a new name (a mail program moving a message
// between folders), where it is a new message. The next run must find the
// first upload on the server by content and delete it there (the file left
// the folder) instead of taking it for new server mail and downloading it
// beside the moved file's own upload: found by the kill -9 test of
// postfach run (TestRunKill9) as a message in two copies.
func TestInterruptedAppendMovedAway(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, 6, corpus.Options{Folders: []string{"INBOX", "Second"}}))
	e.sync()
	e.compare()

	const key = "1796457052.26482_146.agenttest"
	raw := []byte("From: me@example.org\nSubject: moved and moved back\nMessage-ID: <kill-135@agenttest.invalid>\n\nbody\n")
	e.writeForeign("INBOX", key, raw)

	// The killed run's state: the file indexed, its APPEND journaled, then
	// sent (here by another client, as the run would have), its result
	// never recorded.
	var (
		acct index.AccountID
		f    *index.Folder
	)
	if err := e.store.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		if acct, err = tx.Account("acct"); err != nil {
			return err
		}
		f, err = tx.FolderByName(acct, "INBOX")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var entry maildir.Entry
	for _, x := range e.entries("INBOX") {
		if x.Key == key {
			entry = x
		}
	}
	nms, err := e.store.FileMessages(f, []maildir.Entry{entry}, false)
	if err != nil || len(nms) != 1 {
		t.Fatalf("indexing the new file: %v (%d rows)", err, len(nms))
	}
	if err := e.store.Write(ctx, func(tx *index.Tx) error {
		id, err := tx.AddMessage(nms[0])
		if err != nil {
			return err
		}
		_, err = tx.AddIntent(index.Intent{Account: acct, Folder: f.ID, Message: id, Op: "append",
			Arg: strconv.FormatUint(uint64(f.UIDNext), 10)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := e.d.Client(t, testenv.DefaultUser.Name)
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	ac := c.Append("INBOX", int64(len(crlf)), nil)
	ac.Write(crlf)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}

	// The user moves the message to Second under a new name, with a flag.
	src := filepath.Join(e.dir("INBOX").Path, "new", key)
	dst := filepath.Join(e.dir("Second").Path, "cur", "1796457053.26482_158.agenttest:2,F")
	if err := os.Rename(src, dst); err != nil {
		t.Fatal(err)
	}

	e.sync()
	server := e.compare()
	var where []string
	for folder, msgs := range server {
		for _, m := range msgs {
			if bytes.Equal(m.Raw, crlf) {
				where = append(where, folder)
				if m.Flags&maildir.FlagFlagged == 0 {
					t.Errorf("the moved message in %s lacks its flag: %v", folder, m.Flags)
				}
			}
		}
	}
	if len(where) != 1 || where[0] != "Second" {
		t.Fatalf("the moved message is on the server in %v; want once, in Second", where)
	}
	// Nothing left to do.
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded+tot.ExpungedRemote+tot.New+tot.Expunged != 0 {
		t.Errorf("a second run did something: %+v", tot)
	}
	e.compare()
}

// TestInterruptedFlagPushThenLocalDelete: a run pushes a local flag change
// upstream and is killed before it records the new merge base; then the
// user deletes the file. The server's flags are the row's own, not a change
// made upstream since the last sync: the deletion must reach the server,
// not be taken for a conflict that keeps the message and fetches it again
// (found by the kill -9 test of postfach run as a deleted message back).
func TestInterruptedFlagPushThenLocalDelete(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(6, 4, corpus.Options{Folders: []string{"INBOX"}}))
	e.sync()
	e.compare()

	x := e.entries("INBOX")[0]
	d := e.dir("INBOX")
	raw, err := os.ReadFile(d.FilePath(x))
	if err != nil {
		t.Fatal(err)
	}
	// The user toggles \Flagged; the killed run indexed the rename and
	// pushed it (STORE), but did not record the new base.
	flags := x.Flags ^ maildir.FlagFlagged
	nx, err := d.SetFlags(x, flags)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, "INBOX")
		if err != nil {
			return err
		}
		m, err := tx.MessageByKey(f.ID, x.Key)
		if err != nil {
			return err
		}
		return tx.SetFileFlags(m.ID, f.ID, nx.Sub+"/"+nx.Name, flags, m.Keywords)
	}); err != nil {
		t.Fatal(err)
	}
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	op := imap.StoreFlagsAdd
	if flags&maildir.FlagFlagged == 0 {
		op = imap.StoreFlagsDel
	}
	if err := c.Store(imap.UIDSetNum(imap.UID(x.UID)), &imap.StoreFlags{Op: op, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.Unselect().Wait()

	// Then the user deletes the message.
	if err := os.Remove(d.FilePath(nx)); err != nil {
		t.Fatal(err)
	}
	e.sync()
	server := e.compare()
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	for folder, msgs := range server {
		for _, m := range msgs {
			if bytes.Equal(m.Raw, crlf) {
				t.Fatalf("the message deleted locally is still in %s (UID %d)", folder, m.UID)
			}
		}
	}
}
