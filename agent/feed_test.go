package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// feedLog records what the feed watcher looked at (feedChecked).
type feedLog struct {
	mu     sync.Mutex
	checks []string // "folder queued|clean"
	cond   *sync.Cond
}

func newFeedLog(t *testing.T) *feedLog {
	l := &feedLog{}
	l.cond = sync.NewCond(&l.mu)
	feedChecked = func(_, folder string, queued bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		state := "clean"
		if queued {
			state = "queued"
		}
		l.checks = append(l.checks, folder+" "+state)
		l.cond.Broadcast()
	}
	t.Cleanup(func() { feedChecked = nil })
	return l
}

// mark returns the position after the checks so far.
func (l *feedLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.checks)
}

// waitFor waits until a check since mark says want ("INBOX queued") and
// returns the checks from mark on and the new mark.
func (l *feedLog) waitFor(t *testing.T, mark int, want string) ([]string, int) {
	t.Helper()
	timer := time.AfterFunc(30*time.Second, func() {
		l.mu.Lock()
		l.checks = append(l.checks, "timeout")
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		for i := mark; i < len(l.checks); i++ {
			if l.checks[i] == want {
				return l.checks[mark : i+1], i + 1
			}
			if l.checks[i] == "timeout" {
				t.Fatalf("the feed watcher did not report %q in 30 s; it reported %q", want, l.checks[mark:])
			}
		}
		l.cond.Wait()
	}
}

// feedEnv is an agent running on a store synced with Dovecot through a
// proxy that can be cut, with neither IDLE nor the Maildir watcher: only
// the change feed (or a poll, every 10 minutes) can make it sync.
type feedEnv struct {
	t     *testing.T
	d     *testenv.Dovecot
	proxy *cutProxy
	a     *Agent
	store *index.Store
	log   *syncBuffer
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFeedEnv(t *testing.T) *feedEnv {
	d := testenv.StartDovecot(t)
	msgs := corpus.Generate(141, 12, corpus.Options{Folders: []string{"INBOX", "Archive"}})
	for i := range msgs {
		msgs[i].Folder = []string{"INBOX", "Archive"}[i%2]
		msgs[i].Flags = nil
	}
	d.Seed(t, testenv.DefaultUser.Name, msgs)
	proxy := newCutProxy(t, d.IMAPAddr())
	pass, _ := d.Password(testenv.DefaultUser.Name)
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(proxy.addr)
	doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = %q\nport = %s\ntls = \"none\"\nusername = %q\npassword = %q\npoll_interval = \"10m\"\n",
		filepath.Join(dir, "store"), host, port, testenv.DefaultUser.Name, pass)
	file := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	e := &feedEnv{t: t, d: d, proxy: proxy, log: &syncBuffer{}}
	e.a, err = Open(cfg, slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	e.store = e.a.Index()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.a.Run(ctx, RunOptions{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		e.a.Close()
	})
	e.waitState(StateIdle)
	return e
}

func (e *feedEnv) waitState(want string) *AgentStatus {
	e.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := e.a.AgentStatus(context.Background())
		if err == nil && len(st.Accounts) == 1 && st.Accounts[0].State == want {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the account is not %s after 60 s: %+v, %v", want, st, err)
		}
	}
}

// syncs counts the syncs the agent logged.
func (e *feedEnv) syncs() int {
	return strings.Count(e.log.String(), "msg=synced")
}

func (e *feedEnv) folder(name string) *index.Folder {
	e.t.Helper()
	var f *index.Folder
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("work")
		if err != nil {
			return err
		}
		f, err = tx.FolderByName(a, name)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// row returns a folder's n-th row in UID order.
func (e *feedEnv) row(folder string, n int) *index.Message {
	e.t.Helper()
	f := e.folder(folder)
	var rows []*index.Message
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.Messages(f.ID)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	if n >= len(rows) {
		e.t.Fatalf("%s has %d rows", folder, len(rows))
	}
	return rows[n]
}

// The local endpoints' operations, as index/local.go makes them: the
// door's call with its journal intent in the same transaction.
func (e *feedEnv) expunge(m *index.Message) {
	e.t.Helper()
	f := e.folder(folderName(e, m.Folder))
	if err := e.store.Remove(context.Background(), []*index.Message{m}, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: f.Account, Folder: f.ID, Op: "expunge", Arg: fmt.Sprintf("%d/%d", m.UID, f.UIDValidity)})
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *feedEnv) move(m *index.Message, to string) {
	e.t.Helper()
	src, dst := e.folder(folderName(e, m.Folder)), e.folder(to)
	uid := m.UID
	if err := e.store.Move(context.Background(), m, dst.ID, 0, func(tx *index.Tx) error {
		_, err := tx.AddIntent(index.Intent{Account: src.Account, Folder: src.ID, Message: m.ID, Op: "move", Arg: fmt.Sprintf("%d/%d", uid, src.UIDValidity)})
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *feedEnv) flag(m *index.Message, f maildir.Flags) {
	e.t.Helper()
	if err := e.store.SetFlags(context.Background(), []index.FlagChange{{Message: m, Flags: m.Flags | f, Keywords: m.Keywords}}, nil); err != nil {
		e.t.Fatal(err)
	}
}

func folderName(e *feedEnv, id index.FolderID) string {
	var name string
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		f, err := tx.Folder(id)
		if err == nil {
			name = f.Name
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return name
}

// messageID returns a row's Message-ID header.
func messageID(m *index.Message) string { return m.Header.MessageID }

// waitServer waits until ok holds for the server's folders, and returns
// how long that took.
func (e *feedEnv) waitServer(what string, ok func(map[string][]mirrortest.ServerMessage) bool) time.Duration {
	e.t.Helper()
	start := time.Now()
	for deadline := start.Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c := e.d.Client(e.t, testenv.DefaultUser.Name)
		server, err := mirrortest.ServerFolders(c)
		c.Logout()
		if err != nil {
			e.t.Fatal(err)
		}
		if ok(server) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not on the server after 60 s", what)
		}
	}
}

// where returns the server folders holding Message-ID id, and whether
// the copy found carries flag.
func where(server map[string][]mirrortest.ServerMessage, id string, flag maildir.Flags) (folders []string, flagged bool) {
	for f, msgs := range server {
		for _, m := range msgs {
			if index.ParseHeader(m.Raw).MessageID == id {
				folders = append(folders, f)
				flagged = m.Flags&flag != 0
			}
		}
	}
	return folders, flagged
}

// TestFeedNudgesLocalChanges: changes made through the store's door (as
// the local endpoints make them) nudge the account's sync within a second
// and reach the server; the sync's own writes (downloads, pushed flags)
// nudge nothing, so it does not loop; offline, the changes stay queued
// (status counts them) and reach the server when it is back.
func TestFeedNudgesLocalChanges(t *testing.T) {
	l := newFeedLog(t)
	e := newFeedEnv(t)
	ctx := context.Background()

	// A flag change: nudged at once. Every check before it was of the
	// first sync's own writes, and found nothing queued.
	m := e.row("INBOX", 0)
	start := time.Now()
	e.flag(m, maildir.FlagFlagged)
	checks, mark := l.waitFor(t, 0, "INBOX queued")
	if took := time.Since(start); took > time.Second {
		t.Errorf("the flag change was looked at after %v, want within a second", took)
	}
	for _, c := range checks[:len(checks)-1] {
		if !strings.HasSuffix(c, " clean") {
			t.Errorf("the first sync's own writes: the feed watcher found %q, want nothing queued", c)
		}
	}
	id := messageID(m)
	took := e.waitServer("the flag change", func(s map[string][]mirrortest.ServerMessage) bool {
		_, flagged := where(s, id, maildir.FlagFlagged)
		return flagged
	})
	t.Logf("flag change through the door on the server after %v", took)

	// New mail downloaded by a requested sync: its writes nudge nothing.
	e.waitState(StateIdle)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(142, 5, corpus.Options{Folders: []string{"INBOX"}}))
	before := e.syncs()
	if _, err := e.a.SyncThroughAgent(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// An expunge and a move through the door, then: what the watcher
	// looked at in between was the sync's own writes.
	x, y := e.row("INBOX", 1), e.row("INBOX", 2)
	xid, yid := messageID(x), messageID(y)
	e.expunge(x)
	checks, _ = l.waitFor(t, mark, "INBOX queued")
	for _, c := range checks[:len(checks)-1] {
		if !strings.HasSuffix(c, " clean") {
			t.Errorf("a sync's own writes: the feed watcher found %q, want nothing queued", c)
		}
	}
	if n := e.syncs() - before; n > 2 {
		t.Errorf("%d syncs after one requested sync and one change, want at most 2: %s", n, e.log.String())
	}
	e.move(y, "Archive") // looked at now, or after the sync of the expunge (which may carry it out)
	took = e.waitServer("the expunge and the move", func(s map[string][]mirrortest.ServerMessage) bool {
		xf, _ := where(s, xid, 0)
		yf, _ := where(s, yid, 0)
		return len(xf) == 0 && len(yf) == 1 && yf[0] == "Archive"
	})
	t.Logf("expunge and move through the door on the server after %v", took)
	e.waitState(StateIdle)
	if st, err := e.a.Status(ctx); err != nil || st.Accounts[0].Queued != 0 {
		t.Errorf("status after the syncs: %+v, %v; want 0 queued", st, err)
	}

	// Offline: queued, counted, and carried up when the server is back.
	mark = l.mark()
	e.proxy.down()
	z, w := e.row("INBOX", 3), e.row("INBOX", 4)
	zid, wid := messageID(z), messageID(w)
	e.flag(z, maildir.FlagAnswered)
	e.expunge(w)
	l.waitFor(t, mark, "INBOX queued")
	e.waitState(StateOffline)
	st, err := e.a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Accounts[0].Queued != 2 || st.Agent == nil || st.Agent.Accounts[0].State != StateOffline {
		t.Errorf("offline: status queued %d (agent %+v), want 2 (a flag change, an expunge), offline", st.Accounts[0].Queued, st.Agent)
	}
	e.proxy.up(t)
	took = e.waitServer("the changes made offline", func(s map[string][]mirrortest.ServerMessage) bool {
		_, answered := where(s, zid, maildir.FlagAnswered)
		wf, _ := where(s, wid, 0)
		return answered && len(wf) == 0
	})
	t.Logf("changes made offline on the server %v after it came back", took)
}
