package imapsync_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// Servers shaped like many hosting providers': every folder below
// "INBOX." with '.' as separator, and no CONDSTORE, QRESYNC, MOVE,
// LIST-STATUS or ESEARCH.

func newPrefixEnv(t *testing.T) *env {
	e := newEnv(t, testenv.WithNamespace("INBOX.", '.'), testenv.WithoutExtensions())
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	return e
}

// compareUnder is compare for a server with a namespace prefix: server
// folder INBOX.a.b is local folder a/b.
func (e *env) compareUnder(prefix string) map[string][]mirrortest.ServerMessage {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	server, err := mirrortest.ServerFoldersUnder(c, prefix)
	if err != nil {
		e.t.Fatal(err)
	}
	diffs := mirrortest.Compare(context.Background(), server, e.root, "acct", e.store)
	for i, d := range diffs {
		if i == 20 {
			e.t.Errorf("... and %d more", len(diffs)-20)
			break
		}
		e.t.Error(d)
	}
	if len(diffs) > 0 {
		e.t.FailNow()
	}
	return server
}

// localFolders lists the account's local folders.
func (e *env) localFolders() []string {
	e.t.Helper()
	var out []string
	err := maildir.WalkFolders(filepath.Join(e.root, "acct"), func(name string, _ *maildir.Dir) error {
		out = append(out, name)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// serverFolderNames lists the server's selectable folders by server name.
func (e *env) serverFolderNames() []string {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range list {
		if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			out = append(out, l.Mailbox)
		}
	}
	slices.Sort(out)
	return out
}

// appendServer appends one message to a server folder (its server name).
func (e *env) appendServer(folder, id string, flags ...imap.Flag) []byte {
	e.t.Helper()
	raw := []byte(fmt.Sprintf("From: a@example.org\r\nTo: b@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nbody of %s\r\n", id, id, id))
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(raw); err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		e.t.Fatalf("APPEND %s: %v", folder, err)
	}
	return raw
}

// writeLocal writes a new message into a local folder (created if need
// be), as a mail client would.
func (e *env) writeLocal(folder, id string) {
	e.t.Helper()
	raw := fmt.Sprintf("From: me@example.org\nSubject: %s\nMessage-ID: <%s@example.org>\nDate: Mon, 2 Mar 2026 11:00:00 +0000\n\nwritten here: %s\n", id, id, id)
	e.writeForeign(folder, "1772445600."+id+".laptop", []byte(raw))
}

// hasLocal reports whether a local folder holds the message id.
func (e *env) hasLocal(folder, id string) bool {
	e.t.Helper()
	_, ok := e.localMsgs(folder)[id+"@example.org"]
	return ok
}

// TestNamespacePrefixTwoWay: against an INBOX.-namespace server without
// CONDSTORE, MOVE, LIST-STATUS and ESEARCH, new messages, flag changes,
// moves and folder creation, renaming and deletion on both sides, nested
// folders included, end equal on both sides; local top-level folders are
// created below INBOX. upstream.
func TestNamespacePrefixTwoWay(t *testing.T) {
	e := newPrefixEnv(t)
	n := 24 // 4 a folder: a folder removal under max_delete_percent's 5
	if testing.Short() {
		n = 12
	}
	folders := []string{"INBOX", "INBOX.Archive", "INBOX.Lists.golang", "INBOX.Receipts", "INBOX.Tmp", "INBOX.Old"}
	e.seedSpread(1, n, folders...)
	e.sync()
	server := e.compareUnder("INBOX.")
	if got, want := e.localFolders(), []string{"Archive", "INBOX", "Lists/golang", "Old", "Receipts", "Tmp"}; !slices.Equal(got, want) {
		t.Fatalf("local folders %q, want %q", got, want)
	}
	for _, f := range []string{"Archive", "Lists/golang", "Receipts", "Tmp", "Old"} {
		if len(server[f]) == 0 {
			t.Fatalf("nothing seeded in %s", f)
		}
	}

	// Local changes.
	inbox := e.entries("INBOX")
	if _, err := e.dir("INBOX").SetFlags(inbox[0], inbox[0].Flags|maildir.FlagFlagged); err != nil {
		t.Fatal(err)
	}
	moved := inbox[1] // a client moves it to Archive
	if err := os.Rename(e.dir("INBOX").FilePath(moved), filepath.Join(e.dir("Archive").Path, "cur", moved.Name)); err != nil {
		t.Fatal(err)
	}
	e.writeLocal("Archive", "local-archive")
	e.writeLocal("Notes", "local-notes")           // a new top-level folder
	e.writeLocal("Notes/2025", "local-notes-2025") // and one below it
	if err := os.Rename(e.dir("Receipts").Path, filepath.Join(filepath.Dir(e.dir("Receipts").Path), "Bills")); err != nil {
		t.Fatal(err)
	}
	e.removeLocalFolder("Tmp")

	// Server changes.
	e.appendServer("INBOX", "server-inbox")
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if err := c.Create("INBOX.Projects.Q3", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.appendServer("INBOX.Projects.Q3", "server-projects")
	if _, err := c.Select("INBOX.Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("INBOX.Lists.golang", "INBOX.Lists.go", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("INBOX.Old").Wait(); err != nil {
		t.Fatal(err)
	}

	res, _ := e.sync()
	t.Logf("folder actions: %q", res.FolderActions)
	server = e.compareUnder("INBOX.")
	// The flags set on either side are on both (compare checks that they
	// agree; these say whose change won).
	for f, flag := range map[string]maildir.Flags{"INBOX": maildir.FlagFlagged, "Archive": maildir.FlagAnswered} {
		if !slices.ContainsFunc(server[f], func(m mirrortest.ServerMessage) bool { return m.Flags&flag != 0 }) {
			t.Errorf("%s: no message with flag %q", f, flag.Info())
		}
	}
	wantServer := []string{"INBOX", "INBOX.Archive", "INBOX.Bills", "INBOX.Lists.go", "INBOX.Notes", "INBOX.Notes.2025", "INBOX.Projects.Q3"}
	if got := e.serverFolderNames(); !slices.Equal(got, wantServer) {
		t.Errorf("server folders %q, want %q", got, wantServer)
	}
	if got, want := e.localFolders(), []string{"Archive", "Bills", "INBOX", "Lists/go", "Notes", "Notes/2025", "Projects/Q3"}; !slices.Equal(got, want) {
		t.Errorf("local folders %q, want %q", got, want)
	}
	for f, id := range map[string]string{"Archive": "local-archive", "Notes": "local-notes", "Notes/2025": "local-notes-2025",
		"INBOX": "server-inbox", "Projects/Q3": "server-projects"} {
		if !e.hasLocal(f, id) {
			t.Errorf("%s: %s missing", f, id)
		}
	}
	// Without LIST-STATUS, STATUS tells the renamed server folder: the
	// local one is renamed, not removed and fetched again.
	if len(linesWith(res.FolderActions, `rename local folder "Lists/golang" to "Lists/go" (renamed upstream)`)) != 1 {
		t.Errorf("the server's rename is not a local rename: %q", res.FolderActions)
	}
	if res.Moved != 1 {
		t.Errorf("%d moved upstream, want 1", res.Moved)
	}

	// Nothing left to do, and nothing changes.
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded+tot.ExpungedRemote+tot.FlagsPushed+tot.New+tot.Expunged+tot.FlagsChanged != 0 || len(res.FolderActions) != 0 {
		t.Errorf("third run did something: %+v %q", tot, res.FolderActions)
	}
	e.compareUnder("INBOX.")
}

// TestRefusedFolder: a folder the server refuses (CREATE of a name it does
// not allow; RENAME to one) is reported, with the account's other folders
// synced, new mail arriving, run after run; the folder stays local and is
// neither deleted nor recorded as synced.
func TestRefusedFolder(t *testing.T) {
	e := newPrefixEnv(t)
	e.seedSpread(2, 12, "INBOX", "INBOX.Archive", "INBOX.Keep")
	e.sync()
	e.compareUnder("INBOX.")

	e.writeLocal("~Drafts", "drafts-1") // Dovecot: "Invalid mailbox name: Begins with '~'"
	keep := e.dir("Keep").Path
	if err := os.Rename(keep, filepath.Join(filepath.Dir(keep), "~Keep")); err != nil {
		t.Fatal(err)
	}
	keepMsgs := e.localMsgs("~Keep")
	for run := 1; run <= 3; run++ {
		id := fmt.Sprintf("new-%d", run)
		e.appendServer("INBOX", id)
		e.appendServer("INBOX.Archive", id+"-archive")
		e.writeLocal("INBOX", id+"-up")
		res, _, err := e.trySync(false)
		if err == nil {
			t.Fatalf("run %d: no error for the refused folders", run)
		}
		for _, want := range []string{`folder "~Drafts": CREATE`, `folder "~Keep": RENAME`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("run %d: error %q does not say %q", run, err, want)
			}
		}
		if n := strings.Count(err.Error(), "\n") + 1; n != 2 {
			t.Errorf("run %d: %d error lines, want 2:\n%v", run, n, err)
		}
		if res == nil {
			t.Fatalf("run %d: no result", run)
		}
		if !e.hasLocal("INBOX", id) || !e.hasLocal("Archive", id+"-archive") {
			t.Errorf("run %d: new server mail did not arrive", run)
		}
		if _, ok := e.serverMsgs("INBOX")[id+"-up@example.org"]; !ok {
			t.Errorf("run %d: new local mail did not go up", run)
		}
		if !e.hasLocal("~Drafts", "drafts-1") {
			t.Fatalf("run %d: the refused folder's message is gone", run)
		}
		if err := sameMsgs("~Keep", keepMsgs, e.localMsgs("~Keep")); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if got := e.serverFolderNames(); !slices.Equal(got, []string{"INBOX", "INBOX.Archive", "INBOX.Keep"}) {
			t.Fatalf("run %d: server folders %q", run, got)
		}
		// For status: the known folder keeps the error; the refused new
		// one is not recorded as a synced folder.
		known := map[string]string{}
		e.store.Read(context.Background(), func(tx *index.ReadTx) error {
			acct, err := tx.Account("acct")
			if err != nil {
				return err
			}
			fs, err := tx.Folders(acct)
			for _, f := range fs {
				known[f.Name] = f.LastError
			}
			return err
		})
		if !strings.Contains(known["Keep"], "RENAME") {
			t.Errorf("run %d: the index does not keep Keep's error: %q", run, known["Keep"])
		}
		if _, ok := known["~Drafts"]; ok {
			t.Errorf("run %d: the refused new folder is in the index", run)
		}
	}
	// Renamed back, the folder syncs again as it was.
	if err := os.Rename(filepath.Join(filepath.Dir(keep), "~Keep"), keep); err != nil {
		t.Fatal(err)
	}
	e.removeLocalFolder("~Drafts")
	e.sync()
	e.compareUnder("INBOX.")
}

// TestNamespaceMigrate: an account synced before namespaces were honoured
// (local folders INBOX/Archive...) keeps its names; setting the prefix
// renames the local folders, with nothing downloaded, uploaded or deleted.
func TestNamespaceMigrate(t *testing.T) {
	e := newPrefixEnv(t)
	e.seedSpread(3, 12, "INBOX", "INBOX.Archive", "INBOX.Lists.golang")
	none := ""
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders, o.NamespacePrefix = true, true, &none }
	e.sync()
	e.compare() // server folder INBOX.Archive is INBOX/Archive locally
	record := filepath.Join(e.root, "acct", imapsync.NamespaceFile)
	if err := os.Remove(record); err != nil { // as before namespaces were recorded
		t.Fatal(err)
	}

	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	res, _ := e.sync()
	if tot := res.Totals(); tot.New+tot.Uploaded+tot.Expunged+tot.ExpungedRemote != 0 || len(res.FolderActions) != 0 {
		t.Fatalf("an existing account's run did something: %+v %q", tot, res.FolderActions)
	}
	e.compare()
	if b, err := os.ReadFile(record); err != nil || string(b) != "\"\"\n" {
		t.Fatalf("recorded %q, %v; want the empty prefix", b, err)
	}

	prefix := "INBOX."
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders, o.NamespacePrefix = true, true, &prefix }
	res, err := e.runWith(true, false)
	if err != nil || len(linesWith(res.FolderActions, "would rename local folder")) != 2 || len(res.FolderActions) != 2 || len(res.Folders) != 0 {
		t.Fatalf("dry run: %v, %q, %d folders planned", err, res.FolderActions, len(res.Folders))
	}
	// A local folder holding a new name already stops the change, before
	// anything is renamed.
	e.writeLocal("Lists/golang", "in-the-way")
	_, _, err = e.trySync(false)
	if err == nil || !strings.Contains(err.Error(), `a local folder "Lists/golang" exists already`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a local folder in the way: %v", err)
	}
	if got, want := e.localFolders(), []string{"INBOX", "INBOX/Archive", "INBOX/Lists/golang", "Lists/golang"}; !slices.Equal(got, want) {
		t.Fatalf("local folders %q, want %q", got, want)
	}
	e.removeLocalFolder("Lists")
	// A run that moved INBOX/Archive and died before the index was
	// written: the next one goes on.
	from, to := e.dir("INBOX/Archive").Path, filepath.Join(e.root, "acct", "Archive")
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}

	// A local folder not synced yet moves too: it becomes server folder
	// INBOX.Later, as it would have before.
	e.writeLocal("INBOX/Later", "later")

	res, _ = e.sync()
	if tot := res.Totals(); tot.New+tot.Expunged+tot.ExpungedRemote != 0 || tot.Uploaded != 1 {
		t.Errorf("the rename downloaded, uploaded or deleted: %+v", tot)
	}
	if _, ok := e.serverMsgs("INBOX.Later")["later@example.org"]; !ok {
		t.Errorf("the new local folder is not INBOX.Later upstream: server has %q", e.serverFolderNames())
	}
	if got, want := e.localFolders(), []string{"Archive", "INBOX", "Later", "Lists/golang"}; !slices.Equal(got, want) {
		t.Errorf("local folders %q, want %q", got, want)
	}
	e.compareUnder("INBOX.")
	if b, _ := os.ReadFile(record); string(b) != "\"INBOX.\"\n" {
		t.Errorf("recorded %q", b)
	}
	// Without the setting now, the recorded prefix holds; with the record
	// lost, the index's names tell it.
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	for _, lose := range []bool{false, true} {
		if lose {
			if err := os.Remove(record); err != nil {
				t.Fatal(err)
			}
		}
		res, _ = e.sync()
		if tot := res.Totals(); len(res.FolderActions) != 0 || tot.New+tot.Uploaded+tot.Expunged+tot.ExpungedRemote != 0 {
			t.Errorf("record lost %v: folder actions %q, %+v", lose, res.FolderActions, tot)
		}
		e.compareUnder("INBOX.")
		if b, _ := os.ReadFile(record); string(b) != "\"INBOX.\"\n" {
			t.Errorf("record lost %v: recorded %q", lose, b)
		}
	}
}

