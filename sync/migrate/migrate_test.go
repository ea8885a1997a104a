package migrate_test

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
	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/migrate"
)

var (
	alice = testenv.User{Name: "alice", Password: "alice-pass"}
	bob   = testenv.User{Name: "bob", Password: "bob-pass"}
)

// env is a Dovecot with two users and a store that holds alice's mail.
type env struct {
	t    *testing.T
	d    *testenv.Dovecot
	root string
	st   *index.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := testenv.StartDovecot(t, alice, bob)
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{t: t, d: d, root: root, st: st}
}

func (e *env) endpoint(u testenv.User) imapsync.Endpoint {
	return imapsync.Endpoint{Addr: e.d.IMAPAddr(), TLS: "none", Username: u.Name, Password: u.Password}
}

// pull syncs alice's account into the store, read-only upstream.
func (e *env) pull() {
	e.t.Helper()
	_, err := imapsync.Sync(context.Background(), imapsync.Options{
		Account: "alice", Root: e.root, Index: e.st, Endpoint: e.endpoint(alice), Direction: "pull",
	})
	if err != nil {
		e.t.Fatalf("pulling alice into the store: %v", err)
	}
}

func (e *env) options() migrate.Options {
	return migrate.Options{Index: e.st, Root: e.root, Source: "alice", Dest: e.endpoint(bob), DestAccount: "bob"}
}

func (e *env) run(o migrate.Options) *migrate.Report {
	e.t.Helper()
	rep, err := migrate.Run(context.Background(), o)
	if err != nil {
		e.t.Fatalf("migrate: %v", err)
	}
	for _, f := range rep.Folders {
		e.t.Logf("%v", f)
	}
	return rep
}

// mailbox fetches every folder of a user (see mirrortest.Mailboxes).
func mailbox(t *testing.T, d *testenv.Dovecot, user string) map[string][]mirrortest.MessageState {
	t.Helper()
	m, err := mirrortest.Mailboxes(d.Client(t, user))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameMailboxes checks that dest holds exactly src's messages (folders
// renamed by rename), each exactly once, with the same flags and dates.
func sameMailboxes(t *testing.T, src, dest map[string][]mirrortest.MessageState, rename map[string]string) {
	t.Helper()
	for _, d := range mirrortest.DiffMailboxes(src, dest, rename) {
		t.Error(d)
	}
}

// seedAlice fills alice's account: n corpus messages over three folders
// (one nested, one non-ASCII), two byte-identical copies of one message,
// two messages without Message-ID, and extra flags and keywords.
func seedAlice(t *testing.T, d *testenv.Dovecot, n int) {
	t.Helper()
	msgs := corpus.Generate(11, n, corpus.Options{Folders: []string{"INBOX", "Archiv/2023", "Entwürfe"}})
	dup := msgs[3]
	dup.Folder = "INBOX"
	msgs = append(msgs, dup, dup)
	for i, date := range []time.Time{time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC), time.Date(2021, 3, 4, 5, 6, 8, 0, time.UTC)} {
		raw := fmt.Sprintf("From: x@example.org\r\nSubject: no id %d\r\nDate: %s\r\n\r\nbody without a Message-ID\r\n", i, date.Format(time.RFC1123Z))
		msgs = append(msgs, corpus.Message{Folder: "Archiv/2023", Date: date, Raw: []byte(raw), Flags: []imap.Flag{imap.FlagSeen}})
	}
	d.Seed(t, alice.Name, msgs)
	c := d.Client(t, alice.Name)
	for _, f := range []string{"Entwürfe", "INBOX"} {
		if _, err := c.Select(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		set := imap.SeqSetNum(1, 2, 3, 5, 8, 13)
		err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
			Flags: []imap.Flag{"$Label2", "Projekt", imap.FlagAnswered, imap.FlagForwarded}}, nil).Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func size(short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}

// TestIMAPToIMAP: alice's three folders go to bob, one of them under
// another name: every message exactly once with its flags and internal
// date, a clean report, and a second run copies nothing.
func TestIMAPToIMAP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedAlice(t, e.d, size(200, 600))
	e.pull()
	src := mailbox(t, e.d, alice.Name)
	total := 0
	for _, m := range src {
		total += len(m)
	}

	o := e.options()
	o.NoMultiAppend = true // the one-APPEND-each path; the other tests use MULTIAPPEND
	o.Map = map[string]string{"Archiv/2023": "Archive/2023"}
	start := time.Now()
	rep := e.run(o)
	t.Logf("first run: %d messages in %v", total, time.Since(start))
	tot := rep.Totals()
	if tot.Copied != total || tot.Missing != 0 || tot.Extra != 0 || tot.Differ != 0 || tot.Failed != 0 || !rep.Complete() {
		t.Errorf("first run: %+v, want %d copied and nothing missing", tot, total)
	}
	if tot.SourceCount != total || tot.DestCount != total || tot.SourceBytes != tot.DestBytes || tot.CopiedBytes != tot.DestBytes {
		t.Errorf("first run: counts %+v", tot)
	}
	if len(rep.Folders) != 3 {
		t.Errorf("report has %d folders, want 3", len(rep.Folders))
	}
	for _, f := range rep.Folders {
		if f.Dest == "Archive/2023" && (!f.Created || !slices.Equal(f.Sources, []string{"Archiv/2023"})) {
			t.Errorf("mapped folder: %+v", f)
		}
	}
	dest := mailbox(t, e.d, bob.Name)
	sameMailboxes(t, src, dest, o.Map)

	// A second run finds everything there.
	rep = e.run(o)
	if tot := rep.Totals(); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 || tot.DestCount != total || !rep.Complete() {
		t.Errorf("second run: %+v, want nothing copied", tot)
	}
	sameMailboxes(t, src, mailbox(t, e.d, bob.Name), o.Map)
}

