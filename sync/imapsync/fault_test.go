package imapsync_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

// The fault matrix for IMAP sync: each case runs imapsync.Sync through a
// faultproxy that breaks one protocol phase (a cut, a reset, a stall or a
// hang), then one clean run straight to Dovecot. The faulted run may fail,
// but with an error, never a panic or a hang (its context is short, and a
// watchdog fails the case with the goroutines of a run that outlives it);
// and a faulted run that reports success must have done its whole job.
// After the clean run the store is an exact mirror of the server
// (mirrortest.Compare: every message once, byte for byte, with its flags,
// one row per file), the server holds exactly the expected messages
// (content, flags and keywords: nothing lost, nothing doubled, every local
// change carried up), and the index passes PRAGMA integrity_check after
// both runs. Every case asserts that its fault fired.
//
// Kinds of case:
//
//	pull  the first sync of an account into an empty store
//	incr  a sync after server changes: new messages (one large, one in a
//	      new folder), flag changes, an expunge
//	push  a sync after local changes: two deleted files, two flag renames,
//	      three new files (one large, one in another folder)

type imapFault struct {
	name    string
	kind    string // pull, incr, push
	short   bool   // part of the -short matrix
	fault   faultproxy.Fault
	noMulti bool // upload with one APPEND per message (go-imap), not MULTIAPPEND
}

const (
	bigLiteral = 100_000 // a literal at least this large is one of the large messages
	stallFor   = 400 * time.Millisecond
	runFor     = 10 * time.Second // context of a faulted run
	hangRunFor = 2 * time.Second  // how long a run whose stream hangs goes on after the hang (faultproxy.Faulted)
	caseWidth  = 4                // cases run at a time
)

