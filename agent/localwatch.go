package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/postfach/postfach/maildir"
)

// LocalWatcher tells the agent which local folders of an account other
// programs changed (a mail client flagging, moving, deleting; an MDA
// delivering), so that it syncs just those (imapsync.Options.Only) within
// a second instead of on the next full scan.
//
// It watches, with inotify (fsnotify; not recursive), the account
// directory and every folder directory (for folders made, renamed or
// removed) and each folder's cur/ and new/ (for files: a delivery is a
// Create in new/, a flag change a Rename plus a Create in cur/, a move a
// Rename here and a Create there, a deletion a Remove). tmp/ is never
// watched nor reported: a file there is not a message yet. Names starting
// with '.' and directories that are not canonical folder encodings (see
// maildir.DecodeFolder) are not folders.
//
// Events are debounced per folder: a folder is named (Notify) Debounce
// after the last event in it, and at most MaxDelay after the first, so a
// burst (a client moving a thousand messages) is one nudge per folder.
// The name "" stands for the whole account: once at start, after the
// watches are in place (what changed before them), and whenever events
// may have been lost: an inotify queue overflow, or a watch that could
// not be added (the inotify watch limit, "no space left on device"; too
// many open files). Such trouble is logged once (at warn level) per
// watcher; the agent's periodic full scan stays the source of truth.
//
// A folder whose cur/ or new/ watch is added after start (a folder made
// by another program, or one moved here) is named once right away: the
// files created in it before its watch existed cause no event.
//
// The store's own writes are not a user's: before naming a folder, the
// watcher asks Own (if set) about every file that caused its events; a
// folder all of whose events are the store's own is not named. The
// decision is made when the debounce expires, not when the event comes,
// because the store announces a write (the change feed) only after it
// committed it, after its file event. A write announced later than that
// costs one needless (cheap) sync of the folder, nothing more.
type LocalWatcher struct {
	Root    string // store root
	Account string // its directory is Root/<EncodeName(Account)>
	// Notify is called with the local name of a folder that changed, or
	// "" for the whole account, from Run's goroutine. It must never
	// block: hand the name on with a non-blocking, coalescing send (the
	// agent's per-account nudge).
	Notify func(folder string)
	// Own, if set, tells the store's own file writes (see OwnWrites).
	Own OwnWrites
	// Debounce (default 300 ms) and MaxDelay (default 1 s): see above.
	Debounce, MaxDelay time.Duration
	Logger             *slog.Logger // default: discard

	mu   sync.Mutex
	said map[string]bool
}

// OwnWrites tells the store's own file changes from other programs'.
type OwnWrites interface {
	// Own reports whether the store itself just created, renamed (from
	// or to) or removed the file at path (absolute, as the watcher sees
	// it: Root joined with the folder's directory, cur or new, and the
	// file name). It must be safe for concurrent use.
	Own(path string) bool
}

// maxPending bounds the file names a folder's pending events remember for
// Own; past it, the folder is named whatever they were.
const maxPending = 4096

// pending is one folder's debounced events.
type pending struct {
	first, last time.Time
	paths       []string // files behind the events, for Own
	foreign     bool     // an event that is surely not the store's
}

// localRun is the state of one Run.
type localRun struct {
	lw         *LocalWatcher
	fw         *fsnotify.Watcher
	accountDir string
	watched    map[string]string // watched directory -> folder name for cur/ and new/, "" for the others
	pend       map[string]*pending
}

