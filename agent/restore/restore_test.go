package restore_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/agent/backup"
	"github.com/postfach/postfach/agent/restore"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/migrate"
)

var (
	alice = testenv.User{Name: "alice", Password: "alice-pass"} // the account backed up
	bob   = testenv.User{Name: "bob", Password: "bob-pass"}     // restored into
	carol = testenv.User{Name: "carol", Password: "carol-pass"} // holds what the archive view restores as
	dave  = testenv.User{Name: "dave", Password: "dave-pass"}   // restored into, by folder
)

// archived is the archive view's folder in the tests.
const archived = restore.ArchiveView + "/INBOX"

// env is a Dovecot, a store that holds alice's mail plus an archive view
// folder, and a snapshot of that store.
type env struct {
	t    *testing.T
	d    *testenv.Dovecot
	root string
	st   *index.Store
	snap string // the snapshot's directory
	// want is what the whole snapshot restores as on an IMAP account:
	// alice's mailboxes and, as Archive-Deleted/INBOX, the archived
	// messages (seeded into carol to know their server state).
	want map[string][]mirrortest.MessageState
	// archivedMsgs is the archived messages' state (carol's INBOX).
	archivedMsgs []mirrortest.MessageState
}

func size(short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}

func newEnv(t *testing.T, n int, opts ...testenv.Option) *env {
	t.Helper()
	ctx := context.Background()
	d := testenv.StartDovecot(t, append([]testenv.Option{alice, bob, carol, dave}, opts...)...)
	msgs := corpus.Generate(31, n, corpus.Options{Folders: []string{"INBOX", "Archiv/2024", "Entwürfe"}})
	// A message twice (restored twice), one without Message-ID.
	msgs = append(msgs, msgs[2])
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	msgs = append(msgs, corpus.Message{Folder: "Archiv/2024", Date: date, Flags: []imap.Flag{imap.FlagSeen, "Projekt"},
		Raw: []byte("From: x@example.org\r\nSubject: no id\r\nDate: " + date.Format(time.RFC1123Z) + "\r\n\r\nbody without a Message-ID\r\n")})
	for i := range msgs {
		if i%7 == 3 {
			msgs[i].Flags = append(msgs[i].Flags, imap.FlagFlagged, "$Label2")
		}
	}
	d.Seed(t, alice.Name, msgs)

	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, err = imapsync.Sync(ctx, imapsync.Options{Account: "alice", Root: root, Index: st, Direction: "pull",
		Endpoint: imapconn.Endpoint{Addr: d.IMAPAddr(), TLS: "none", Username: alice.Name, Password: alice.Password}})
	if err != nil {
		t.Fatal(err)
	}
	// The archive view: a local-only folder (as the archive work makes
	// it), here with three messages appended through the door.
	var acct index.AccountID
	if err := st.Read(ctx, func(tx *index.ReadTx) error { acct, err = tx.Account("alice"); return err }); err != nil {
		t.Fatal(err)
	}
	f, err := st.CreateFolder(ctx, acct, archived, nil)
	if err != nil {
		t.Fatal(err)
	}
	gone := corpus.Generate(77, 3, corpus.Options{Folders: []string{"Archive-Deleted/INBOX"}})
	for i, m := range gone {
		m.Flags = []imap.Flag{imap.FlagSeen}
		if i == 1 {
			m.Flags = append(m.Flags, imap.FlagAnswered, "Projekt")
		}
		gone[i] = m
		fl, kw := maildir.FlagsFromIMAP(m.Flags)
		if _, err := st.Append(ctx, f.ID, strings.NewReader(string(m.Raw)), fl, kw, m.Date); err != nil {
			t.Fatal(err)
		}
	}
	d.Seed(t, carol.Name, gone)

	res, err := backup.Backup(ctx, backup.Options{Store: st, To: filepath.Join(t.TempDir(), "backups")})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, d: d, root: root, st: st, snap: res.Snapshot}
	e.want = mailboxes(t, d, alice.Name)
	c := mailboxes(t, d, carol.Name)
	e.archivedMsgs = c["Archive-Deleted/INBOX"]
	e.want["Archive-Deleted/INBOX"] = e.archivedMsgs
	if len(e.archivedMsgs) != 3 {
		t.Fatalf("carol has %v", c)
	}
	return e
}

