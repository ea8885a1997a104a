package pop3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/pop3"
)

// The fault matrix for POP3: each case runs pop3.Fetch through a
// faultproxy that breaks one protocol phase (a cut, a reset, a stall or a
// hang), then one clean Fetch straight to Dovecot, with the same Keep. The
// faulted run may fail, but with an error, never a panic or a hang (a
// watchdog fails a run that outlives its short context), and a faulted
// run that reports success must have done its whole job. After the clean
// run every message of the mailbox is stored exactly once, byte for byte
// (CRLF as LF), with one row per file and nothing left in tmp/ or pending;
// the server holds every message (Keep) or none (Keep false: each was
// deleted, and only once stored); the index passes PRAGMA
// integrity_check after both runs. Every case asserts that its fault
// fired. POP3 has no literals: faults are placed by patterns and offsets.

type pop3Fault struct {
	name  string
	keep  bool
	short bool // part of the -short matrix
	fault faultproxy.Fault
}

const (
	pop3StallFor   = 400 * time.Millisecond
	pop3RunFor     = 10 * time.Second
	pop3HangRunFor = 2 * time.Second
)

func pop3Faults() []pop3Fault {
	up, down := faultproxy.Up, faultproxy.Down
	drop, reset, stall, hang := faultproxy.Drop, faultproxy.Reset, faultproxy.Stall, faultproxy.Hang
	f := func(dir faultproxy.Dir, pattern string, count int, after int64, a faultproxy.Action) faultproxy.Fault {
		return faultproxy.Fault{Dir: dir, Pattern: pattern, Count: count, After: after, Action: a, Max: 1, For: pop3StallFor}
	}
	// The messages of the mailbox, in RETR order, are 1..16; 8 and 16 are
	// the large ones (about 200 KB).
	cases := []pop3Fault{
		{name: "greeting/none", keep: true, short: true, fault: faultproxy.Fault{Conn: 1, Dir: down, At: 0, Action: drop}},
		{name: "greeting/half", keep: false, fault: f(down, "+OK", 1, 6, drop)},
		{name: "greeting/stall", keep: true, fault: f(down, "+OK", 1, 0, stall)},
		{name: "capa/answer-cut", keep: true, fault: f(down, "PIPELINING", 1, 0, drop)},
		{name: "login/command-cut", keep: false, short: true, fault: f(up, "AUTH PLAIN", 1, 3, drop)},
		{name: "login/answer-lost", keep: true, fault: f(down, "Logged in", 1, 0, drop)},
		{name: "login/hang", keep: true, short: true, fault: f(down, "Logged in", 1, 0, hang)},
		{name: "uidl/command-cut", keep: true, fault: f(up, "UIDL", 1, 2, drop)},
		{name: "list/answer-cut", keep: false, short: true, fault: f(down, "messages:", 1, 20, drop)},
		{name: "retr/command-cut", keep: true, fault: f(up, "RETR 3", 1, 0, drop)},
		{name: "retr/third-body", keep: true, short: true, fault: f(down, "octets\r\n", 3, 200, drop)},
		{name: "retr/large-body-drop", keep: false, short: true, fault: f(down, "octets\r\n", 8, 100_000, drop)},
		{name: "retr/large-body-reset", keep: true, fault: f(down, "octets\r\n", 8, 100_000, reset)},
		{name: "retr/body-stall", keep: false, fault: f(down, "octets\r\n", 5, 100, stall)},
		{name: "retr/body-hang", keep: true, short: true, fault: f(down, "octets\r\n", 8, 100_000, hang)},
		{name: "retr/terminator-cut", keep: false, fault: f(down, "\r\n.\r\n", 14, -2, drop)},
		{name: "dele/command-cut", keep: false, short: true, fault: f(up, "DELE 3", 1, 0, drop)},
		{name: "dele/answer-cut", keep: false, fault: f(down, "Marked to be deleted.", 5, 0, drop)},
		{name: "dele/reset", keep: false, fault: f(up, "DELE 9", 1, 2, reset)},
		{name: "quit/command-cut", keep: false, short: true, fault: f(up, "QUIT", 1, 0, drop)},
		{name: "quit/answer-lost", keep: false, short: true, fault: f(up, "QUIT\r\n", 1, 0, drop)},
		{name: "quit/answer-cut", keep: false, fault: f(down, "Logging out", 1, 0, drop)},
		{name: "quit/keep-answer-lost", keep: true, fault: f(up, "QUIT\r\n", 1, 0, drop)},
	}
	// Sweeps: a cut at byte N, wherever that falls in the protocol.
	for i, n := range []int64{150, 700, 3000, 12000, 40000, 120000, 250000, 400000} {
		cases = append(cases, pop3Fault{name: fmt.Sprintf("sweep/down-%d", n), keep: i%2 == 0, short: i%4 == 1,
			fault: faultproxy.Fault{Dir: down, At: n, Action: drop}})
	}
	for i, n := range []int64{10, 40, 70, 100, 140} {
		cases = append(cases, pop3Fault{name: fmt.Sprintf("sweep/up-%d", n), keep: i%2 == 1, short: i == 2,
			fault: faultproxy.Fault{Dir: up, At: n, Action: drop}})
	}
	return cases
}

