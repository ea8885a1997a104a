package imapsync_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestAppendCrashThenLocalDelete: a run uploads a new local message (its
// APPEND written ahead into the journal) and is killed after the server
// stored it and before the result was recorded; the user then deletes the
// file. The next run must find the upload by content even though the file
// is gone (recoverAppends), and carry the deletion upstream: the message
// must not come back, downloaded from the copy the interrupted APPEND left
// (TestRunKill9 found it: "deleted (local), but 1 copies remain").
func TestAppendCrashThenLocalDelete(t *testing.T) {
	e := bugEnv(t)
	ctx := context.Background()
	const id = "interrupted-upload@example.org"
	raw := "From: a@example.org\nSubject: interrupted\nMessage-ID: <" + id + ">\n\nbody\n"
	e.writeForeign("INBOX", "1700000000.interrupted.host", []byte(raw))
	var en maildir.Entry
	for _, fe := range e.entries("INBOX") {
		if strings.HasPrefix(fe.Key, "1700000000.interrupted") {
			en = fe
		}
	}
	// The killed run: the file indexed, the APPEND journaled and sent.
	var f *index.Folder
	if err := e.store.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err = tx.FolderByName(acct, "INBOX")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.IndexFile(ctx, index.Found{Folder: f, Entry: en, With: func(tx *index.Tx, mid index.MessageID) error {
		_, err := tx.AddIntent(index.Intent{Account: f.Account, Folder: f.ID, Message: mid,
			Op: "append", Arg: strconv.FormatUint(uint64(f.UIDNext), 10)})
		return err
	}}); err != nil {
		t.Fatal(err)
	}
	c := e.d.Client(t, testenv.DefaultUser.Name)
	crlf := strings.ReplaceAll(raw, "\n", "\r\n")
	cmd := c.Append("INBOX", int64(len(crlf)), &imap.AppendOptions{})
	cmd.Write([]byte(crlf))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	// The user deletes the message before the next run.
	if err := os.Remove(e.dir("INBOX").FilePath(en)); err != nil {
		t.Fatal(err)
	}

	res, _ := e.sync()
	if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 {
		t.Errorf("after the interrupted upload and the local deletion: %+v; want nothing fetched or uploaded", tot)
	}
	if got := findServer(e.serverNow(), id); len(got) != 0 {
		t.Errorf("deleted here after an interrupted upload: the server still has %s", uidsOf(got))
	}
	for _, fe := range e.entries("INBOX") {
		if e.fileMessageID("INBOX", fe) == id {
			t.Errorf("deleted here after an interrupted upload: back as %s", fe.Name)
		}
	}
	e.compare()
}