// open opens the snapshot for restoring.
func (e *env) open() *restore.Snapshot {
	e.t.Helper()
	s, err := restore.Open(context.Background(), e.snap, e.t.TempDir(), true)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

func (e *env) imapOptions(u testenv.User) restore.IMAPOptions {
	return restore.IMAPOptions{Dest: imapconn.Endpoint{Addr: e.d.IMAPAddr(), TLS: "none", Username: u.Name, Password: u.Password}, DestAccount: u.Name}
}

// checkSnapshot checks that the snapshot is as backup wrote it.
func (e *env) checkSnapshot() {
	e.t.Helper()
	rep, err := backup.VerifySnapshot(context.Background(), e.snap, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range rep.Differences {
		e.t.Errorf("the snapshot changed: %v", d)
	}
}

func mailboxes(t *testing.T, d *testenv.Dovecot, user string) map[string][]mirrortest.MessageState {
	t.Helper()
	m, err := mirrortest.Mailboxes(d.Client(t, user))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func totals(reps []*migrate.Report) migrate.FolderReport {
	var t migrate.FolderReport
	for _, r := range reps {
		x := r.Totals()
		t.SourceCount += x.SourceCount
		t.DestCount += x.DestCount
		t.Copied += x.Copied
		t.Missing += x.Missing
		t.Extra += x.Extra
		t.Failed += x.Failed
		t.Differ += x.Differ
	}
	return t
}

func count(m map[string][]mirrortest.MessageState) int {
	n := 0
	for _, msgs := range m {
		n += len(msgs)
	}
	return n
}

// TestToIMAP: a whole snapshot restored into an empty Dovecot user holds
// every message once, by content (bytes, flags, keywords, INTERNALDATE),
// the archive view's folder as Archive-Deleted/INBOX; a rerun copies
// nothing; the snapshot is unchanged.
func TestToIMAP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, size(60, 300))
	s := e.open()
	n := count(e.want)
	reps, err := s.ToIMAP(context.Background(), e.imapOptions(bob))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		for _, f := range r.Folders {
			t.Logf("%v", f)
		}
	}
	if tot := totals(reps); tot.Copied != n || tot.Missing != 0 || tot.Extra != 0 || tot.Differ != 0 || tot.Failed != 0 || tot.SourceCount != n {
		t.Errorf("first run: %+v, want %d copied", tot, n)
	}
	for _, d := range mirrortest.DiffMailboxes(e.want, mailboxes(t, e.d, bob.Name), nil) {
		t.Error(d)
	}

	reps, err = s.ToIMAP(context.Background(), e.imapOptions(bob))
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 || tot.DestCount != n {
		t.Errorf("rerun: %+v, want nothing copied", tot)
	}
	for _, d := range mirrortest.DiffMailboxes(e.want, mailboxes(t, e.d, bob.Name), nil) {
		t.Error(d)
	}
	e.checkSnapshot()
}

// TestToIMAPFolders: picked folders restore into the destination folder
// (the archive view back into INBOX), a whole snapshot below it; Select
// names what it cannot find.
func TestToIMAPFolders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, size(40, 120))
	s := e.open()
	ctx := context.Background()

	sel, err := s.Select(ctx, []string{"alice:" + archived})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 1 || sel[0].Name != archived || sel[0].Messages != 3 {
		t.Fatalf("Select: %+v", sel)
	}
	o := e.imapOptions(dave)
	o.Folders, o.Folder = sel, "INBOX"
	reps, err := s.ToIMAP(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != 3 || tot.Missing != 0 {
		t.Errorf("archive view into INBOX: %+v", tot)
	}
	got := mailboxes(t, e.d, dave.Name)
	if !slices.Equal(got["INBOX"], e.archivedMsgs) {
		t.Errorf("dave's INBOX: %v, want the archived messages %v", got["INBOX"], e.archivedMsgs)
	}

	// The whole snapshot below Restored/.
	o = e.imapOptions(dave)
	o.Folder = "Restored"
	if _, err := s.ToIMAP(ctx, o); err != nil {
		t.Fatal(err)
	}
	exp := map[string][]mirrortest.MessageState{"INBOX": e.archivedMsgs}
	for f, msgs := range e.want {
		exp["Restored/"+f] = msgs
	}
	for _, d := range mirrortest.DiffMailboxes(exp, mailboxes(t, e.d, dave.Name), nil) {
		t.Error(d)
	}

	// A folder name alone picks it in every account; unknown names fail.
	if sel, err := s.Select(ctx, []string{"inbox", "Entwürfe"}); err != nil || len(sel) != 2 || sel[0].Name != "Entwürfe" || sel[1].Name != "INBOX" {
		t.Errorf("Select(inbox, Entwürfe) = %+v, %v", sel, err)
	}
	if _, err := s.Select(ctx, []string{"alice:Nope"}); err == nil || !strings.Contains(err.Error(), "alice:Nope") {
		t.Errorf("Select of a missing folder: %v", err)
	}
	e.checkSnapshot()
}

// TestOpenRefuses: an incomplete snapshot, and one whose index differs
// from its manifest, are refused; neither is changed.
func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	ctx := context.Background()
	// Damaged index: one byte changed in a copy of the snapshot.
	bad := filepath.Join(t.TempDir(), "snap")
	if err := os.CopyFS(bad, os.DirFS(e.snap)); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(bad, ".postfach", "index.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Open(ctx, bad, t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "differs from its MANIFEST") {
		t.Errorf("damaged index: %v", err)
	}
	if err := os.Remove(filepath.Join(bad, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Open(ctx, bad, t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("no manifest: %v", err)
	}
	if _, err := restore.Open(ctx, t.TempDir(), t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "not a postfach snapshot") {
		t.Errorf("an empty directory: %v", err)
	}
	e.checkSnapshot()
}

// TestToIMAPDotServer: on a server whose folders are below "INBOX." with
// '.' between levels, a whole snapshot restores with every folder in its
// place, the archive view as INBOX.Archive-Deleted.INBOX (a name with its
// leading dot would not be one there).
func TestToIMAPDotServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20)
	d := testenv.StartDovecot(t, bob, testenv.WithNamespace("INBOX.", '.'))
	s := e.open()
	o := restore.IMAPOptions{Dest: imapconn.Endpoint{Addr: d.IMAPAddr(), TLS: "none", Username: bob.Name, Password: bob.Password}, DestAccount: bob.Name}
	reps, err := s.ToIMAP(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Missing != 0 || tot.Copied != count(e.want) {
		t.Errorf("%+v, want %d copied", tot, count(e.want))
	}
	rename := map[string]string{}
	for f := range e.want {
		if f != "INBOX" {
			rename[f] = "INBOX." + strings.ReplaceAll(f, "/", ".")
		}
	}
	for _, diff := range mirrortest.DiffMailboxes(e.want, mailboxes(t, d, bob.Name), rename) {
		t.Error(diff)
	}
}