// Run watches until ctx ends (nil) or the watcher fails: inotify not
// available, the account directory missing (temporary: it appears with
// the first sync), or an error inotify reports that is neither an
// overflow nor a limit.
func (lw *LocalWatcher) Run(ctx context.Context) error {
	if lw.Logger == nil {
		lw.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if lw.Notify == nil {
		lw.Notify = func(string) {}
	}
	debounce, maxDelay := lw.Debounce, lw.MaxDelay
	if debounce <= 0 {
		debounce = 300 * time.Millisecond
	}
	if maxDelay < debounce {
		maxDelay = max(time.Second, debounce)
	}
	accountDir := filepath.Join(lw.Root, maildir.EncodeName(lw.Account))
	if st, err := os.Stat(accountDir); err != nil || !st.IsDir() {
		return fmt.Errorf("watching account %s: its directory %s is missing", lw.Account, accountDir)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching account %s: %w", lw.Account, err)
	}
	defer fw.Close()
	r := &localRun{lw: lw, fw: fw, accountDir: accountDir, watched: map[string]string{}, pend: map[string]*pending{}}
	r.resync(false)
	lw.Notify("") // what changed before the watches were in place
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			r.event(ev)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			if err := r.error(err); err != nil {
				return err
			}
		case <-timer.C:
			// Events that came meanwhile first: a watcher held up
			// (a loaded machine) must not split a burst.
			if !r.drain() {
				return nil
			}
			r.flush(time.Now(), debounce, maxDelay)
		}
		if next, ok := r.next(debounce, maxDelay); ok {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// drain handles the events that are ready, without waiting; false when
// the watcher was closed.
func (r *localRun) drain() bool {
	for range 10000 {
		select {
		case ev, ok := <-r.fw.Events:
			if !ok {
				return false
			}
			r.event(ev)
		default:
			return true
		}
	}
	return true
}

// sayOnce logs msg at warn level the first time key is seen by this
// watcher, at debug level after.
func (lw *LocalWatcher) sayOnce(key, msg string, args ...any) {
	lw.mu.Lock()
	if lw.said == nil {
		lw.said = map[string]bool{}
	}
	first := !lw.said[key]
	lw.said[key] = true
	lw.mu.Unlock()
	if first {
		lw.Logger.Warn(msg, args...)
	} else {
		lw.Logger.Debug(msg, args...)
	}
}

// error handles an error inotify reported.
func (r *localRun) error(err error) error {
	switch {
	case errors.Is(err, fsnotify.ErrEventOverflow):
		r.lw.sayOnce("overflow", "file events were lost (inotify queue overflow): the whole account is scanned", "account", r.lw.Account)
		r.mark("", "", true)
		return nil
	case watchLimit(err):
		r.lw.sayOnce("limit", "cannot watch every folder (inotify watch limit or open files): the whole account is scanned",
			"account", r.lw.Account, "err", err)
		r.mark("", "", true)
		return nil
	}
	return fmt.Errorf("watching account %s: %w", r.lw.Account, err)
}

// watchLimit reports whether err is the kernel refusing another watch or
// descriptor.
func watchLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// mark records an event for folder ("" the whole account) caused by the
// file at path ("" for none). foreign: surely not the store's own.
func (r *localRun) mark(folder, path string, foreign bool) {
	now := time.Now()
	p := r.pend[folder]
	if p == nil {
		p = &pending{first: now}
		r.pend[folder] = p
	}
	p.last = now
	switch {
	case foreign || path == "" || r.lw.Own == nil || len(p.paths) >= maxPending:
		p.foreign = true
		p.paths = nil
	case !p.foreign:
		p.paths = append(p.paths, path)
	}
}

// due is when the folder is named: debounce after its last event, at
// most maxDelay after its first.
func (p *pending) due(debounce, maxDelay time.Duration) time.Time {
	if a, b := p.last.Add(debounce), p.first.Add(maxDelay); b.Before(a) {
		return b
	}
	return p.last.Add(debounce)
}

// next is when the earliest pending folder is due.
func (r *localRun) next(debounce, maxDelay time.Duration) (time.Time, bool) {
	var at time.Time
	for _, p := range r.pend {
		due := p.due(debounce, maxDelay)
		if at.IsZero() || due.Before(at) {
			at = due
		}
	}
	return at, !at.IsZero()
}

// flush names the folders that are due, unless all their events were the
// store's own.
func (r *localRun) flush(now time.Time, debounce, maxDelay time.Duration) {
	for folder, p := range r.pend {
		if p.due(debounce, maxDelay).After(now) {
			continue
		}
		delete(r.pend, folder)
		if !p.foreign && r.allOwn(p.paths) {
			continue
		}
		r.lw.Notify(folder)
	}
}

func (r *localRun) allOwn(paths []string) bool {
	for _, p := range paths {
		if !r.lw.Own.Own(p) {
			return false
		}
	}
	return true
}

// event sorts one file event: a file in a folder's cur/ or new/, or a
// change of the directory tree.
func (r *localRun) event(ev fsnotify.Event) {
	if ev.Op == fsnotify.Chmod {
		return
	}
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	if folder, ok := r.watched[dir]; ok && folder != "" {
		// In cur/ or new/ (a directory made there is no message, but
		// reporting it costs one needless sync at most).
		r.mark(folder, ev.Name, false)
		return
	}
	if _, ok := r.watched[dir]; !ok || base == "tmp" || strings.HasPrefix(base, ".") {
		return
	}
	// In the account directory or a folder's: cur/ or new/ made or
	// removed, or a directory (a folder, or folders) made, moved or
	// removed. The folders that went away are named (the sync's
	// folder-level pass sorts them out), and so are those that came
	// (resync).
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		r.unwatchBelow(ev.Name)
	}
	r.resync(true)
}

// unwatchBelow removes the watches of path and everything below it (a
// directory moved or removed), naming the folders whose cur/ or new/ they
// were: inotify keeps a moved directory's watches under their old names,
// and a watch added for the new name would be merged into them.
func (r *localRun) unwatchBelow(path string) {
	for p := range r.watched {
		if p == path || strings.HasPrefix(p, path+string(filepath.Separator)) {
			r.unwatch(p)
		}
	}
}

func (r *localRun) unwatch(p string) {
	_ = r.fw.Remove(p) // gone already, mostly
	if folder := r.watched[p]; folder != "" {
		r.mark(folder, "", true)
	}
	delete(r.watched, p)
}

// resync adds watches for the directories of the tree that have none yet
// and forgets those that are gone. notify: name the folders whose cur/ or
// new/ watch is new (files made in them before the watch cause no event).
//
// A directory's entries are read before its watch is added, so one made
// in between causes no event and was not read (a folder's cur/ made just
// after the folder): the tree is walked again after each pass that added
// a watch, until one adds none.
func (r *localRun) resync(notify bool) {
	for pass := 0; pass < 16 && r.resyncPass(notify); pass++ {
	}
}

// resyncPass is one pass of resync; it reports whether it added a watch.
func (r *localRun) resyncPass(notify bool) (added bool) {
	want := map[string]string{}
	walkWatchDirs(r.accountDir, "", true, want)
	for p := range r.watched {
		if _, ok := want[p]; !ok {
			r.unwatch(p)
		}
	}
	for p, folder := range want {
		if _, ok := r.watched[p]; ok {
			continue
		}
		if err := r.fw.Add(p); err != nil {
			if watchLimit(err) {
				_ = r.error(err)
			}
			continue // else gone meanwhile: its parent's event says so
		}
		r.watched[p] = folder
		added = true
		if notify && folder != "" {
			r.mark(folder, "", true)
		}
	}
	return added
}

// walkWatchDirs adds to want the directories to watch below dir (the
// account directory when top): every directory that may hold folders
// (folder name ""), and each folder's cur/ and new/ (its name).
func walkWatchDirs(dir, prefix string, top bool, want map[string]string) {
	want[dir] = ""
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || n[0] == '.' || n == "tmp" {
			continue
		}
		if n == "cur" || n == "new" {
			if !top {
				want[filepath.Join(dir, n)] = prefix
			}
			continue
		}
		comp, err := maildir.DecodeName(n)
		if err != nil || strings.Contains(comp, "/") {
			continue
		}
		folder := comp
		if !top {
			folder = prefix + "/" + comp
		}
		walkWatchDirs(filepath.Join(dir, n), folder, false, want)
	}
}

// RecentWrites is an OwnWrites fed with the files the store reports
// writing (the agent turns the store's change feed into paths: both names
// of a rename): a path is the store's own for TTL after it was added.
type RecentWrites struct {
	TTL time.Duration // default 10 s

	mu     sync.Mutex
	paths  map[string]time.Time // path -> when added
	pruned time.Time            // when expired paths were last dropped
}

// Add records paths the store just wrote, renamed or removed.
func (w *RecentWrites) Add(paths ...string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paths == nil {
		w.paths = map[string]time.Time{}
	}
	if ttl := w.ttl(); now.Sub(w.pruned) > ttl {
		for p, at := range w.paths {
			if now.Sub(at) > ttl {
				delete(w.paths, p)
			}
		}
		w.pruned = now
	}
	for _, p := range paths {
		w.paths[filepath.Clean(p)] = now
	}
}

// Own reports whether path was added within TTL.
func (w *RecentWrites) Own(path string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.paths[filepath.Clean(path)]
	return ok && time.Since(at) <= w.ttl()
}

func (w *RecentWrites) ttl() time.Duration {
	if w.TTL <= 0 {
		return 10 * time.Second
	}
	return w.TTL
}
