package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/postfach/postfach/maildir"
)

// folderNudges records the folders a LocalWatcher names, with when.
type folderNudges struct {
	ch chan string
}

func (n *folderNudges) notify(folder string) {
	select {
	case n.ch <- folder:
	default:
		panic("nudge buffer full")
	}
}

// next returns the next folder named, or "<none>" after limit.
func (n *folderNudges) next(limit time.Duration) string {
	select {
	case f := <-n.ch:
		return f
	case <-time.After(limit):
		return "<none>"
	}
}

// expect waits for exactly the folders want (in any order) to be named,
// and fails on any other.
func (n *folderNudges) expect(t *testing.T, what string, want ...string) {
	t.Helper()
	left := map[string]int{}
	for _, f := range want {
		left[f]++
	}
	for len(left) > 0 {
		f := n.next(5 * time.Second)
		if left[f] == 0 {
			t.Fatalf("%s: named %q, want %q", what, f, want)
		}
		if left[f]--; left[f] == 0 {
			delete(left, f)
		}
	}
}

// expectSet collects the folders named until none is for 3 debounce
// periods, and fails unless they are want (duplicates aside).
func (n *folderNudges) expectSet(t *testing.T, what string, want ...string) {
	t.Helper()
	got := map[string]bool{}
	first := n.next(5 * time.Second)
	for f := first; f != "<none>"; f = n.next(3 * testDebounce) {
		got[f] = true
	}
	w := map[string]bool{}
	for _, f := range want {
		w[f] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("%s: named %v, want %v", what, got, w)
	}
}