func imapFaults() []imapFault {
	up, down := faultproxy.Up, faultproxy.Down
	drop, reset, stall, hang := faultproxy.Drop, faultproxy.Reset, faultproxy.Stall, faultproxy.Hang
	f := func(dir faultproxy.Dir, pattern string, after int64, a faultproxy.Action) faultproxy.Fault {
		return faultproxy.Fault{Dir: dir, Pattern: pattern, After: after, Action: a, Max: 1, For: stallFor}
	}
	at := func(conn int, dir faultproxy.Dir, pos int64, a faultproxy.Action) faultproxy.Fault {
		return faultproxy.Fault{Conn: conn, Dir: dir, At: pos, Action: a, For: stallFor}
	}
	lit := func(dir faultproxy.Dir, min, after int64, a faultproxy.Action) faultproxy.Fault {
		return faultproxy.Fault{Dir: dir, Literal: min, After: after, Action: a, Max: 1, For: stallFor}
	}
	cases := []imapFault{
		// greeting
		{name: "greeting/none", kind: "pull", short: true, fault: at(1, down, 0, drop)},
		{name: "greeting/half", kind: "pull", fault: at(1, down, 10, drop)},
		{name: "greeting/stall", kind: "pull", fault: at(1, down, 0, stall)},
		{name: "greeting/second-conn", kind: "incr", short: true, fault: at(2, down, 5, drop)},
		// login
		{name: "login/command-cut", kind: "pull", fault: f(up, "LOGIN", 3, drop)},
		{name: "login/answer-lost", kind: "pull", short: true, fault: f(down, "] Logged in", 0, drop)},
		{name: "login/reset", kind: "push", fault: f(up, "LOGIN", 8, reset)},
		// LIST
		{name: "list/command-cut", kind: "pull", fault: f(up, "LIST", 2, drop)},
		{name: "list/answer-cut", kind: "incr", short: true, fault: f(down, "* LIST", 6, drop)},
		{name: "list/stall", kind: "push", fault: f(down, "* LIST", 0, stall)},
		{name: "list/hang", kind: "pull", short: true, fault: f(down, "* LIST", 0, hang)},
		// SELECT
		{name: "select/command-cut", kind: "pull", fault: f(up, "SELECT", 3, drop)},
		{name: "select/answer-cut", kind: "incr", short: true, fault: f(down, "[UIDVALIDITY", 0, drop)},
		{name: "select/hang", kind: "push", fault: f(down, "EXISTS", 0, hang)},
		// FETCH: metadata, changes, bodies
		{name: "fetch/meta-cut", kind: "pull", fault: faultproxy.Fault{Dir: down, Pattern: "RFC822.SIZE", Count: 3, Action: drop, Max: 1}},
		{name: "fetch/changedsince-cut", kind: "incr", short: true, fault: f(down, "MODSEQ (", 0, drop)},
		{name: "fetch/search-cut", kind: "incr", fault: f(down, "* ESEARCH", 4, drop)},
		{name: "fetch/literal-drop", kind: "pull", short: true, fault: lit(down, bigLiteral, 0, drop)},
		{name: "fetch/literal-reset", kind: "pull", fault: lit(down, bigLiteral, 0, reset)},
		{name: "fetch/literal-small", kind: "pull", fault: lit(down, 800, 300, drop)},
		{name: "fetch/literal-stall", kind: "pull", fault: lit(down, bigLiteral, 0, stall)},
		{name: "fetch/literal-hang", kind: "pull", short: true, fault: lit(down, bigLiteral, 0, hang)},
		{name: "fetch/third-message", kind: "pull", fault: f(down, "* 3 FETCH", 20, drop)},
		{name: "fetch/every-conn", kind: "pull", fault: faultproxy.Fault{Dir: down, Literal: bigLiteral, Action: drop}},
		{name: "fetch/new-literal", kind: "incr", short: true, fault: lit(down, bigLiteral, 0, drop)},
		// APPEND
		{name: "append/command-cut", kind: "push", fault: f(up, "APPEND", 4, drop)},
		{name: "append/literal-drop", kind: "push", short: true, fault: lit(up, bigLiteral, 0, drop)},
		{name: "append/literal-reset", kind: "push", short: true, fault: lit(up, bigLiteral, 0, reset)},
		{name: "append/literal-stall", kind: "push", fault: lit(up, bigLiteral, 0, stall)},
		{name: "append/answer-lost", kind: "push", short: true, fault: f(down, "Append completed", 0, drop)},
		// the second folder's APPEND, pipelined behind the first's (its answer may not have come)
		{name: "append/second-command-cut", kind: "push", fault: faultproxy.Fault{Dir: up, Pattern: "APPEND", Count: 2, After: 4, Action: drop, Max: 1}},
		{name: "append/second-answer-lost", kind: "push", short: true, fault: faultproxy.Fault{Dir: down, Pattern: "Append completed", Count: 2, Action: drop, Max: 1}},
		{name: "append/single-literal-reset", kind: "push", noMulti: true, fault: lit(up, bigLiteral, 0, reset)},
		{name: "append/single-answer-lost", kind: "push", short: true, noMulti: true, fault: f(down, "Append completed", 0, drop)},
		// STORE
		{name: "store/command-cut", kind: "push", fault: f(up, "UID STORE", 3, drop)},
		{name: "store/answer-lost", kind: "push", short: true, fault: f(down, "Store completed", 0, drop)},
		{name: "store/deleted-answer-lost", kind: "push", fault: faultproxy.Fault{Dir: down, Pattern: "Store completed", Count: 2, Action: drop, Max: 1}},
		// EXPUNGE
		{name: "expunge/command-cut", kind: "push", fault: f(up, "UID EXPUNGE", 4, drop)},
		{name: "expunge/answer-lost", kind: "push", short: true, fault: f(down, "Expunge completed", 0, drop)},
		{name: "expunge/stall", kind: "push", fault: f(down, "* 1 EXPUNGE", 0, stall)},
		// LOGOUT
		{name: "logout/cut", kind: "pull", fault: f(down, "* BYE", 0, drop)},
		{name: "logout/hang", kind: "push", fault: f(down, "* BYE", 0, hang)},
	}
	// Sweeps: a cut at byte N of the first connection whose stream
	// reaches it, wherever that falls in the protocol.
	for i, n := range []int64{60, 400, 1500, 4000, 9000, 20000, 60000, 120000, 200000} {
		cases = append(cases, imapFault{name: fmt.Sprintf("sweep/pull-down-%d", n), kind: "pull", short: i%4 == 0,
			fault: faultproxy.Fault{Dir: down, At: n, Action: drop, Max: 1}})
	}
	for i, n := range []int64{30, 120, 400, 1000, 3000, 30000, 90000, 150000} {
		cases = append(cases, imapFault{name: fmt.Sprintf("sweep/push-up-%d", n), kind: "push", short: i%4 == 1,
			fault: faultproxy.Fault{Dir: up, At: n, Action: drop, Max: 1}})
	}
	for i, n := range []int64{2000, 8000, 40000, 150000} {
		cases = append(cases, imapFault{name: fmt.Sprintf("sweep/incr-down-%d", n), kind: "incr", short: i%4 == 2,
			fault: faultproxy.Fault{Dir: down, At: n, Action: reset, Max: 1}})
	}
	return cases
}