// TestFaultMatrix runs pop3Faults (the short ones with -short); see the
// comment above pop3Fault.
func TestFaultMatrix(t *testing.T) {
	cases := pop3Faults()
	if testing.Short() {
		cases = slices.DeleteFunc(cases, func(c pop3Fault) bool { return !c.short })
	}
	users := make([]testenv.User, len(cases))
	opts := make([]testenv.Option, len(cases))
	for i := range cases {
		users[i] = testenv.User{Name: fmt.Sprintf("p%02d", i), Password: fmt.Sprintf("pass%02d", i)}
		opts[i] = users[i]
	}
	d := testenv.StartDovecot(t, opts...)
	start := time.Now()
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	faultproxy.RunCases(t, 4, names, func(t *testing.T, i int) {
		runPOP3Fault(t, d, users[i], cases[i], int64(200+i))
	})
	t.Logf("%d fault cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
}

func runPOP3Fault(t *testing.T, d *testenv.Dovecot, user testenv.User, c pop3Fault, seed int64) {
	msgs := corpus.Generate(seed, 16, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 8, BigAttachmentSize: 150 << 10})
	d.Seed(t, user.Name, msgs)
	want := make([][]byte, len(msgs))
	for i, m := range msgs {
		want[i] = m.Raw
	}
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
	opts := func(addr string) pop3.FetchOptions {
		return pop3.FetchOptions{
			Account: fetchAccount, Root: root, Index: st,
			Addr: addr, TLS: pop3.TLSNone, Username: user.Name, Password: user.Password,
			Keep: c.keep, BatchSize: 4, Timeout: 30 * time.Second,
			Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
	}

	p, err := faultproxy.Start(d.POP3Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fault := c.fault
	fault.Name = c.name
	fmt.Fprintf(&log, "--- faulted run (%s)\n", fault.String())
	res, err := faultproxy.Faulted(t, p, fault, pop3RunFor, pop3HangRunFor, func(ctx context.Context) (*pop3.FetchResult, error) {
		return pop3.Fetch(ctx, opts(p.Addr()))
	})
	if p.Count(c.name) == 0 {
		t.Errorf("the fault never fired (faulted run: %v)", err)
	}
	t.Logf("faulted run: %v (%+v); fired %d", err, res, p.Count(c.name))
	testenv.CheckIndex(t, root)
	if err == nil {
		// A run that reports success has done its whole job.
		checkPOP3(t, d, user, root, st, want, c.keep)
	}
	p.Close()

	fmt.Fprintf(&log, "--- clean run\n")
	if _, err := pop3.Fetch(context.Background(), opts(d.POP3Addr())); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	checkPOP3(t, d, user, root, st, want, c.keep)
	testenv.CheckIndex(t, root)
}

// checkPOP3 asserts the outcome of a complete run: every message of want
// (CRLF) stored exactly once as LF, one row per file with its size and
// hash, nothing in tmp/ or pending, and the server holding want (keep) or
// nothing.
func checkPOP3(t *testing.T, d *testenv.Dovecot, user testenv.User, root string, st *index.Store, want [][]byte, keep bool) {
	t.Helper()
	var wantSums []string
	for _, w := range want {
		wantSums = append(wantSums, fmt.Sprintf("%x", sha256.Sum256(bytes.ReplaceAll(w, []byte("\r\n"), []byte("\n")))))
	}
	sort.Strings(wantSums)

	path, err := maildir.FolderDir(root, fetchAccount, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	dir := &maildir.Dir{Path: path}
	files, err := dir.Scan()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	byKey := map[string]string{}
	for _, e := range files {
		b, err := os.ReadFile(dir.FilePath(e))
		if err != nil {
			t.Fatal(err)
		}
		sum := fmt.Sprintf("%x", sha256.Sum256(b))
		got = append(got, sum)
		byKey[e.Key] = sum
	}
	sort.Strings(got)
	if !slices.Equal(got, wantSums) {
		t.Errorf("local folder holds %d messages, want the server's %d, each once and byte for byte:\n got  %v\n want %v", len(got), len(wantSums), got, wantSums)
	}
	if tmp, err := os.ReadDir(filepath.Join(path, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files (%v)", len(tmp), err)
	}
	rows, _ := inboxState(t, st)
	if len(rows) != len(files) {
		t.Errorf("%d index rows for %d files", len(rows), len(files))
	}
	for _, r := range rows {
		if sum, ok := byKey[r.Key]; !ok || sum != fmt.Sprintf("%x", r.SHA256) {
			t.Errorf("row %s: no file of that key with its hash", r.Key)
		}
	}

	server := pop3Server(t, d, user)
	var wantServer []string
	if keep {
		for _, w := range want {
			wantServer = append(wantServer, fmt.Sprintf("%x", sha256.Sum256(w)))
		}
	}
	sort.Strings(wantServer)
	if !slices.Equal(server, wantServer) {
		t.Errorf("server holds %d messages, want %d (keep %v)", len(server), len(wantServer), keep)
	}
}

// pop3Server returns the SHA-256 of every message the server has (as RETR
// sends it, CRLF), sorted.
func pop3Server(t *testing.T, d *testenv.Dovecot, user testenv.User) []string {
	t.Helper()
	c, err := pop3.Dial(context.Background(), d.POP3Addr(), &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(context.Background(), user.Name, user.Password); err != nil {
		t.Fatal(err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	nums := make([]int, len(list))
	for i, m := range list {
		nums[i] = m.Num
	}
	sums := []string{}
	err = c.RetrMany(context.Background(), nums, func(_ int, r io.Reader) error {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		sums = append(sums, fmt.Sprintf("%x", h.Sum(nil)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(sums)
	return sums
}
