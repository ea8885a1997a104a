package imapsync_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// endStampEnv: two folders synced and stamped (their listings found
// equal to their rows by a no-change run), and a hook that calls during
// (if set) with the stage.
func endStampEnv(t *testing.T) (*env, *func(stage string)) {
	if runtime.GOOS != "linux" {
		if os.Getenv("CI") == "true" {
			t.Fatal("end stamps watch with inotify: CI runs on Linux")
		}
		t.Skip("end stamps watch with inotify (Linux)")
	}
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 40, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()
	old := time.Now().Add(-time.Hour)
	e.backdate("INBOX", old)
	e.backdate("Archive", old)
	e.sync()
	var during func(stage string)
	imapsync.SetEndStampHook(func(stage string) {
		if during != nil {
			during(stage)
		}
	})
	t.Cleanup(func() { imapsync.SetEndStampHook(nil) })
	return e, &during
}

// changeBothSides makes changes of every kind on both sides of both
// folders: locally a new file, a flag changed (a rename), a file removed;
// upstream a new message, a flag changed, a message expunged.
func (e *env) changeBothSides(tag string) {
	e.t.Helper()
	for _, f := range []string{"INBOX", "Archive"} {
		e.writeLocal(f, tag+"-local-"+f)
		var cur []maildir.Entry
		for _, en := range e.entries(f) {
			if en.UID != 0 {
				cur = append(cur, en)
			}
		}
		d := e.dir(f)
		if _, err := d.SetFlags(cur[0], cur[0].Flags^maildir.FlagFlagged); err != nil {
			e.t.Fatal(err)
		}
		if err := os.Remove(d.FilePath(cur[1])); err != nil {
			e.t.Fatal(err)
		}
		e.appendServer(f, tag+"-server-"+f)
		e.serverSetFlags(f, cur[2].UID, imap.StoreFlagsAdd, imap.FlagAnswered)
		e.serverExpunge(f, cur[3].UID)
	}
}

