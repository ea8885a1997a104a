package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"sort"
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
	"github.com/postfach/postfach/sync/pop3"
)

// nsEnv is two Dovecots: plain (no namespace prefix, '/' separator) with
// alice and bob, and hosted (the shape of many hosting providers: personal
// namespace "INBOX." with '.' separator, without CONDSTORE, MOVE,
// LIST-STATUS and ESEARCH) with carol and dave; and one store.
type nsEnv struct {
	t             *testing.T
	plain, hosted *testenv.Dovecot
	root          string
	st            *index.Store
}

var (
	carol = testenv.User{Name: "carol", Password: "carol-pass"}
	dave  = testenv.User{Name: "dave", Password: "dave-pass"}
)

func newNSEnv(t *testing.T) *nsEnv {
	t.Helper()
	e := &nsEnv{t: t, root: t.TempDir()}
	e.plain = testenv.StartDovecot(t, alice, bob)
	e.hosted = testenv.StartDovecot(t, carol, dave, testenv.WithNamespace("INBOX.", '.'), testenv.WithoutExtensions())
	var err error
	if e.st, err = index.OpenStore(e.root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	return e
}

func endpointOf(d *testenv.Dovecot, u testenv.User) imapsync.Endpoint {
	return imapsync.Endpoint{Addr: d.IMAPAddr(), TLS: "none", Username: u.Name, Password: u.Password}
}

// pull syncs u's account on d into the store as account u.Name, read-only.
func (e *nsEnv) pull(d *testenv.Dovecot, u testenv.User) {
	e.t.Helper()
	_, err := imapsync.Sync(context.Background(), imapsync.Options{
		Account: u.Name, Root: e.root, Index: e.st, Endpoint: endpointOf(d, u), Direction: "pull",
	})
	if err != nil {
		e.t.Fatalf("pulling %s into the store: %v", u.Name, err)
	}
}

// migrate runs source -> u on d, failing the test on an error.
func (e *nsEnv) migrate(source string, d *testenv.Dovecot, u testenv.User, edit func(*migrate.Options)) *migrate.Report {
	e.t.Helper()
	o := migrate.Options{Index: e.st, Root: e.root, Source: source, Dest: endpointOf(d, u), DestAccount: u.Name}
	if edit != nil {
		edit(&o)
	}
	rep, err := migrate.Run(context.Background(), o)
	if err != nil {
		e.t.Fatalf("migrate %s -> %s: %v", source, u.Name, err)
	}
	for _, f := range rep.Folders {
		e.t.Logf("%v (server folder %s)", f, f.Remote)
	}
	return rep
}

// hostedName is the server name of a local folder on the hosted server.
func hostedName(local string) string {
	if local == "INBOX" {
		return local
	}
	return "INBOX." + strings.ReplaceAll(local, "/", ".")
}

// checkRemotes checks that the report names each folder's server folder
// as name gives it.
func checkRemotes(t *testing.T, rep *migrate.Report, name func(string) string) {
	t.Helper()
	for _, f := range rep.Folders {
		if want := name(f.Dest); f.Remote != want {
			t.Errorf("folder %s: server folder %q, want %q", f.Dest, f.Remote, want)
		}
	}
}

// TestMigrateNamespace: migrating into a server whose personal namespace
// is "INBOX." puts every folder below it (Archive in INBOX.Archive,
// Lists/golang in INBOX.Lists.golang, INBOX in INBOX), from IMAP and from
// POP3; a dry run shows those names and changes nothing; verification
// and a second run (which copies nothing) find the folders there. Back
// the other way, from that server into one without a prefix, the prefix
// is dropped: folder for folder, alice's mailbox arrives in bob's as it
// was, byte for byte, with flags and dates.
func TestMigrateNamespace(t *testing.T) {
	t.Parallel()
	e := newNSEnv(t)
	folders := []string{"INBOX", "Archive", "Lists/golang", "Lists/rust/2024"}
	e.plain.Seed(t, alice.Name, corpus.Generate(21, size(30, 60), corpus.Options{Folders: folders}))
	c := e.plain.Client(t, alice.Name)
	if _, err := c.Select("Lists/golang", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged, "Projekt"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	src, err := mirrortest.Mailboxes(c)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range src {
		total += len(m)
	}
	e.pull(e.plain, alice)

	// A dry run shows the server names and creates nothing.
	before := mailboxOf(t, e.hosted, carol.Name)
	rep := e.migrate(alice.Name, e.hosted, carol, func(o *migrate.Options) { o.DryRun = true })
	checkRemotes(t, rep, hostedName)
	if tot := rep.Totals(); tot.Copied != total || len(rep.Folders) != len(folders) {
		t.Errorf("dry run: %+v over %d folders, want %d to copy over %d", tot, len(rep.Folders), total, len(folders))
	}
	if after := mailboxOf(t, e.hosted, carol.Name); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a dry run changed the destination: %v, before %v", after, before)
	}
	// namespace_prefix overrides the server's (none here): a dry run, as
	// the plain server has no INBOX children.
	prefix := "INBOX"
	rep = e.migrate(alice.Name, e.plain, bob, func(o *migrate.Options) { o.DryRun, o.DestNamespacePrefix = true, &prefix })
	checkRemotes(t, rep, func(l string) string {
		if l == "INBOX" {
			return l
		}
		return "INBOX/" + l
	})

	// IMAP without prefix -> IMAP with: folder for folder, below INBOX.
	rename := map[string]string{}
	for f := range src {
		rename[f] = hostedName(f)
	}
	for run := 1; run <= 2; run++ {
		rep = e.migrate(alice.Name, e.hosted, carol, nil)
		checkRemotes(t, rep, hostedName)
		want := map[int]int{1: total, 2: 0}[run]
		if tot := rep.Totals(); tot.Copied != want || tot.Missing != 0 || tot.Extra != 0 || tot.Differ != 0 ||
			tot.DestCount != total || !rep.Complete() {
			t.Errorf("run %d into the INBOX. namespace: %+v, want %d copied, nothing missing", run, tot, want)
		}
		sameMailboxes(t, src, mailboxOf(t, e.hosted, carol.Name), rename)
	}

	// POP3 -> IMAP with prefix, into a nested folder.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pop3.Fetch(ctx, pop3.FetchOptions{
		Account: "alicepop", Root: e.root, Index: e.st,
		Addr: e.plain.POP3Addr(), TLS: pop3.TLSNone, Username: alice.Name, Password: alice.Password,
		Keep: true, Timeout: 30 * time.Second,
	}); err != nil {
		t.Fatalf("POP3 fetch: %v", err)
	}
	for run := 1; run <= 2; run++ {
		rep = e.migrate("alicepop", e.hosted, dave, func(o *migrate.Options) { o.Map = map[string]string{"INBOX": "Old/POP3"} })
		checkRemotes(t, rep, hostedName)
		want := map[int]int{1: len(src["INBOX"]), 2: 0}[run]
		if tot := rep.Totals(); tot.Copied != want || tot.Missing != 0 || tot.DestCount != len(src["INBOX"]) || !rep.Complete() {
			t.Errorf("POP3 run %d into INBOX.Old.POP3: %+v, want %d copied, nothing missing", run, tot, want)
		}
	}
	got, sent := bodiesAt(t, e.hosted, dave.Name, "INBOX.Old.POP3"), bodiesAt(t, e.plain, alice.Name, "INBOX")
	if len(got) != len(sent) {
		t.Fatalf("INBOX.Old.POP3 holds %d messages, alice's INBOX %d", len(got), len(sent))
	}
	for i := range got {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("INBOX.Old.POP3: message %d differs from alice's", i)
		}
	}

	// IMAP with prefix -> IMAP without: the source's prefix is dropped.
	e.pull(e.hosted, carol)
	for run := 1; run <= 2; run++ {
		rep = e.migrate(carol.Name, e.plain, bob, nil)
		checkRemotes(t, rep, func(l string) string { return l })
		want := map[int]int{1: total, 2: 0}[run]
		if tot := rep.Totals(); tot.Copied != want || tot.Missing != 0 || tot.Extra != 0 || tot.DestCount != total || !rep.Complete() {
			t.Errorf("run %d out of the INBOX. namespace: %+v, want %d copied, nothing missing", run, tot, want)
		}
		sameMailboxes(t, src, mailboxOf(t, e.plain, bob.Name), nil)
	}
}