// TestFaultMatrix runs imapFaults (the short ones with -short); see the
// comment above imapFault.
func TestFaultMatrix(t *testing.T) {
	cases := imapFaults()
	if testing.Short() {
		cases = slices.DeleteFunc(cases, func(c imapFault) bool { return !c.short })
	}
	users := make([]testenv.User, len(cases))
	for i := range cases {
		users[i] = testenv.User{Name: fmt.Sprintf("f%02d", i), Password: fmt.Sprintf("pass%02d", i)}
	}
	opts := make([]testenv.Option, len(users))
	for i, u := range users {
		opts[i] = u
	}
	d := testenv.StartDovecot(t, opts...)
	start := time.Now()
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	faultproxy.RunCases(t, caseWidth, names, func(t *testing.T, i int) {
		runIMAPFault(t, d, users[i], cases[i], int64(100+i))
	})
	t.Logf("%d fault cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
}

// faultCorpus is a case's account: 16 messages, half of them in INBOX,
// the others in Archive and Lists/Go; two of them (one in INBOX) with a
// 150 KB attachment.
func faultCorpus(seed int64) []corpus.Message {
	msgs := corpus.Generate(seed, 16, corpus.Options{BigAttachmentEvery: 8, BigAttachmentSize: 150 << 10})
	for i := range msgs {
		msgs[i].Folder = []string{"INBOX", "Archive", "INBOX", "Lists/Go"}[i%4]
	}
	return msgs
}

// faultEnv is one case's account and store.
type faultEnv struct {
	t     *testing.T
	d     *testenv.Dovecot
	user  testenv.User
	root  string
	store *index.Store
	log   *testenv.Buffer
}

func runIMAPFault(t *testing.T, d *testenv.Dovecot, user testenv.User, c imapFault, seed int64) {
	m := &faultEnv{t: t, d: d, user: user, root: t.TempDir(), log: &testenv.Buffer{}}
	st, err := index.OpenStore(m.root)
	if err != nil {
		t.Fatal(err)
	}
	m.store = st
	t.Cleanup(func() { st.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the runs:\n%s", m.log.String())
		}
	})

	d.Seed(t, user.Name, faultCorpus(seed))
	if c.kind != "pull" {
		if err := m.sync(context.Background(), d.IMAPAddr(), c); err != nil {
			t.Fatalf("first sync: %v", err)
		}
		m.check(m.serverState())
	}
	var want map[string][]string
	switch c.kind {
	case "incr":
		m.serverChanges(seed)
		want = m.serverState()
	case "push":
		want = m.localChanges(seed)
	default:
		want = m.serverState()
	}

	p, err := faultproxy.Start(d.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fault := c.fault
	fault.Name = c.name
	fmt.Fprintf(m.log, "--- faulted run (%s)\n", fault.String())
	_, err = faultproxy.Faulted(t, p, fault, runFor, hangRunFor, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, m.sync(ctx, p.Addr(), c)
	})
	if n := p.CountWithin(c.name, time.Second); n == 0 {
		t.Errorf("the fault never fired (faulted run: %v)", err)
	}
	t.Logf("faulted run: %v; fired %d, cut %+v", err, p.Count(c.name), p.Truncations())
	testenv.CheckIndex(t, m.root)
	if err == nil {
		// A run that reports success has done its whole job.
		m.check(want)
	}
	p.Close()

	fmt.Fprintf(m.log, "--- clean run\n")
	if err := m.sync(context.Background(), d.IMAPAddr(), c); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	m.check(want)
	testenv.CheckIndex(t, m.root)
}

