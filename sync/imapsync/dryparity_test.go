package imapsync_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// planSummary renders what a Result says per folder (counts and bytes), the
// moves, the folder actions and the per-message actions, for comparing a
// dry run's plan with the real run that follows it.
func planSummary(r *imapsync.Result) string {
	var b strings.Builder
	for _, a := range r.FolderActions {
		fmt.Fprintf(&b, "folder action: %s\n", strings.TrimPrefix(a, "would "))
	}
	fmt.Fprintf(&b, "moved %d\n", r.Moved)
	for _, f := range r.Folders {
		fmt.Fprintf(&b, "%s: down %d new (%d B), %d flags, %d deleted; up %d new, %d flags, %d deleted; %d refused, %d skipped (%d B); err %v\n",
			f.Name, f.New, f.Bytes, f.FlagsChanged, f.Expunged, f.Uploaded, f.FlagsPushed, f.ExpungedRemote,
			f.Refused, f.TooLarge, f.TooLargeBytes, f.Err)
	}
	for _, a := range r.Actions() {
		fmt.Fprintf(&b, "%s %s uid %d key %q %s\n", a.Folder, a.Op, a.UID, a.Key, a.Flags)
	}
	return b.String()
}

// TestDryRunParity: for several scenarios, a dry run changes nothing and
// its plan (per folder: counts and bytes each way; moves; folder actions;
// each message's action) is what the real run that follows it then does.
func TestDryRunParity(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 24
	}
	msg := func(i int, tag string) []byte {
		return []byte(fmt.Sprintf("From: me@example.org\nSubject: %s %d\nMessage-ID: <%s-%d@example.org>\n\n%s\n",
			tag, i, tag, i, strings.Repeat("local body line\n", i+1)))
	}
	seeded := func(t *testing.T) *env {
		e := newEnv(t)
		e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(11, n, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
		return e
	}
	synced := func(t *testing.T) *env {
		e := seeded(t)
		e.sync()
		return e
	}
	serverStore := func(t *testing.T, e *env, folder string, seqs []uint32, op imap.StoreFlagsOp, flags ...imap.Flag) {
		c := e.d.Client(t, testenv.DefaultUser.Name)
		defer c.Logout()
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(seqs...), &imap.StoreFlags{Op: op, Flags: flags, Silent: true}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if op == imap.StoreFlagsAdd && len(flags) == 1 && flags[0] == imap.FlagDeleted {
			if err := c.Expunge().Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	scenarios := []struct {
		name  string
		setup func(t *testing.T) *env
	}{
		{"fresh store", seeded},
		{"fresh store, local files already there", func(t *testing.T) *env {
			e := seeded(t)
			if err := os.MkdirAll(filepath.Join(e.root, "acct"), 0o700); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"INBOX", "Local"} {
				p, _ := maildir.FolderDir(e.root, "acct", f)
				if _, err := maildir.Open(p); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					e.writeForeign(f, fmt.Sprintf("17000000%02d.M%dP1.laptop", i, i), msg(i, "pre-"+f))
				}
			}
			return e
		}},
		{"new local folder with messages", func(t *testing.T) *env {
			e := synced(t)
			p, _ := maildir.FolderDir(e.root, "acct", "Projects")
			if _, err := maildir.Open(p); err != nil {
				t.Fatal(err)
			}
			for i := range 7 {
				e.writeForeign("Projects", fmt.Sprintf("17000001%02d.M%dP1.laptop", i, i), msg(i, "projects"))
			}
			return e
		}},
		{"new mail both sides", func(t *testing.T) *env {
			e := synced(t)
			e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(12, 5, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
			for i := range 3 {
				e.writeForeign("Archive", fmt.Sprintf("17000002%02d.M%dP1.laptop", i, i), msg(i, "archive-new"))
			}
			return e
		}},
		{"flag changes both sides", func(t *testing.T) *env {
			e := synced(t)
			d := e.dir("INBOX")
			es := e.entries("INBOX")
			for _, x := range es[:6] {
				if _, err := d.SetFlags(x, x.Flags^maildir.FlagFlagged); err != nil {
					t.Fatal(err)
				}
			}
			// Server changes, partly on the same messages (by sequence
			// number: the first ones in UID order).
			serverStore(t, e, "INBOX", []uint32{1, 2, 3, 4, 5, 6, 7, 8}, imap.StoreFlagsAdd, imap.FlagAnswered)
			serverStore(t, e, "Archive", []uint32{2, 3}, imap.StoreFlagsAdd, imap.FlagSeen, "$Label1")
			serverStore(t, e, "Archive", []uint32{1}, imap.StoreFlagsDel, imap.FlagSeen)
			return e
		}},
		{"deletions both sides", func(t *testing.T) *env {
			e := synced(t)
			d := e.dir("INBOX")
			for _, x := range e.entries("INBOX")[:3] {
				if err := os.Remove(d.FilePath(x)); err != nil {
					t.Fatal(err)
				}
			}
			serverStore(t, e, "Archive", []uint32{1, 2}, imap.StoreFlagsAdd, imap.FlagDeleted)
			return e
		}},
		{"moves both sides", func(t *testing.T) *env {
			e := synced(t)
			d := e.dir("INBOX")
			for i, x := range e.entries("INBOX")[:3] {
				name := x.Name
				if i == 2 { // read, then saved: moved with a new flag
					name = x.Key + ",U=" + fmt.Sprint(x.UID) + ":" + (x.Flags ^ maildir.FlagFlagged).Info()
				}
				if err := os.Rename(d.FilePath(x), filepath.Join(e.dir("Archive").Path, "cur", name)); err != nil {
					t.Fatal(err)
				}
			}
			c := e.d.Client(t, testenv.DefaultUser.Name)
			defer c.Logout()
			if _, err := c.Select("Archive", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait(); err != nil {
				t.Fatal(err)
			}
			return e
		}},
		{"changes queued through the store's door", func(t *testing.T) *env {
			e := synced(t)
			es := e.entries("INBOX")
			e.doorExpunge("INBOX", es[0].UID)
			e.doorExpunge("INBOX", es[1].UID)
			e.doorExpunge("INBOX", es[2].UID)
			e.serverSetFlags("INBOX", es[2].UID, imap.StoreFlagsAdd, imap.FlagFlagged) // kept: fetched again
			e.doorMove("INBOX", "Archive", es[3].UID)
			m := e.doorMove("INBOX", "Archive", es[4].UID)
			e.doorFlags(m, m.Flags^maildir.FlagFlagged)
			e.doorMove("INBOX", "Archive", es[5].UID)
			e.serverExpunge("INBOX", es[5].UID) // source gone: uploaded
			f := e.rowByUID("INBOX", es[6].UID)
			e.doorFlags(f, f.Flags^maildir.FlagSeen)
			return e
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			e := sc.setup(t)
			e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders, o.DryRun = true, true, true }
			before := e.snapshot()
			dry, err := e.trySyncErr()
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if after := e.snapshot(); after != before {
				t.Fatalf("the dry run changed something:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
			real, err := e.trySyncErr()
			if err != nil {
				t.Fatalf("real run: %v", err)
			}
			if !dry.DryRun || real.DryRun {
				t.Errorf("DryRun marks: dry %v, real %v", dry.DryRun, real.DryRun)
			}
			// A flag change the plan makes to a message it moves has UID
			// 0: the MOVE gives the UID.
			for i, f := range real.Folders {
				for k, a := range f.Actions {
					for _, da := range dry.Actions() {
						if da.Op == imapsync.OpFlagsServer && da.UID == 0 && da.Folder == a.Folder && da.Key == a.Key && a.Op == da.Op {
							real.Folders[i].Actions[k].UID = 0
						}
					}
				}
			}
			if d, r := planSummary(dry), planSummary(real); d != r {
				t.Errorf("the dry run planned:\n%s\nthe real run did:\n%s", d, r)
			}
			if tot := real.Totals(); tot.New+tot.Uploaded+tot.FlagsChanged+tot.FlagsPushed+tot.Expunged+tot.ExpungedRemote+real.Moved == 0 {
				t.Errorf("the scenario did nothing: %s", planSummary(real))
			}
			e.compare()
		})
	}
}

// trySyncErr is trySync without forcing, returning the error.
func (e *env) trySyncErr() (*imapsync.Result, error) {
	res, _, err := e.trySync(false)
	return res, err
}