// TestEndStamps: a run that changed both sides of two folders records
// their end stamps, so that the next run reads neither listing (proved
// by a file slipped in behind the directory's unchanged time: not seen)
// and skips both folders; every change is mirrored.
func TestEndStamps(t *testing.T) {
	e, during := endStampEnv(t)
	e.changeBothSides("a")
	before := map[string]string{}
	for _, f := range []string{"INBOX", "Archive"} {
		before[f] = e.recordedStamp(f)
	}
	*during = func(stage string) {
		if stage == "stamp" {
			// INBOX's directory time made as young as can be (a change
			// of its time alone, its names as they are): its end stamp
			// is recorded once the filesystem's clock is past it
			// (clockPast), on a coarse clock after a tick.
			now := time.Now()
			if err := os.Chtimes(filepath.Join(e.dir("INBOX").Path, "cur"), now, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.sync()
	*during = nil
	e.compare()
	for _, f := range []string{"INBOX", "Archive"} {
		if rec := e.recordedStamp(f); rec == before[f] {
			t.Fatalf("%s: no end stamp after a run that changed it", f)
		}
	}

	// A file slipped in behind INBOX's back (its directory's time put
	// back as it was): the stamp vouches for the run's listing, so the
	// next run does not read it...
	dirNew := filepath.Join(e.dir("INBOX").Path, "new")
	fi, err := os.Stat(dirNew)
	if err != nil {
		t.Fatal(err)
	}
	e.writeLocal("INBOX", "slipped")
	if err := os.Chtimes(dirNew, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(110 * time.Millisecond) // a stamp younger than maildir.Stamp.Racy's margin vouches for nothing
	res, _ := e.sync()
	for _, f := range res.Folders {
		if !f.Skipped {
			t.Errorf("%s: read in the run after one that left its end stamp", f.Name)
		}
	}
	if tot := res.Totals(); tot.Uploaded != 0 {
		t.Fatalf("the end-stamped listing was read: %d uploaded", tot.Uploaded)
	}
	// ... and any real change moves the time: all is seen.
	now := time.Now()
	if err := os.Chtimes(dirNew, now, now); err != nil {
		t.Fatal(err)
	}
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded != 1 {
		t.Errorf("after the directory changed: %d uploaded, want the slipped file", tot.Uploaded)
	}
	e.compare()
}

// TestEndStampsForeignChanges: changes another program makes to the
// folders while a run works on them (here between its last change and its
// end stamps: a new file, a rename, a removal, a file put where the run
// put one) keep the folder from an end stamp that would hide them: the
// next run sees each, and both sides end equal.
func TestEndStampsForeignChanges(t *testing.T) {
	for _, kind := range []string{"new file", "rename", "removal", "second copy"} {
		t.Run(kind, func(t *testing.T) {
			e, during := endStampEnv(t)
			e.changeBothSides("b")
			stampBefore := map[string]string{}
			*during = func(stage string) {
				if stage != "stamp" {
					return
				}
				*during = nil
				for _, f := range []string{"INBOX", "Archive"} {
					stampBefore[f] = e.recordedStamp(f)
				}
				d := e.dir("INBOX")
				var en maildir.Entry
				for _, x := range e.entries("INBOX") {
					if x.UID != 0 {
						en = x
						break
					}
				}
				switch kind {
				case "new file":
					e.writeLocal("INBOX", "foreign")
				case "rename":
					if _, err := d.SetFlags(en, en.Flags^maildir.FlagSeen); err != nil {
						t.Fatal(err)
					}
				case "removal":
					if err := os.Remove(d.FilePath(en)); err != nil {
						t.Fatal(err)
					}
				case "second copy":
					raw, err := os.ReadFile(d.FilePath(en))
					if err != nil {
						t.Fatal(err)
					}
					// the same key in new/: hidden by cur/'s, unless cur/'s goes
					if err := os.WriteFile(filepath.Join(d.Path, "new", en.Key), raw, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			e.sync()
			if stampBefore["INBOX"] == "" {
				t.Fatal("the hook did not run")
			}
			if got := e.recordedStamp("INBOX"); got != stampBefore["INBOX"] {
				t.Errorf("INBOX got an end stamp after a foreign %s during the run", kind)
			}
			if !e.stamped("Archive") || e.recordedStamp("Archive") == stampBefore["Archive"] {
				t.Errorf("Archive, untouched by the foreign change, got no end stamp")
			}
			e.sync()
			if kind != "second copy" {
				e.compare()
			}
		})
	}
}

// TestRunAfterUploadsSkips: after a run that uploaded new local messages
// (over the uploader's own connection) and changed nothing else, the next
// run skips every folder: the state recorded includes the uploads' MODSEQ
// (the folder's session takes them in before it reads what changed), and
// the end stamps vouch for the listings.
func TestRunAfterUploadsSkips(t *testing.T) {
	e, _ := endStampEnv(t)
	for i := range 3 {
		e.writeLocal("INBOX", fmt.Sprintf("up-%d", i))
	}
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 3 {
		t.Fatalf("%d uploaded, want 3", tot.Uploaded)
	}
	time.Sleep(110 * time.Millisecond) // a stamp younger than maildir.Stamp.Racy's margin vouches for nothing
	res, _ = e.sync()
	for _, f := range res.Folders {
		if !f.Skipped {
			t.Errorf("%s: looked at again in the run after one that only uploaded", f.Name)
		}
	}
	e.compare()
}

// TestEndStampsArm: a run that skips every folder watches none (an
// inotify instance costs 10 to 15 ms to tear down); a folder its stamp
// vouched for is watched once its job is going to run, and a change
// another program made to it between its scan and that watch keeps it
// from an end stamp: the next run reads it and uploads the file.
func TestEndStampsArm(t *testing.T) {
	e, during := endStampEnv(t)
	started := imapsync.WatchesStarted()
	if res, _ := e.sync(); len(res.Folders) == 0 || res.Totals().New+res.Totals().Uploaded != 0 {
		t.Fatalf("a no-change run did %+v", res.Totals())
	}
	if n := imapsync.WatchesStarted() - started; n != 0 {
		t.Errorf("a run that skipped every folder started %d watches", n)
	}
	before := e.recordedStamp("INBOX")
	e.appendServer("INBOX", "arm-upstream") // INBOX's job runs
	armed := false
	*during = func(stage string) {
		if stage == "arm" {
			armed = true
			e.writeLocal("INBOX", "arm-foreign") // before the watch: no event
		}
	}
	res, _ := e.sync()
	*during = nil
	if !armed {
		t.Fatal("INBOX was not armed")
	}
	tot := res.Totals()
	if tot.New != 1 {
		t.Fatalf("the run did %+v, want the upstream message", tot)
	}
	uploaded := tot.Uploaded
	if got := e.recordedStamp("INBOX"); got != before {
		t.Errorf("INBOX got an end stamp over a change made before it was watched: %s", got)
	}
	time.Sleep(110 * time.Millisecond)
	res, _ = e.sync()
	if uploaded += res.Totals().Uploaded; uploaded != 1 {
		t.Errorf("%d uploaded over two runs, want the file written before the watch", uploaded)
	}
	e.compare()
}