func (m *faultEnv) sync(ctx context.Context, addr string, c imapFault) error {
	o := imapsync.Options{
		Account: "acct", Root: m.root, Index: m.store, DialAttempts: 1,
		ChunkSize: 5, BatchSize: 4, NoMultiAppend: c.noMulti,
		Endpoint: imapconn.Endpoint{Addr: addr, TLS: "none", Username: m.user.Name, Password: m.user.Password},
		Logger:   slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	_, err := imapsync.Sync(ctx, o)
	return err
}

// serverState is every folder's messages as the server has them: per
// message the SHA-256 of its content (LF line ends), its flags and its
// keywords, sorted.
func (m *faultEnv) serverState() map[string][]string {
	m.t.Helper()
	return faultState(m.serverFolders())
}

func faultState(server map[string][]mirrortest.ServerMessage) map[string][]string {
	out := map[string][]string{}
	for folder, msgs := range server {
		out[folder] = []string{}
		for _, s := range msgs {
			out[folder] = append(out[folder], stateKey(lf(s.Raw), s.Flags, s.Keywords))
		}
		sort.Strings(out[folder])
	}
	return out
}

func (m *faultEnv) serverFolders() map[string][]mirrortest.ServerMessage {
	m.t.Helper()
	server, err := mirrortest.ServerFolders(m.client())
	if err != nil {
		m.t.Fatal(err)
	}
	return server
}

func (m *faultEnv) client() *imapclient.Client {
	m.t.Helper()
	c, err := m.d.Dial(m.user.Name)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { c.Logout().Wait(); c.Close() })
	return c
}

func stateKey(content []byte, f maildir.Flags, kw []string) string {
	kw = slices.Clone(kw)
	for i := range kw {
		kw[i] = strings.ToLower(kw[i])
	}
	sort.Strings(kw)
	return fmt.Sprintf("%x %s %s", sha256.Sum256(content), f.Info(), strings.Join(kw, " "))
}

// check asserts that the store mirrors the server exactly and that the
// server holds exactly want.
func (m *faultEnv) check(want map[string][]string) {
	m.t.Helper()
	server := m.serverFolders()
	diffs := mirrortest.Compare(context.Background(), server, m.root, "acct", m.store)
	for i, d := range diffs {
		if i == 10 {
			m.t.Errorf("... and %d more", len(diffs)-10)
			break
		}
		m.t.Errorf("mirror: %s", d)
	}
	got := faultState(server)
	for _, f := range stateFolders(want, got) {
		if !slices.Equal(got[f], want[f]) {
			m.t.Errorf("server folder %q holds %d messages, want %d:\n got  %s\n want %s",
				f, len(got[f]), len(want[f]), strings.Join(got[f], "\n      "), strings.Join(want[f], "\n      "))
		}
	}
}

