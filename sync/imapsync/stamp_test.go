package imapsync_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// backdate sets the times of a folder's cur/ and new/ to old (an hour
// back: as on a mailbox nobody touched for a while, a stamp taken now is
// not racy).
func (e *env) backdate(folder string, old time.Time) {
	e.t.Helper()
	for _, sub := range []string{"cur", "new"} {
		if err := os.Chtimes(filepath.Join(e.dir(folder).Path, sub), old, old); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) stamped(folder string) bool {
	e.t.Helper()
	return e.recordedStamp(folder) != ""
}

// recordedStamp returns the folder's recorded stamp ("" when none).
func (e *env) recordedStamp(folder string) string {
	e.t.Helper()
	var rec string
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, folder)
		if err != nil {
			return err
		}
		rec, _, err = tx.FolderStamp(f.ID)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// TestStampedListing: once a folder's listing was found equal to its rows
// under a stamp that is not racy, a no-change run does not read it (a
// file slipped in behind an unchanged directory time is not seen: the
// proof that nothing was read), and every real change after it (a new
// file, a rename, a removal: each moves the directory's time) is.
func TestStampedListing(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, 40, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"INBOX", "Archive"} {
		if e.stamped(f) {
			t.Fatalf("%s: stamped right after the sync that wrote it (racy)", f)
		}
		e.backdate(f, old)
	}
	before := time.Now().Truncate(time.Second) // (recorded in seconds)
	res, _ := e.sync()
	for _, f := range res.Folders {
		if !f.Skipped {
			t.Errorf("%s: not skipped in a no-change run", f.Name)
		}
	}
	// The skipped folders' sync times are recorded (together: releaseAll).
	var times []time.Time
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("acct")
		if err != nil {
			return err
		}
		fs, err := tx.Folders(acct)
		for _, f := range fs {
			times = append(times, f.LastSync)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(times) != 2 || times[0].Before(before) || times[1].Before(before) {
		t.Errorf("the no-change run recorded the sync times %v: want two, from %v on", times, before)
	}
	for _, f := range []string{"INBOX", "Archive"} {
		if !e.stamped(f) {
			t.Fatalf("%s: no stamp recorded by a no-change run on an old listing", f)
		}
	}

	// A file put in behind the directory's back (its time set back):
	// the stamp vouches for the old listing, so the run does not see it.
	hidden := []byte("From: a@example.org\nSubject: hidden\nMessage-ID: <hidden@example.org>\n\nx\n")
	e.writeForeign("INBOX", "1772445700.M1P1.laptop", hidden)
	e.backdate("INBOX", old)
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded != 0 {
		t.Fatalf("the stamped listing was read: %d uploaded", tot.Uploaded)
	}

	// Real changes move the directories' times: all are seen.
	inbox := e.entries("INBOX")
	d := e.dir("INBOX")
	var a, b maildir.Entry
	for _, en := range inbox {
		if en.Sub == "cur" && a.Name == "" {
			a = en
		} else if en.Sub == "cur" && b.Name == "" {
			b = en
		}
	}
	if _, err := d.SetFlags(a, a.Flags|maildir.FlagFlagged); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.FilePath(b)); err != nil {
		t.Fatal(err)
	}
	res, _ = e.sync()
	tot := res.Totals()
	if tot.Uploaded != 1 || tot.FlagsPushed != 1 || tot.ExpungedRemote != 1 {
		t.Errorf("after real changes: %+v, want 1 uploaded (the hidden file, now seen), 1 flag pushed, 1 deleted upstream", tot)
	}
	e.compare()
}
