package pop3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/pop3"
)

const fetchAccount = "mail"

// fetchEnv is one local store fetching from one Dovecot user.
type fetchEnv struct {
	t          *testing.T
	d          *testenv.Dovecot
	user, pass string
	root       string
	st         *index.Store
	removed    map[string]bool // keys of stored files the test deleted
}

func newFetchEnv(t *testing.T, d *testenv.Dovecot, u testenv.User) *fetchEnv {
	t.Helper()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fetchEnv{t: t, d: d, user: u.Name, pass: u.Password, root: root, st: st}
}

func (e *fetchEnv) opts() pop3.FetchOptions {
	return pop3.FetchOptions{
		Account: fetchAccount, Root: e.root, Index: e.st,
		Addr: e.d.POP3Addr(), TLS: pop3.TLSNone,
		Username: e.user, Password: e.pass,
		Keep:    true,
		Logger:  slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Timeout: 30 * time.Second,
	}
}

func (e *fetchEnv) fetch(ctx context.Context, o pop3.FetchOptions) *pop3.FetchResult {
	e.t.Helper()
	start := time.Now()
	res, err := pop3.Fetch(ctx, o)
	if err != nil {
		e.t.Fatalf("Fetch: %v", err)
	}
	e.t.Logf("Fetch: %+v in %s", *res, time.Since(start).Round(time.Millisecond))
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// serverMessages returns what the server's RETR sends for each UIDL, and
// the STAT count.
func serverMessages(t *testing.T, addr, user, pass string) map[string][]byte {
	t.Helper()
	c, err := pop3.Dial(t.Context(), addr, &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(t.Context(), user, pass); err != nil {
		t.Fatal(err)
	}
	list, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	uid := map[int]string{}
	nums := make([]int, len(list))
	for i, m := range list {
		uid[m.Num], nums[i] = m.UID, m.Num
	}
	out := make(map[string][]byte, len(list))
	err = c.RetrMany(t.Context(), nums, func(num int, r io.Reader) error {
		b, err := io.ReadAll(r)
		out[uid[num]] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	return out
}

func serverCount(t *testing.T, addr, user, pass string) int {
	t.Helper()
	c, err := pop3.Dial(t.Context(), addr, &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(t.Context(), user, pass); err != nil {
		t.Fatal(err)
	}
	n, _, err := c.Stat()
	if err != nil {
		t.Fatal(err)
	}
	c.Quit()
	return n
}

// check verifies the local store against the server's messages: each
// stored exactly once, byte for byte (CRLF as LF), one row per file, no
// leftovers in tmp/, nothing pending.
func (e *fetchEnv) check(want map[string][]byte) map[string]index.POP3UIDL {
	t := e.t
	t.Helper()
	rows, uidls := inboxState(t, e.st)
	if len(uidls) != len(want) || len(rows) != len(want) {
		t.Fatalf("index: %d UIDLs, %d message rows; want %d of each", len(uidls), len(rows), len(want))
	}
	byID := map[index.MessageID]*index.Message{}
	for _, m := range rows {
		byID[m.ID] = m
	}
	p, _ := maildir.FolderDir(e.root, fetchAccount, "INBOX")
	dir := &maildir.Dir{Path: p}
	files, err := dir.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d files in the folder, want %d", len(files), len(want))
	}
	tmp, err := os.ReadDir(filepath.Join(p, "tmp"))
	if err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files (%v)", len(tmp), err)
	}
	used := map[index.MessageID]string{}
	bad := 0
	for uidl, body := range want {
		u, ok := uidls[uidl]
		if !ok {
			t.Errorf("UIDL %s not stored", uidl)
			continue
		}
		if prev, ok := used[u.MessageID]; ok {
			t.Errorf("UIDLs %s and %s share message row %d", prev, uidl, u.MessageID)
		}
		used[u.MessageID] = uidl
		m := byID[u.MessageID]
		if m == nil {
			t.Errorf("UIDL %s: no message row %d", uidl, u.MessageID)
			continue
		}
		// Unread, as POP3 mail is: in new/, without info (as mbsync,
		// fetchmail's MDAs and Dovecot deliver it).
		if !strings.HasPrefix(m.File, "new/") || strings.Contains(m.File, ":") {
			t.Errorf("UIDL %s: stored as %s, want new/<key> without info", uidl, m.File)
		}
		got, err := os.ReadFile(filepath.Join(p, m.File))
		if err != nil {
			t.Errorf("UIDL %s: %v", uidl, err)
			continue
		}
		if !bytes.Equal(got, bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))) || sha256.Sum256(got) != m.SHA256 ||
			int64(len(got)) != m.Size {
			if bad++; bad <= 3 {
				t.Errorf("UIDL %s: stored file differs from the server's RETR (or from its row)", uidl)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d messages differ", bad)
	}
	return uidls
}

func corpusSize() int {
	if testing.Short() {
		return 300
	}
	return 2000
}

// TestFetch runs the fetcher against a real Dovecot: a full download, an
// idle second run, deletion with keep=false, and interrupted runs.
func TestFetch(t *testing.T) {
	n := corpusSize()
	main := testenv.User{Name: "fetch", Password: "fetch-pass"}
	crash := testenv.User{Name: "crash", Password: "crash-pass"}
	del := testenv.User{Name: "del", Password: "del-pass"}
	d := testenv.StartDovecot(t, main, crash, del)
	start := time.Now()
	msgs := corpus.Generate(11, n, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 250, BigAttachmentSize: 1 << 20})
	d.Seed(t, main.Name, msgs)
	d.Seed(t, crash.Name, msgs)
	d.Seed(t, del.Name, msgs[:min(n, 200)])
	t.Logf("seeded %d+%d+%d messages in %s", n, n, min(n, 200), time.Since(start).Round(time.Millisecond))

	t.Run("all", func(t *testing.T) {
		e := newFetchEnv(t, d, main)
		want := serverMessages(t, d.POP3Addr(), main.Name, main.Password)
		if len(want) != n {
			t.Fatalf("server has %d messages, want %d", len(want), n)
		}
		var prog countProgress
		o := e.opts()
		o.Progress = &prog
		res := e.fetch(t.Context(), o)
		if res.New != n || res.OnServer != n || res.Deleted != 0 || res.Skipped != 0 || res.NoUIDL {
			t.Errorf("first run: %+v", *res)
		}
		if prog.expect != n || prog.done != n || prog.bytes != res.Bytes {
			t.Errorf("progress: expected %d, done %d (%d bytes); result %d bytes", prog.expect, prog.done, prog.bytes, res.Bytes)
		}
		e.check(want)

		res = e.fetch(t.Context(), e.opts())
		if res.New != 0 || res.Recovered != 0 || res.Deleted != 0 {
			t.Errorf("second run: %+v", *res)
		}
		e.check(want)
		if got := serverCount(t, d.POP3Addr(), main.Name, main.Password); got != n {
			t.Errorf("keep=true: server has %d messages, want %d", got, n)
		}
	})

	t.Run("delete", func(t *testing.T) {
		e := newFetchEnv(t, d, del)
		want := serverMessages(t, d.POP3Addr(), del.Name, del.Password)
		o := e.opts()
		o.DeleteAfterDays = 1
		res := e.fetch(t.Context(), o)
		if res.New != len(want) || res.Deleted != 0 {
			t.Errorf("keep=true, delete_after_days=1: %+v", *res)
		}
		o.Keep = false
		res = e.fetch(t.Context(), o)
		if res.New != 0 || res.Deleted != len(want) {
			t.Errorf("keep=false: %+v", *res)
		}
		if got := serverCount(t, d.POP3Addr(), del.Name, del.Password); got != 0 {
			t.Errorf("keep=false: server still has %d messages", got)
		}
		if got := e.stored(); !sameMessages(got, values(want)) {
			t.Errorf("stored %d messages, not the %d of the server", len(got), len(want))
		}
		if u := e.uidls(); len(u) != 0 {
			t.Errorf("%d identities of deleted messages kept", len(u))
		}
		res = e.fetch(t.Context(), o)
		if res.New != 0 || res.Deleted != 0 || res.OnServer != 0 {
			t.Errorf("run on the empty server: %+v", *res)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		e := newFetchEnv(t, d, crash)
		want := serverMessages(t, d.POP3Addr(), crash.Name, crash.Password)
		seed := uint64(time.Now().UnixNano())
		t.Logf("random seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 0))

		// Cancelled runs: the context ends after a random number of
		// messages, while later RETRs are in flight. The runs below take at
		// most 5*(n/20+15) + 4*3*10 messages, less than n: the clean run
		// still has work.
		for i := range 5 {
			ctx, cancel := context.WithCancel(t.Context())
			o := e.opts()
			o.BatchSize = 3 + rng.IntN(13)
			o.Progress = &countProgress{cancelAt: 1 + rng.IntN(n/20), cancel: cancel}
			res, err := pop3.Fetch(ctx, o)
			cancel()
			t.Logf("cancelled run %d (batch %d, cancel after %d): %+v, %v", i, o.BatchSize, o.Progress.(*countProgress).cancelAt, res, err)
			if err == nil {
				t.Errorf("cancelled run %d: no error", i)
			}
		}
		// Runs that "crash" at each step of a batch commit.
		for i, point := range []string{"pending", "renamed", "synced", "renamed"} {
			batches := 0
			crashAt := 1 + rng.IntN(3)
			restore := pop3.SetTestHook(func(p string) error {
				if p == point {
					if batches++; batches == crashAt {
						return errCrash
					}
				}
				return nil
			})
			o := e.opts()
			o.BatchSize = 3 + rng.IntN(8)
			res, err := pop3.Fetch(t.Context(), o)
			restore()
			t.Logf("crash %d at %q of batch %d (of %d): %+v, %v", i, point, crashAt, o.BatchSize, res, err)
			if !errors.Is(err, errCrash) {
				t.Errorf("crash run %d: err %v", i, err)
			}
		}
		res := e.fetch(t.Context(), e.opts())
		if res.Recovered == 0 {
			t.Errorf("the clean run recovered no pending download: %+v", *res)
		}
		e.check(want)
	})
}

var errCrash = errors.New("simulated crash")

// countProgress counts messages and cancels a context after cancelAt.
type countProgress struct {
	expect, done int
	bytes        int64
	cancelAt     int
	cancel       func()
}

func (p *countProgress) Expect(n int, _ int64) { p.expect += n }
func (p *countProgress) Done(n int, b int64) {
	p.done += n
	p.bytes += b
	if p.cancel != nil && p.done >= p.cancelAt {
		p.cancel()
	}
}

// TestFetchKilled kills fetching processes (children running
// TestFetchKilledChild) with SIGKILL: at random moments after they listed
// the server and at each point of a batch commit (keep=true), then after
// DELE before QUIT, and after QUIT before the index forgets the deleted
// messages (keep=false). It counts the kills that landed where they were aimed and
// fails if one kind never did; then a clean run must leave every message
// stored exactly once, byte for byte, and the server empty.
func TestFetchKilled(t *testing.T) {
	kills, n := 30, 5000 // more messages than the children get through
	if testing.Short() {
		kills, n = 5, 1000
	}
	user := testenv.User{Name: "kill", Password: "kill-pass"}
	d := testenv.StartDovecot(t, user)
	d.Seed(t, user.Name, corpus.Generate(12, n, corpus.Options{Folders: []string{"INBOX"}}))
	e := newFetchEnv(t, d, user)
	e.st.Close()
	want := serverMessages(t, d.POP3Addr(), user.Name, user.Password)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	// The kills: random ones and ones at each commit point in turn, then,
	// once a child has fetched everything, one at "dele" and one at "quit".
	var plan []string
	for i := range kills {
		plan = append(plan, []string{"random", "pending", "renamed", "synced", "committed"}[i%5])
	}
	plan = append(plan, "dele", "quit")
	landed := map[string]int{}
	for i, at := range plan {
		nth := 1
		if at != "random" && at != "dele" && at != "quit" {
			nth = 1 + rng.IntN(3)
		}
		if killChild(t, e, d, at, nth, time.Duration(rng.IntN(300))*time.Millisecond) {
			landed[at]++
		} else {
			t.Logf("child %d (kill at %s %d) was not killed there", i, at, nth)
		}
	}
	t.Logf("kills that landed: %v of %v", landed, plan)
	for _, at := range plan {
		if landed[at] == 0 {
			t.Errorf("no kill landed at %q", at)
		}
	}

	st, err := index.OpenStore(e.root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e.st = st
	o := e.opts()
	o.Keep = false
	res := e.fetch(t.Context(), o)
	if res.New != 0 || res.OnServer != 0 {
		t.Errorf("the clean run after the kill at QUIT: %+v", *res)
	}
	if got := e.stored(); !sameMessages(got, values(want)) {
		t.Errorf("stored %d messages, not the %d of the server exactly once each", len(got), len(want))
	}
	if u := e.uidls(); len(u) != 0 {
		t.Errorf("%d identities of deleted messages kept", len(u))
	}
}

// killChild runs a fetching child and kills it at the nth time it reaches
// the hook point at (a commit or deletion point), or, for at "random",
// delay after it has listed the server. It reports whether the kill landed
// so: the child was stopped at the point, or still running after the delay.
func killChild(t *testing.T, e *fetchEnv, d *testenv.Dovecot, at string, nth int, delay time.Duration) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFetchKilledChild$")
	stop := at
	if at == "random" {
		stop = "-"
	}
	keep := strconv.FormatBool(at != "dele" && at != "quit")
	cmd.Env = append(os.Environ(), "POP3_FETCH_CHILD="+strings.Join([]string{
		e.root, d.POP3Addr(), e.user, e.pass, stop, strconv.Itoa(nth), keep}, "\n"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	var out strings.Builder
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	landed := false
	var timer <-chan time.Time
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break wait // the child ended
			}
			out.WriteString(line + "\n")
			if line == "POINT listed" && at == "random" {
				timer = time.After(delay)
			}
			if line == "STOPPED" {
				landed = true
				break wait
			}
		case <-timer:
			landed = true
			break wait
		}
	}
	cmd.Process.Kill()
	for range lines {
	}
	err = cmd.Wait()
	if !landed {
		t.Logf("child: %v\n%s%s", err, out.String(), stderr.String())
	}
	return landed
}

// TestFetchKilledChild is the process TestFetchKilled kills: a fetch that
// reports each hook point on stdout ("POINT name") and stops for good at
// the nth time it reaches the point named in its environment ("STOPPED").
func TestFetchKilledChild(t *testing.T) {
	env := os.Getenv("POP3_FETCH_CHILD")
	if env == "" {
		return // only as TestFetchKilled's child process
	}
	args := strings.Split(env, "\n")
	if len(args) != 7 {
		t.Fatal("bad POP3_FETCH_CHILD")
	}
	stopAt := args[4]
	nth, _ := strconv.Atoi(args[5])
	keep, _ := strconv.ParseBool(args[6])
	defer pop3.SetTestHook(func(point string) error {
		fmt.Println("POINT " + point)
		if point == stopAt {
			if nth--; nth == 0 {
				fmt.Println("STOPPED")
				time.Sleep(time.Hour) // until killed
			}
		}
		return nil
	})()
	st, err := index.OpenStore(args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := pop3.Fetch(t.Context(), pop3.FetchOptions{
		Account: fetchAccount, Root: args[0], Index: st, Addr: args[1], TLS: pop3.TLSNone,
		Username: args[2], Password: args[3], Keep: keep, BatchSize: 16,
	})
	fmt.Println(res, err)
}

// inboxState reads the fetch account's INBOX rows and identities, and
// fails the test if a download is left pending.
func inboxState(t testing.TB, st *index.Store) ([]*index.Message, map[string]index.POP3UIDL) {
	t.Helper()
	var rows []*index.Message
	var uidls map[string]index.POP3UIDL
	var pending []index.POP3Pending
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account(fetchAccount)
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, "INBOX")
		if err != nil {
			return err
		}
		if rows, err = tx.Messages(f.ID); err != nil {
			return err
		}
		if pending, err = tx.POP3PendingList(acct); err != nil {
			return err
		}
		uidls, err = tx.POP3UIDLs(acct)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Errorf("%d downloads left pending", len(pending))
	}
	return rows, uidls
}