func stateFolders(maps ...map[string][]string) []string {
	var keys []string
	for _, m := range maps {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// serverChanges changes the account upstream: three new messages (a large
// one in INBOX, one in Archive, one in the new folder Neu), \Flagged added
// to two INBOX messages and \Seen removed from a third, and the fourth
// expunged.
func (m *faultEnv) serverChanges(seed int64) {
	m.t.Helper()
	more := corpus.Generate(seed+1000, 3, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 3, BigAttachmentSize: 150 << 10})
	more[0].Folder, more[1].Folder = "Archive", "Neu"
	m.d.Seed(m.t, m.user.Name, more)
	c := m.client()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		m.t.Fatal(err)
	}
	for _, s := range []struct {
		set  imap.SeqSet
		op   imap.StoreFlagsOp
		flag imap.Flag
	}{
		{imap.SeqSetNum(1, 2), imap.StoreFlagsAdd, imap.FlagFlagged},
		{imap.SeqSetNum(3), imap.StoreFlagsDel, imap.FlagSeen},
		{imap.SeqSetNum(4), imap.StoreFlagsAdd, imap.FlagDeleted},
	} {
		if err := c.Store(s.set, &imap.StoreFlags{Op: s.op, Silent: true, Flags: []imap.Flag{s.flag}}, nil).Close(); err != nil {
			m.t.Fatal(err)
		}
	}
	if err := c.Expunge().Close(); err != nil {
		m.t.Fatal(err)
	}
}

// localChanges changes the store as a mail client would: in INBOX the
// files of the two lowest UIDs deleted, \Flagged toggled on the third and
// \Seen on the fourth; three new files (a large one in INBOX, a small one
// in INBOX and one in Archive). It returns what the server must then hold.
func (m *faultEnv) localChanges(seed int64) map[string][]string {
	m.t.Helper()
	server := m.serverFolders()
	want := map[string]map[uint32]string{}
	for folder, msgs := range server {
		want[folder] = map[uint32]string{}
		for _, s := range msgs {
			want[folder][s.UID] = stateKey(lf(s.Raw), s.Flags, s.Keywords)
		}
	}
	kw := map[uint32][]string{}
	for _, s := range server["INBOX"] {
		kw[s.UID] = s.Keywords
	}
	path, err := maildir.FolderDir(m.root, "acct", "INBOX")
	if err != nil {
		m.t.Fatal(err)
	}
	dir, err := maildir.Open(path)
	if err != nil {
		m.t.Fatal(err)
	}
	entries, err := dir.Scan()
	if err != nil {
		m.t.Fatal(err)
	}
	if len(entries) < 4 {
		m.t.Fatalf("INBOX has %d messages, want at least 4", len(entries))
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].UID < entries[j].UID })
	for _, e := range entries[:2] {
		if err := os.Remove(dir.FilePath(e)); err != nil {
			m.t.Fatal(err)
		}
		delete(want["INBOX"], e.UID)
	}
	for i, toggle := range []maildir.Flags{maildir.FlagFlagged, maildir.FlagSeen} {
		e := entries[2+i]
		raw, err := os.ReadFile(dir.FilePath(e))
		if err != nil {
			m.t.Fatal(err)
		}
		if _, err := dir.SetFlags(e, e.Flags^toggle); err != nil {
			m.t.Fatal(err)
		}
		want["INBOX"][e.UID] = stateKey(raw, e.Flags^toggle, kw[e.UID])
	}
	news := corpus.Generate(seed+2000, 3, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 3, BigAttachmentSize: 150 << 10})
	news[1].Folder = "Archive"
	out := map[string][]string{}
	for i, n := range news {
		np, err := maildir.FolderDir(m.root, "acct", n.Folder)
		if err != nil {
			m.t.Fatal(err)
		}
		raw := lf(n.Raw)
		if err := os.WriteFile(filepath.Join(np, "new", fmt.Sprintf("170000000%d.fault%d.host", i, i)), raw, 0o600); err != nil {
			m.t.Fatal(err)
		}
		out[n.Folder] = append(out[n.Folder], stateKey(raw, 0, nil))
	}
	for folder, msgs := range want {
		for _, k := range msgs {
			out[folder] = append(out[folder], k)
		}
		if out[folder] == nil {
			out[folder] = []string{}
		}
		sort.Strings(out[folder])
	}
	return out
}