// quiet fails if a folder is named within d.
func (n *folderNudges) quiet(t *testing.T, what string, d time.Duration) {
	t.Helper()
	if f := n.next(d); f != "<none>" {
		t.Fatalf("%s: named %q, want nothing", what, f)
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type localEnv struct {
	t    *testing.T
	root string
	n    *folderNudges
	own  *RecentWrites
	lw   *LocalWatcher
	log  *logBuffer
}

const testDebounce, testMaxDelay = 100 * time.Millisecond, 400 * time.Millisecond

func newLocalEnv(t *testing.T, folders ...string) *localEnv {
	e := &localEnv{t: t, root: t.TempDir(), n: &folderNudges{ch: make(chan string, 1000)}, own: &RecentWrites{}, log: &logBuffer{}}
	for _, f := range folders {
		e.folder(f)
	}
	e.lw = &LocalWatcher{Root: e.root, Account: "acct", Notify: e.n.notify, Own: e.own,
		Debounce: testDebounce, MaxDelay: testMaxDelay,
		Logger: slog.New(slog.NewTextHandler(e.log, nil))}
	return e
}

// folder makes a folder's Maildir and returns its directory.
func (e *localEnv) folder(name string) string {
	p, err := maildir.FolderDir(e.root, "acct", name)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := maildir.Open(p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *localEnv) path(folder, sub, name string) string {
	p, err := maildir.FolderDir(e.root, "acct", folder)
	if err != nil {
		e.t.Fatal(err)
	}
	return filepath.Join(p, sub, name)
}

func (e *localEnv) write(path string) {
	e.t.Helper()
	if err := os.WriteFile(path, []byte("Subject: x\n\nbody\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *localEnv) rename(from, to string) {
	e.t.Helper()
	if err := os.Rename(from, to); err != nil {
		e.t.Fatal(err)
	}
}

// start runs the watcher until the test ends and waits for its first
// nudge (the whole account); it fails if Run leaves goroutines behind.
func (e *localEnv) start() {
	t := e.t
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.lw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of its context's end")
		}
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	e.n.expect(t, "start", "")
}

// TestLocalWatcher: files created, renamed (a flag change), moved between
// folders and deleted by another program name their folders; so does a
// folder made after start, and a file made in it before its watch existed;
// tmp/ and the store's own writes name nothing.
func TestLocalWatcher(t *testing.T) {
	e := newLocalEnv(t, "INBOX", "Archive", "Lists/Go")
	e.start()
	n := e.n

	e.write(e.path("INBOX", "new", "1.M1.host"))
	n.expect(t, "delivery to new/", "INBOX")

	e.rename(e.path("INBOX", "new", "1.M1.host"), e.path("INBOX", "cur", "1.M1.host:2,S"))
	n.expect(t, "new/ to cur/", "INBOX")
	e.rename(e.path("INBOX", "cur", "1.M1.host:2,S"), e.path("INBOX", "cur", "1.M1.host:2,FS"))
	n.expect(t, "flag change", "INBOX")

	e.rename(e.path("INBOX", "cur", "1.M1.host:2,FS"), e.path("Lists/Go", "cur", "1.M1.host:2,FS"))
	n.expect(t, "move", "INBOX", "Lists/Go")

	if err := os.Remove(e.path("Lists/Go", "cur", "1.M1.host:2,FS")); err != nil {
		t.Fatal(err)
	}
	n.expect(t, "deletion", "Lists/Go")

	// A delivery through tmp/ names the folder once, for the rename.
	e.write(e.path("Archive", "tmp", "2.M2.host"))
	n.quiet(t, "a file in tmp/", 3*testDebounce)
	e.rename(e.path("Archive", "tmp", "2.M2.host"), e.path("Archive", "new", "2.M2.host"))
	n.expect(t, "tmp/ to new/", "Archive")

	// A folder made after start, by another program, with a file written
	// at once (before the watcher can have added its watch).
	dir := filepath.Join(e.root, "acct", "Neu", "Sub")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.write(filepath.Join(dir, "cur", "3.M3.host:2,"))
	n.expectSet(t, "new folder", "Neu/Sub")
	e.write(filepath.Join(dir, "new", "4.M4.host"))
	n.expect(t, "delivery to the new folder", "Neu/Sub")

	// The store's own writes: a delivery and a flag change.
	own := e.path("INBOX", "cur", "5.M5.host,U=5:2,S")
	e.own.Add(own)
	e.write(own)
	renamed := e.path("INBOX", "cur", "5.M5.host,U=5:2,FS")
	e.own.Add(own, renamed)
	e.rename(own, renamed)
	n.quiet(t, "the store's own writes", 3*testDebounce+testMaxDelay)
	// ... and one of another program's among them.
	e.own.Add(e.path("INBOX", "cur", "6.M6.host:2,"))
	e.write(e.path("INBOX", "cur", "6.M6.host:2,"))
	e.write(e.path("INBOX", "cur", "7.M7.host:2,"))
	n.expect(t, "an own write beside a foreign one", "INBOX")

	// Directories starting with '.' and files in the account directory
	// are no folders.
	if err := os.MkdirAll(filepath.Join(e.root, "acct", ".hidden", "cur"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.write(filepath.Join(e.root, "acct", ".postfach-x"))
	n.quiet(t, "a hidden directory", 3*testDebounce)
}

// TestLocalWatcherFolders: a folder renamed or removed by another program
// names its old name (the sync's folder-level pass sorts it out) and the
// new one, and the new name is watched.
func TestLocalWatcherFolders(t *testing.T) {
	e := newLocalEnv(t, "INBOX", "Old", "Old/Child")
	e.start()
	n := e.n
	from, to := filepath.Join(e.root, "acct", "Old"), filepath.Join(e.root, "acct", "Renamed")
	e.rename(from, to)
	n.expectSet(t, "folder renamed", "Old", "Old/Child", "Renamed", "Renamed/Child")
	e.write(e.path("Renamed/Child", "new", "1.M1.host"))
	n.expect(t, "delivery to the renamed folder", "Renamed/Child")
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	n.expectSet(t, "folder removed", "Renamed", "Renamed/Child")
	// The same name again: watched afresh.
	e.folder("Renamed")
	n.expectSet(t, "folder made again", "Renamed")
	e.write(e.path("Renamed", "new", "2.M2.host"))
	n.expect(t, "delivery to the folder made again", "Renamed")

	// Moved away and made again under the same name at once: both the
	// moved folder and the new one are watched under their names.
	e.rename(e.folder("Renamed"), filepath.Join(e.root, "acct", "Moved"))
	e.folder("Renamed")
	n.expectSet(t, "moved and made again", "Renamed", "Moved")
	e.write(e.path("Moved", "new", "3.M3.host"))
	n.expect(t, "delivery to the moved folder", "Moved")
	e.write(e.path("Renamed", "new", "4.M4.host"))
	n.expect(t, "delivery to the folder made again", "Renamed")
}

// TestLocalWatcherDebounce: a burst of changes in two folders is one
// nudge per folder, and a steady stream is named at least every MaxDelay.
func TestLocalWatcherDebounce(t *testing.T) {
	e := newLocalEnv(t, "INBOX", "Archive")
	// The burst is one nudge per folder unless the writer stops for the
	// whole Debounce: a generous one, for a loaded machine.
	e.lw.Debounce, e.lw.MaxDelay = 500*time.Millisecond, time.Minute
	e.start()
	n := e.n
	var gap time.Duration // the writer's longest pause
	last := time.Now()
	for i := range 200 {
		e.write(e.path("INBOX", "new", fmt.Sprintf("%d.burst.host", i)))
		if i%4 == 0 {
			e.write(e.path("Archive", "new", fmt.Sprintf("%d.burst.host", i)))
		}
		gap, last = max(gap, time.Since(last)), time.Now()
	}
	got := map[string]int{}
	for f := n.next(5 * time.Second); f != "<none>"; f = n.next(2 * e.lw.Debounce) {
		got[f]++
	}
	switch {
	case len(got) != 2 || got["INBOX"] == 0 || got["Archive"] == 0:
		t.Fatalf("burst: named %v, want INBOX and Archive", got)
	case gap >= e.lw.Debounce/2:
		t.Logf("the writer paused for %v: the burst may be named more than once (%v)", gap, got)
	case got["INBOX"] != 1 || got["Archive"] != 1:
		t.Fatalf("burst: named %v, want INBOX and Archive once each", got)
	}

	// Events every 50 ms for 1.2 s: the debounce never expires, MaxDelay
	// does (named at least twice).
	e = newLocalEnv(t, "INBOX")
	e.start()
	n = e.n
	start := time.Now()
	for i := 0; time.Since(start) < 3*testMaxDelay; i++ {
		e.write(e.path("INBOX", "new", fmt.Sprintf("%d.stream.host", i)))
		time.Sleep(testDebounce / 2)
	}
	streamed := 0
	for f := n.next(2 * testDebounce); f != "<none>"; f = n.next(2 * testDebounce) {
		if f != "INBOX" {
			t.Fatalf("stream in INBOX named %q", f)
		}
		streamed++
	}
	// (More when the writer was held up for a Debounce.)
	if streamed < 2 {
		t.Errorf("a 1.2 s stream of events was named %d times, want at least 2 (MaxDelay %v)", streamed, testMaxDelay)
	}
}

// TestDebounceDue: a folder is due Debounce after its last event, and at
// most MaxDelay after its first.
func TestDebounceDue(t *testing.T) {
	e := newLocalEnv(t)
	r := &localRun{lw: e.lw, pend: map[string]*pending{}}
	t0 := time.Now()
	const debounce, maxDelay = 300 * time.Millisecond, time.Second
	r.pend["A"] = &pending{first: t0, last: t0.Add(100 * time.Millisecond), foreign: true}
	r.pend["B"] = &pending{first: t0, last: t0.Add(900 * time.Millisecond), foreign: true}
	if next, _ := r.next(debounce, maxDelay); !next.Equal(t0.Add(400 * time.Millisecond)) {
		t.Errorf("next due at %v, want 400ms", next.Sub(t0))
	}
	for _, c := range []struct {
		at   time.Duration
		want string
	}{{399 * time.Millisecond, "<none>"}, {400 * time.Millisecond, "A"}, {999 * time.Millisecond, "<none>"}, {time.Second, "B"}} {
		r.flush(t0.Add(c.at), debounce, maxDelay)
		got := "<none>"
		select {
		case got = <-e.n.ch:
		default:
		}
		if got != c.want {
			t.Errorf("flush at %v named %q, want %q", c.at, got, c.want)
		}
	}
}

// TestLocalWatcherTrouble: lost events (an inotify overflow) and a watch
// limit name the whole account and are said once.
func TestLocalWatcherTrouble(t *testing.T) {
	e := newLocalEnv(t, "INBOX")
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	r := &localRun{lw: e.lw, fw: fw, accountDir: filepath.Join(e.root, "acct"), watched: map[string]string{}, pend: map[string]*pending{}}
	for range 3 {
		if err := r.error(fsnotify.ErrEventOverflow); err != nil {
			t.Fatal(err)
		}
		if err := r.error(fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC)); err != nil {
			t.Fatal(err)
		}
		r.flush(time.Now().Add(time.Hour), testDebounce, testMaxDelay)
		select {
		case f := <-e.n.ch:
			if f != "" {
				t.Fatalf("after an overflow and a watch limit: named %q, want the whole account", f)
			}
		default:
			t.Fatal("after an overflow and a watch limit: nothing named")
		}
		if len(e.n.ch) != 0 {
			t.Fatalf("named %d more", len(e.n.ch))
		}
	}
	for _, what := range []string{"inotify queue overflow", "inotify watch limit"} {
		if got := strings.Count(e.log.String(), what); got != 1 {
			t.Errorf("%q said %d times, want once:\n%s", what, got, e.log)
		}
	}
	if err := r.error(syscall.EIO); err == nil {
		t.Errorf("an unknown inotify error was ignored")
	}
}

// TestRecentWrites: a path is the store's own for TTL after it was added.
func TestRecentWrites(t *testing.T) {
	w := &RecentWrites{TTL: 50 * time.Millisecond}
	w.Add("/s/acct/INBOX/cur/a:2,S", "/s/acct/INBOX/cur/b")
	if !w.Own("/s/acct/INBOX/cur/a:2,S") || !w.Own("/s/acct/INBOX/cur/../cur/b") || w.Own("/s/acct/INBOX/cur/c") {
		t.Fatal("Own does not answer what was added")
	}
	time.Sleep(60 * time.Millisecond)
	if w.Own("/s/acct/INBOX/cur/a:2,S") {
		t.Error("a path is still own after its TTL")
	}
	w.Add("/x") // drops the expired ones
	w.mu.Lock()
	n := len(w.paths)
	w.mu.Unlock()
	if n != 1 {
		t.Errorf("%d paths kept, want 1", n)
	}
}