// TestDryRun: a dry run changes nothing on the destination and reports
// what a run would copy, per folder; after a partial migration it counts
// only the rest, and a message only the destination has is Extra.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedAlice(t, e.d, 120)
	e.pull()
	src := mailbox(t, e.d, alice.Name)
	before := mailbox(t, e.d, bob.Name)

	o := e.options()
	o.DryRun = true
	rep := e.run(o)
	if !rep.DryRun {
		t.Error("report of a dry run says DryRun false")
	}
	for _, f := range rep.Folders {
		want := len(src[f.Dest])
		var bytes int64
		for _, s := range f.Sources {
			bytes += folderBytes(t, e.st, s)
		}
		if f.Copied != want || f.Missing != want || f.SourceCount != want || f.DestCount != 0 ||
			f.CopiedBytes != bytes || f.SourceBytes != bytes || f.Created != (f.Dest != "INBOX") {
			t.Errorf("dry run, folder %s: %+v; want %d messages (%d bytes) to copy", f.Dest, f, want, bytes)
		}
	}
	if after := mailbox(t, e.d, bob.Name); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a dry run changed the destination: %v, before %v", after, before)
	}

	// Copy INBOX only, and give bob one message alice does not have.
	o.DryRun = false
	o.Folders = []string{"INBOX"}
	e.run(o)
	e.d.Seed(t, bob.Name, []corpus.Message{corpus.At(99, 0, corpus.Options{Folders: []string{"Entwürfe"}})})
	o.DryRun, o.Folders = true, nil
	rep = e.run(o)
	for _, f := range rep.Folders {
		switch f.Dest {
		case "INBOX":
			if f.Copied != 0 || f.Missing != 0 || f.DestCount != len(src["INBOX"]) || f.Extra != 0 {
				t.Errorf("dry run after copying INBOX: %+v", f)
			}
		case "Entwürfe":
			if f.Copied != len(src[f.Dest]) || f.Extra != 1 || f.DestCount != 1 || f.Created {
				t.Errorf("dry run, folder with one extra message: %+v", f)
			}
		}
	}
}

func folderBytes(t *testing.T, st *index.Store, folder string) int64 {
	t.Helper()
	var n int64
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("alice")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, folder)
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		for _, m := range rows {
			n += m.RFC822Size
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMissingFile: a message whose file is gone from the store cannot be
// copied: the others are, and the report counts it missing, with an error.
func TestMissingFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.d.Seed(t, alice.Name, corpus.Generate(12, 30, corpus.Options{Folders: []string{"INBOX"}}))
	e.pull()
	files, err := filepath.Glob(filepath.Join(e.root, "alice", "INBOX", "[cn][ue][rw]", "*")) // cur/ and new/ (unread)
	if err != nil || len(files) != 30 {
		t.Fatalf("%d files in the store (%v)", len(files), err)
	}
	if err := os.Remove(files[7]); err != nil {
		t.Fatal(err)
	}
	rep, err := migrate.Run(context.Background(), e.options())
	if err == nil || !strings.Contains(err.Error(), "INBOX") {
		t.Errorf("run with a missing file: error %v, want one naming INBOX", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	tot := rep.Totals()
	if tot.Copied != 29 || tot.Failed != 1 || tot.Missing != 1 || rep.Complete() {
		t.Errorf("report: %+v, want 29 copied, 1 failed and missing", tot)
	}
}