// TestMigrateServerSpelling: a destination folder given in the server's
// spelling ("INBOX.Archive" where the delimiter is '.') is refused with a
// hint rather than created as INBOX.INBOX.Archive; the other folders are
// copied.
func TestMigrateServerSpelling(t *testing.T) {
	t.Parallel()
	e := newNSEnv(t)
	e.plain.Seed(t, alice.Name, corpus.Generate(22, 10, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.pull(e.plain, alice)
	o := migrate.Options{Index: e.st, Root: e.root, Source: alice.Name, Dest: endpointOf(e.hosted, carol), DestAccount: carol.Name,
		Map: map[string]string{"Archive": "INBOX.Archive"}}
	rep, err := migrate.Run(context.Background(), o)
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), `say "Archive"`) {
		t.Errorf("error %v, want one suggesting \"Archive\"", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	for _, f := range rep.Folders {
		if f.Dest == "INBOX" && (f.Err != nil || f.Missing != 0 || f.Copied == 0) {
			t.Errorf("INBOX: %+v, want copied", f)
		}
	}
	m := mailboxOf(t, e.hosted, carol.Name)
	if _, ok := m["INBOX.INBOX.Archive"]; ok {
		t.Errorf("INBOX.INBOX.Archive was created: %v", m)
	}
}

// mailboxOf fetches every folder of a user (see mirrortest.Mailboxes).
func mailboxOf(t *testing.T, d *testenv.Dovecot, user string) map[string][]mirrortest.MessageState {
	t.Helper()
	m, err := mirrortest.Mailboxes(d.Client(t, user))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bodiesAt returns the messages (BODY[]) of user's folder on d, sorted.
func bodiesAt(t *testing.T, d *testenv.Dovecot, user, folder string) [][]byte {
	t.Helper()
	c := d.Client(t, user)
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.FindBodySection(section)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}
