package migrate_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/migrate"
)

// The fault matrix for migrations: each case pulls a source account into
// a store, then runs migrate.Run with the destination behind a faultproxy
// that breaks one protocol phase (a cut, a reset, a stall or a hang), then
// one clean run straight to Dovecot. The faulted run may fail, but with an
// error, never a panic or a hang (a watchdog fails a run that outlives its
// short context); a faulted run that reports a complete migration must
// have one. After the clean run the report is complete and the
// destination holds every source message exactly once, with its content,
// flags, keywords and internal date, and nothing else
// (mirrortest.DiffMailboxes); the store's index passes PRAGMA
// integrity_check. Every case asserts that its fault fired.
//
// Kinds of case: "fresh" (the destination is empty: CREATE, APPEND, then
// the verification's EXAMINE and FETCH) and "partial" (INBOX was copied
// before: the plan EXAMINEs it and FETCHes its identities, Message-ID
// header literals included).

type migrateFault struct {
	name    string
	kind    string // fresh, partial
	short   bool   // part of the -short matrix
	fault   faultproxy.Fault
	noMulti bool // one APPEND per message (go-imap), not MULTIAPPEND
}

const (
	migrateStallFor   = 400 * time.Millisecond
	migrateRunFor     = 10 * time.Second
	migrateHangRunFor = 2 * time.Second
)

func migrateFaults() []migrateFault {
	up, down := faultproxy.Up, faultproxy.Down
	drop, reset, stall, hang := faultproxy.Drop, faultproxy.Reset, faultproxy.Stall, faultproxy.Hang
	f := func(dir faultproxy.Dir, pattern string, count int, after int64, a faultproxy.Action) faultproxy.Fault {
		return faultproxy.Fault{Dir: dir, Pattern: pattern, Count: count, After: after, Action: a, Max: 1, For: migrateStallFor}
	}
	lit := func(dir faultproxy.Dir, min, after int64, a faultproxy.Action) faultproxy.Fault {
		return faultproxy.Fault{Dir: dir, Literal: min, After: after, Action: a, Max: 1, For: migrateStallFor}
	}
	cases := []migrateFault{
		{name: "greeting/none", kind: "fresh", short: true, fault: faultproxy.Fault{Conn: 1, Dir: down, At: 0, Action: drop}},
		{name: "greeting/stall", kind: "partial", fault: faultproxy.Fault{Conn: 1, Dir: down, At: 0, Action: stall, For: migrateStallFor}},
		{name: "login/command-cut", kind: "fresh", fault: f(up, "LOGIN", 1, 3, drop)},
		{name: "login/answer-lost", kind: "partial", short: true, fault: f(down, "] Logged in", 1, 0, drop)},
		{name: "list/answer-cut", kind: "partial", fault: f(down, "* LIST", 1, 5, drop)},
		{name: "list/hang", kind: "fresh", short: true, fault: f(down, "* LIST", 1, 0, hang)},
		{name: "namespace/answer-cut", kind: "fresh", fault: f(down, "* NAMESPACE", 1, 5, drop)},
		{name: "namespace/hang", kind: "partial", short: true, fault: f(down, "* NAMESPACE", 1, 0, hang)},
		{name: "create/command-cut", kind: "fresh", fault: f(up, "CREATE", 1, 3, drop)},
		{name: "create/answer-lost", kind: "fresh", short: true, fault: f(down, "Create completed", 1, 0, drop)},
		{name: "examine/command-cut", kind: "partial", fault: f(up, "EXAMINE", 1, 3, drop)},
		{name: "examine/answer-cut", kind: "partial", short: true, fault: f(down, "[READ-ONLY]", 1, 0, drop)},
		{name: "fetch/header-literal-cut", kind: "partial", short: true, fault: lit(down, 20, 10, drop)},
		{name: "fetch/third-message", kind: "partial", fault: f(down, "* 3 FETCH", 1, 10, drop)},
		{name: "fetch/hang", kind: "partial", fault: f(down, "* 2 FETCH", 1, 0, hang)},
		{name: "append/command-cut", kind: "fresh", fault: f(up, "APPEND", 1, 4, drop)},
		{name: "append/literal-drop", kind: "fresh", short: true, fault: lit(up, 100_000, 0, drop)},
		{name: "append/literal-reset", kind: "partial", short: true, fault: lit(up, 100_000, 0, reset)},
		{name: "append/literal-stall", kind: "fresh", fault: lit(up, 100_000, 0, stall)},
		{name: "append/literal-hang", kind: "fresh", fault: lit(up, 100_000, 0, hang)},
		{name: "append/answer-lost", kind: "fresh", short: true, fault: f(down, "Append completed", 1, 0, drop)},
		{name: "append/single-literal-reset", kind: "fresh", noMulti: true, fault: lit(up, 100_000, 0, reset)},
		{name: "append/single-answer-lost", kind: "partial", short: true, noMulti: true, fault: f(down, "Append completed", 3, 0, drop)},
		{name: "verify/fetch-cut", kind: "fresh", fault: f(down, "RFC822.SIZE", 5, 0, drop)},
		{name: "logout/cut", kind: "fresh", fault: f(down, "* BYE", 1, 0, drop)},
		{name: "logout/hang", kind: "partial", fault: faultproxy.Fault{Conn: 1, Dir: down, Pattern: "* BYE", Action: hang}},
		{name: "logout/uploader-hang", kind: "fresh", fault: f(down, "* BYE", 1, 0, hang)},
	}
	// Sweeps: a cut at byte N of the first connection whose stream
	// reaches it, wherever that falls in the protocol.
	for i, n := range []int64{50, 300, 1500, 20000, 100000, 250000, 400000} {
		cases = append(cases, migrateFault{name: fmt.Sprintf("sweep/up-%d", n), kind: []string{"fresh", "partial"}[i%2],
			short: i%4 == 2, fault: faultproxy.Fault{Dir: up, At: n, Action: drop, Max: 1}})
	}
	for i, n := range []int64{200, 1500, 3000} {
		cases = append(cases, migrateFault{name: fmt.Sprintf("sweep/down-%d", n), kind: "partial",
			short: i == 1, fault: faultproxy.Fault{Dir: down, At: n, Action: drop, Max: 1}})
	}
	return cases
}

