package imapsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// folderNote returns the folder's last error as the index records it
// (what status shows).
func (e *env) folderNote(folder string) string {
	e.t.Helper()
	var note string
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, folder)
		if err != nil {
			return err
		}
		note = f.LastError
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return note
}

// TestTooLargeReported: the messages max_size leaves where they are (not
// those max_age_days leaves) are counted with their sizes, both ways, in
// the dry run's plan, the run's result and the folder's status; a later
// run counts them again, not twice.
func TestTooLargeReported(t *testing.T) {
	e := newEnv(t)
	old := corpus.Generate(8, 20, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 10, BigAttachmentSize: 2 << 20})
	recent := corpus.Generate(9, 6, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 3, BigAttachmentSize: 2 << 20})
	for i := range recent {
		recent[i].Date = time.Now().Add(-time.Duration(i) * time.Hour)
	}
	e.d.Seed(t, testenv.DefaultUser.Name, append(old, recent...))
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	metas, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var large int
	var largeBytes int64
	for _, m := range metas {
		if m.RFC822Size > 1<<20 && m.InternalDate.After(time.Now().AddDate(0, 0, -30)) {
			large++
			largeBytes += m.RFC822Size
		}
	}
	if large != 2 {
		t.Fatalf("the corpus has %d recent large messages, want 2", large)
	}
	check := func(what string, res *imapsync.Result, n int, bytes int64) {
		t.Helper()
		tot := res.Totals()
		if tot.TooLarge != n || tot.TooLargeBytes != bytes {
			t.Errorf("%s: %d too large (%d bytes), want %d (%d bytes)", what, tot.TooLarge, tot.TooLargeBytes, n, bytes)
		}
		if res.DryRun {
			return
		}
		want := fmt.Sprintf("%d messages larger than max_size not copied (%d bytes)", n, bytes)
		if got := e.folderNote("INBOX"); got != want {
			t.Errorf("%s: INBOX's status says %q, want %q", what, got, want)
		}
	}
	e.opts = func(o *imapsync.Options) { o.MaxAgeDays, o.MaxSize, o.DryRun = 30, 1<<20, true }
	res, _ := e.sync()
	check("the dry run", res, large, largeBytes)
	e.opts = func(o *imapsync.Options) { o.MaxAgeDays, o.MaxSize = 30, 1<<20 }
	res, _ = e.sync()
	if got := res.Totals().New; got != 4 {
		t.Errorf("downloaded %d, want the 4 recent small ones", got)
	}
	check("the first run", res, large, largeBytes)
	// A large local message is not uploaded: counted too, by its size here.
	localRaw := []byte("From: me@example.org\nSubject: big\nMessage-ID: <big@example.org>\n\n" + strings.Repeat("0123456789abcde\n", 1<<17))
	e.writeForeign("INBOX", "1772445600.M1P1.laptop", localRaw)
	res, _ = e.sync()
	if tot := res.Totals(); tot.New+tot.Uploaded+tot.ExpungedRemote != 0 {
		t.Errorf("second run: %+v", tot)
	}
	check("the second run", res, large+1, largeBytes+int64(len(localRaw)))
	res, _ = e.sync()
	check("the third run", res, large+1, largeBytes+int64(len(localRaw)))
	// Without the limit, everything is copied and the note goes.
	e.opts = nil
	res, _ = e.sync()
	if tot := res.Totals(); tot.New != 22 || tot.Uploaded != 1 || tot.TooLarge != 0 {
		t.Errorf("without limits: %+v; want 22 down, 1 up", tot)
	}
	if got := e.folderNote("INBOX"); got != "" {
		t.Errorf("INBOX's status still says %q", got)
	}
}