// TestNamespacePrefixNew: a new account on an INBOX.-namespace server
// takes the server's prefix (NAMESPACE) without being told.
func TestNamespacePrefixNew(t *testing.T) {
	e := newPrefixEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(4, 6, corpus.Options{Folders: []string{"INBOX", "INBOX.Sent"}}))
	e.writeLocal("Travel", "travel-1")
	e.sync()
	e.compareUnder("INBOX.")
	if got := e.serverFolderNames(); !slices.Equal(got, []string{"INBOX", "INBOX.Sent", "INBOX.Travel"}) {
		t.Errorf("server folders %q", got)
	}
}

// TestRefusedSelect: a folder the server will not open (its Maildir
// unreadable to Dovecot: SELECT answers NO) fails alone, run after run,
// while new mail arrives in the others; its local copy stays as it is.
func TestRefusedSelect(t *testing.T) {
	e := newPrefixEnv(t)
	e.seedSpread(5, 8, "INBOX", "INBOX.Archive")
	e.sync()
	e.compareUnder("INBOX.")
	archive := e.localMsgs("Archive")
	dir := filepath.Join(e.d.MailDir(testenv.DefaultUser.Name), ".Archive")
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	for run := 1; run <= 2; run++ {
		id := fmt.Sprintf("select-%d", run)
		e.appendServer("INBOX", id)
		begin := time.Now()
		_, _, err := e.trySync(false)
		t.Logf("run %d: %v (%s)", run, err, time.Since(begin))
		if err == nil || !strings.Contains(err.Error(), `folder "Archive"`) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("run %d: error %v, want one line for Archive", run, err)
		}
		if !e.hasLocal("INBOX", id) {
			t.Errorf("run %d: new mail did not arrive", run)
		}
		if err := sameMsgs("Archive", archive, e.localMsgs("Archive")); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.compareUnder("INBOX.")
}
