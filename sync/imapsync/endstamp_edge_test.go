package imapsync_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/maildir"
)

// TestEndStampNonUTF8KeyRemoved: a file whose key is not valid UTF-8
// (another program's name, Latin-1) removed during a run, after its
// scan, keeps the folder from an end stamp: its row is looked up by the
// key's bytes as they are (a JSON list would turn them into U+FFFD, find
// no row, and take "no file and no row" for equal), and the next run
// carries the deletion upstream.
func TestEndStampNonUTF8KeyRemoved(t *testing.T) {
	e, during := endStampEnv(t)
	name := "1772445600.caf\xe9.laptop"
	raw := "From: me@example.org\nSubject: latin1\nMessage-ID: <latin1@example.org>\nDate: Mon, 2 Mar 2026 11:00:00 +0000\n\nbody\n"
	e.writeForeign("INBOX", name, []byte(raw))
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 1 {
		t.Fatalf("the Latin-1 named file: %d uploaded, want 1", tot.Uploaded)
	}
	e.compare()
	e.backdate("INBOX", time.Now().Add(-time.Hour))
	e.sync() // a stamp for the listing with the file
	stampBefore := ""
	*during = func(stage string) {
		if stage != "stamp" {
			return
		}
		*during = nil
		stampBefore = e.recordedStamp("INBOX")
		for _, en := range e.entries("INBOX") {
			if strings.HasPrefix(en.Key, "1772445600.caf\xe9") {
				if err := os.Remove(e.dir("INBOX").FilePath(en)); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatal("the Latin-1 named file is gone")
	}
	// A message upstream: INBOX's job runs, and its folder is watched
	// (a run that skips it records no stamp and watches nothing).
	e.appendServer("INBOX", "latin1-run")
	e.sync()
	if stampBefore == "" {
		t.Fatal("the hook did not run")
	}
	if got := e.recordedStamp("INBOX"); got != stampBefore {
		t.Errorf("INBOX got an end stamp after a foreign removal during the run: %s", got)
	}
	time.Sleep(110 * time.Millisecond)
	e.sync()
	e.compare() // the deletion carried upstream
}

// TestEndStampDirectorySwapped: another program replaces the folder's
// directory during a run, after its scan (a copy with one more message
// renamed into its place, the old one moved out of the account). The
// watched cur/ and new/ moved with their parent, without an event; the
// end stamp would be of directories never watched nor listed. None is
// recorded (their device and inode differ), and the next run uploads the
// new message.
func TestEndStampDirectorySwapped(t *testing.T) {
	e, during := endStampEnv(t)
	stampBefore := ""
	*during = func(stage string) {
		if stage != "stamp" {
			return
		}
		*during = nil
		stampBefore = e.recordedStamp("INBOX")
		old := e.dir("INBOX").Path
		swap := old + ".swap"
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(swap, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		copyFile := func(rel string) {
			b, err := os.ReadFile(filepath.Join(old, rel))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(swap, rel), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		copyFile(maildir.UIDValidityFile)
		for _, en := range e.entries("INBOX") {
			copyFile(filepath.Join(en.Sub, en.Name))
		}
		raw := "From: me@example.org\nSubject: swapped\nMessage-ID: <swapped@example.org>\nDate: Mon, 2 Mar 2026 11:00:00 +0000\n\nbody\n"
		if err := os.WriteFile(filepath.Join(swap, "new", "1772445600.swapped.laptop"), []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(old, filepath.Join(t.TempDir(), "old-inbox")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(swap, old); err != nil {
			t.Fatal(err)
		}
	}
	e.appendServer("INBOX", "swap-run") // INBOX's job runs (see above)
	e.sync()
	if stampBefore == "" {
		t.Fatal("the hook did not run")
	}
	if got := e.recordedStamp("INBOX"); got != stampBefore {
		t.Errorf("INBOX got an end stamp for a directory the run never watched nor listed: %s", got)
	}
	time.Sleep(110 * time.Millisecond)
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 1 {
		t.Errorf("after the swap: %d uploaded, want the swapped-in message", tot.Uploaded)
	}
}