// TestFaultMatrix runs migrateFaults (the short ones with -short); see the
// comment above migrateFault.
func TestFaultMatrix(t *testing.T) {
	cases := migrateFaults()
	if testing.Short() {
		cases = slices.DeleteFunc(cases, func(c migrateFault) bool { return !c.short })
	}
	var opts []testenv.Option
	for i := range cases {
		opts = append(opts, faultUser("s", i), faultUser("d", i))
	}
	d := testenv.StartDovecot(t, opts...)
	start := time.Now()
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	faultproxy.RunCases(t, 4, names, func(t *testing.T, i int) {
		runMigrateFault(t, d, faultUser("s", i), faultUser("d", i), cases[i], int64(300+i))
	})
	t.Logf("%d fault cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
}

func faultUser(prefix string, i int) testenv.User {
	return testenv.User{Name: fmt.Sprintf("%s%02d", prefix, i), Password: fmt.Sprintf("pass-%s%02d", prefix, i)}
}

func runMigrateFault(t *testing.T, d *testenv.Dovecot, src, dst testenv.User, c migrateFault, seed int64) {
	msgs := corpus.Generate(seed, 16, corpus.Options{Folders: []string{"INBOX", "Archiv/2023"}, BigAttachmentEvery: 8, BigAttachmentSize: 150 << 10})
	for i := range msgs {
		msgs[i].Folder = []string{"INBOX", "Archiv/2023"}[i%2]
	}
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	msgs = append(msgs, corpus.Message{Folder: "INBOX", Date: date, Flags: []imap.Flag{imap.FlagSeen, "Projekt"},
		Raw: []byte("From: x@example.org\r\nSubject: no id\r\nDate: " + date.Format(time.RFC1123Z) + "\r\n\r\nwithout a Message-ID\r\n")})
	d.Seed(t, src.Name, msgs)

	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var log testenv.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the runs:\n%s", log.String())
		}
	})
	endpoint := func(u testenv.User, addr string) imapconn.Endpoint {
		return imapconn.Endpoint{Addr: addr, TLS: "none", Username: u.Name, Password: u.Password}
	}
	_, err = imapsync.Sync(context.Background(), imapsync.Options{
		Account: src.Name, Root: root, Index: st, Direction: "pull", Endpoint: endpoint(src, d.IMAPAddr())})
	if err != nil {
		t.Fatalf("pulling the source: %v", err)
	}
	options := func(addr string) migrate.Options {
		return migrate.Options{Index: st, Root: root, Source: src.Name, Dest: endpoint(dst, addr), DestAccount: dst.Name,
			DialAttempts: 1, Window: 4, NoMultiAppend: c.noMulti,
			Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	}
	if c.kind == "partial" {
		o := options(d.IMAPAddr())
		o.Folders = []string{"INBOX"}
		if rep, err := migrate.Run(context.Background(), o); err != nil || !rep.Complete() {
			t.Fatalf("copying INBOX first: %v", err)
		}
	}
	want := mailbox(t, d, src.Name)

	p, err := faultproxy.Start(d.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fault := c.fault
	fault.Name = c.name
	fmt.Fprintf(&log, "--- faulted run (%s)\n", fault.String())
	rep, err := faultproxy.Faulted(t, p, fault, migrateRunFor, migrateHangRunFor, func(ctx context.Context) (*migrate.Report, error) {
		return migrate.Run(ctx, options(p.Addr()))
	})
	if p.CountWithin(c.name, time.Second) == 0 {
		t.Errorf("the fault never fired (faulted run: %v)", err)
	}
	t.Logf("faulted run: %v; fired %d", err, p.Count(c.name))
	testenv.CheckIndex(t, root)
	if err == nil && rep != nil && rep.Complete() {
		// A run that reports a complete migration has one.
		checkDest(t, d, dst, want)
	}
	p.Close()

	fmt.Fprintf(&log, "--- clean run\n")
	rep, err = migrate.Run(context.Background(), options(d.IMAPAddr()))
	if err != nil || !rep.Complete() {
		t.Fatalf("clean run: %v (%+v)", err, rep)
	}
	checkDest(t, d, dst, want)
	testenv.CheckIndex(t, root)
}

func checkDest(t *testing.T, d *testenv.Dovecot, dst testenv.User, want map[string][]mirrortest.MessageState) {
	t.Helper()
	sameMailboxes(t, want, mailbox(t, d, dst.Name), nil)
}
