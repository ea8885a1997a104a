package imapsync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// End stamps: a run that changed a folder's listing records, at its end,
// the stamp of the listing as the run left it, so that the next run reads
// neither that listing nor its rows (scanFolder reads a folder only when
// its stamp does not vouch for it). Without them, every run after a
// change read every changed folder whole once more: at 100,000 messages
// 0.41 s where a run with nothing to read takes 0.09 s.
//
// The run cannot take its own word for the listing: another program may
// change the Maildir while it runs. So it watches: before a folder's
// listing and the stamp it goes with are read (scanFolder), its cur/ and
// new/ are watched (inotify, Linux, local filesystems only; elsewhere no
// end stamps). A folder whose recorded stamp vouched for its listing is
// watched only once its job is going to run (arm: most runs skip every
// folder, and an inotify instance with watches costs 10 to 15 ms to tear
// down, a fifth of a no-change run), and only if its stamp is still the
// one that vouched (exactly: a change since would have moved its times).
// At the end the run takes the folder's stamp, then reads every change the
// watch saw until then, and records the stamp only when all of these
// hold:
//
//   - the scan found every file the message of its key (no second file
//     of a key, none of new/ hidden by one in cur/: maildir.Listing.Sorted;
//     a stamp of version 2 vouches for that too, see index.FolderStamp);
//   - the directories stamped at the end are the ones watched and
//     listed (device and inode: not a folder moved away and another put
//     in its place);
//   - each key the run or anyone else touched (a name in a watch event,
//     or a difference the scan found between listing and rows) now has
//     exactly the files its row says: one, under the row's name, or none
//     and no row. Checked on disk (lstat of each name seen) and in the
//     index (each key's row, looked up as it is, byte for byte);
//   - every other key was untouched on both sides: no event names it, and
//     the index changes a row's file only with the file (the store's
//     door), so its row and its file are as the scan found them, equal;
//   - nothing was in flight: a change whose directory time the stamp
//     shows has its event read too (settle: Linux queues the event before
//     it lets go of the directory, which a read of it waits for), and
//     the filesystem's clock is past the stamp's time before the watch
//     is read for the last time (clockPast, at most endClockWait), so a
//     change after that gets another directory time;
//   - the folder's job succeeded, nothing made the run read listings
//     again (a move, a folder action, a local change before the turn:
//     then none is recorded), the watch lost nothing (no queue overflow,
//     its directories still there), and the keys to check are not more
//     than endMaxKeys.
//
// Otherwise the folder is read whole by the next run, as before.
type endStamps struct {
	can   bool     // not a dry run
	w     dirWatch // nil: none yet (started by the first watch), or none on this system
	none  bool     // the system has no watch
	mu    sync.Mutex
	cands map[index.FolderID]*endCand
	off   bool // a listing was read again: no end stamp this run
}

// endCand is a folder that may get an end stamp: its directory, and the
// names its scan found differing from its rows, by key.
type endCand struct {
	dir   *maildir.Dir
	at    maildir.Stamp       // taken after the watch, before the listing: the directories watched
	names map[string][]string // key -> "cur/<name>", "new/<name>"
	// vouched: the folder's recorded stamp vouched for its listing (no
	// differences): without an event since, it still does.
	vouched bool
	// armed: its directories are watched (a vouched folder's are once its
	// job is going to run: see arm).
	armed bool
}

// dirWatch watches directories for changes to their names (see
// dirwatch_linux.go).
type dirWatch interface {
	add(folder index.FolderID, sub, path string) error
	// drain returns every change queued since the last drain.
	drain() (dirEvents, error)
	close()
}

type dirEvents struct {
	names map[index.FolderID][]string // "cur/<name>" or "new/<name>"
	lost  map[index.FolderID]bool     // a watched directory was removed or renamed
}

// endStampHook, if set (by tests), runs before the end stamps are taken
// ("stamp"), before the watch is read ("drain"), and before a vouched
// folder is watched ("arm").
var endStampHook func(stage string)

// watchesStarted counts the runs' watches started (for tests).
var watchesStarted atomic.Int64

const (
	// endClockWait bounds the wait for the filesystem's clock to pass the
	// end stamps' times (see clockPast): Linux's ticks at HZ of 100 or
	// more, 10 ms at most; a filesystem of whole seconds is not waited
	// for (its folders are read by the next run).
	endClockWait = 25 * time.Millisecond
	// endMaxKeys bounds the keys checked for one folder: beyond, reading
	// the folder whole next time costs about as much.
	endMaxKeys = 5000
)

// newEndStamps prepares the run's end stamps (none in a dry run); the
// watch starts with the first folder watched.
func newEndStamps(dryRun bool) *endStamps {
	return &endStamps{can: !dryRun, cands: map[index.FolderID]*endCand{}}
}

// watcher returns the run's watch, started if need be (nil: none).
func (e *endStamps) watcher() dirWatch {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.w == nil && e.can && !e.none {
		w, err := newDirWatch()
		e.w, e.none = w, err != nil
		if err == nil {
			watchesStarted.Add(1)
		}
	}
	return e.w
}

// watch starts watching the folder's cur/ and new/, and returns their
// stamp as taken before: the folder can get an end stamp (ok) only if its
// scan's stamp has the same directories (maildir.Stamp.SameDirs), the
// ones watched. Call it before the folder's stamp and listing are read.
func (e *endStamps) watch(f index.FolderID, d *maildir.Dir) (dirs maildir.Stamp, ok bool) {
	if e == nil {
		return dirs, false
	}
	w := e.watcher()
	if w == nil {
		return dirs, false
	}
	dirs, err := d.Stamp()
	if err != nil {
		return dirs, false
	}
	return dirs, watchDirs(w, f, d) == nil
}

// watchDirs adds the folder's cur/ and new/ to w.
func watchDirs(w dirWatch, f index.FolderID, d *maildir.Dir) error {
	for _, sub := range [...]string{"cur", "new"} {
		if err := w.add(f, sub, filepath.Join(d.Path, sub)); err != nil {
			return err
		}
	}
	return nil
}

// vouched records a folder whose recorded stamp vouched for its listing,
// stamped at, as a candidate to be armed if its job runs (see arm).
func (e *endStamps) vouched(f index.FolderID, d *maildir.Dir, at maildir.Stamp) {
	if !e.can {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cands[f] = &endCand{dir: d, at: at, names: map[string][]string{}, vouched: true}
}

// arm watches a vouched candidate's directories before its job changes
// anything (the run has not touched its cur/ nor new/ yet), and keeps it
// a candidate only if its stamp, taken once watched, is still the one
// that vouched: then nothing changed between that stamp and the watch.
func (e *endStamps) arm(f index.FolderID) {
	e.mu.Lock()
	c := e.cands[f]
	e.mu.Unlock()
	if c == nil || c.armed {
		return
	}
	if endStampHook != nil {
		endStampHook("arm")
	}
	keep := false
	if w := e.watcher(); w != nil && watchDirs(w, f, c.dir) == nil {
		st, err := c.dir.Stamp()
		keep = err == nil && st == c.at
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if keep {
		c.armed = true
	} else {
		delete(e.cands, f)
	}
}

// candidate records a watched folder whose scan found every file the
// message of its key: at is the scan's stamp, diff its differences (nil:
// none, a folder its stamp vouched for). A scan with more than
// endMaxKeys differences makes none.
func (e *endStamps) candidate(f index.FolderID, d *maildir.Dir, at maildir.Stamp, diff *scanDiff) {
	c := &endCand{dir: d, at: at, names: map[string][]string{}, vouched: diff == nil, armed: true}
	if diff != nil {
		if len(diff.renamed)+len(diff.gone)+len(diff.unknown) > endMaxKeys {
			return
		}
		add := func(key, name string) { c.names[key] = append(c.names[key], name) }
		for _, r := range diff.renamed {
			row := diff.present[r.i]
			add(row.Key, row.File)
			add(r.e.Key, r.e.Sub+"/"+r.e.Name)
		}
		for _, row := range diff.gone {
			add(row.Key, row.File)
		}
		for _, u := range diff.unknown {
			add(u.Key, u.Sub+"/"+u.Name)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cands[f] = c
}

// drop: the listings were read again (the scan cache cleared), after
// changes the candidates' scans do not cover; no end stamp this run.
func (e *endStamps) drop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.off = true
}

func (e *endStamps) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.w != nil {
		e.w.close()
	}
}

// recordEndStamps takes the end stamps of the candidates whose job in jobs
// succeeded (see endStamps); it only logs what fails: the next run reads
// those folders.
func (s *syncer) recordEndStamps(ctx context.Context, jobs []*folderJob) {
	e := s.ends
	e.mu.Lock()
	off, cands, w := e.off, e.cands, e.w
	e.mu.Unlock()
	if w == nil || off || ctx.Err() != nil {
		return // (no watch: no folder was armed)
	}
	type taken struct {
		f     index.FolderID
		c     *endCand
		stamp maildir.Stamp
	}
	if endStampHook != nil {
		endStampHook("stamp")
	}
	var todo []taken
	for _, j := range jobs {
		c := cands[j.f.ID]
		if c == nil || !c.armed || j.res.Err != nil {
			continue // (not armed: its job was skipped, its stamp still vouches)
		}
		st, err := c.dir.Stamp()
		if err != nil || !st.SameDirs(c.at) {
			continue // another cur/ or new/ than the ones watched (a folder moved away, another in its place)
		}
		todo = append(todo, taken{j.f.ID, c, st})
	}
	if len(todo) == 0 {
		return
	}
	ev, err := w.drain()
	if err != nil {
		s.log.Debug("no end stamps: the watch of the folders lost track", "err", err)
		return
	}
	// A folder its stamp vouched for that nobody touched keeps that stamp
	// (a run with nothing to do goes no further).
	todo = slices.DeleteFunc(todo, func(t taken) bool { return t.c.vouched && len(ev.names[t.f]) == 0 && !ev.lost[t.f] })
	// A change in flight when a stamp was taken (its directory's time
	// set, its event not queued yet) is over once the directory can be
	// read: Linux queues the event before it lets go of the directory's
	// lock, which a read of the directory takes.
	for _, t := range todo {
		settle(t.c.dir)
	}
	// The filesystem's clock past each stamp's time: a change after the
	// watch is read then gets a later time than the stamp (its clock may
	// tick coarsely, by milliseconds, or by seconds; a run's last change
	// is often that recent).
	deadline := time.Now().Add(endClockWait)
	todo = slices.DeleteFunc(todo, func(t taken) bool { return !clockPast(ctx, t.c.dir, t.stamp.Newest(), deadline) })
	if endStampHook != nil {
		endStampHook("drain")
	}
	more, err := w.drain()
	if err != nil {
		s.log.Debug("no end stamps: the watch of the folders lost track", "err", err)
		return
	}
	ev.add(more)
	// Two folders at a time: each checks its keys on disk (an lstat of
	// every name seen) and in the index, at 100,000 messages about 8 ms a
	// folder after an incremental run, at the run's end.
	parallel(len(todo), 2, func(i int) {
		t := todo[i]
		if ev.lost[t.f] {
			return
		}
		keys, names, ok := endKeys(t.c, ev.names[t.f])
		if !ok {
			return
		}
		if err := s.recordEndStamp(ctx, t.f, t.c.dir, t.stamp, keys, names); err != nil {
			s.log.Debug("recording a folder's end stamp", "folder", t.f, "err", err)
		}
	})
}

// endKeys merges a candidate's differences with the names its folder's
// events named, by key: the keys to check and the names each may have
// on disk; a name no Maildir key can be read from is left out, as a scan
// leaves its file out. ok is false past endMaxKeys.
func endKeys(c *endCand, evNames []string) (keys []string, names map[string][]string, ok bool) {
	names = make(map[string][]string, len(c.names)+len(evNames))
	for k, ns := range c.names {
		names[k] = append(names[k], ns...)
	}
	for _, n := range evNames {
		en, ok := maildir.ParseName(filepath.Base(n))
		if !ok {
			continue // not a message's name: the scan does not list it either
		}
		names[en.Key] = append(names[en.Key], n)
	}
	if len(names) > endMaxKeys {
		return nil, nil, false
	}
	keys = make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, names, true
}

// recordEndStamp checks the keys (see endStamps) and, when each has
// exactly the file its row names or none and no row, records stamp with
// the folder's rows, unless that is what is recorded already.
func (s *syncer) recordEndStamp(ctx context.Context, f index.FolderID, d *maildir.Dir, stamp maildir.Stamp, keys []string, names map[string][]string) error {
	var recorded string
	var now index.FolderStamp
	files := map[string]string{}
	err := s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		if len(keys) > 0 {
			rows, err := tx.FileRowsByKey(f, keys)
			if err != nil {
				return err
			}
			for k, r := range rows {
				files[k] = r.File
			}
		}
		var err error
		recorded, now, err = tx.FolderStamp(f)
		return err
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		seen := names[k]
		if file, ok := files[k]; ok {
			seen = append(seen, file)
		}
		slices.Sort(seen)
		var present []string
		for _, n := range slices.Compact(seen) {
			fi, err := os.Lstat(filepath.Join(d.Path, n))
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return err
			case !fi.IsDir():
				present = append(present, n)
			}
		}
		file, hasRow := files[k]
		if len(present) > 1 || (len(present) == 1) != hasRow || (hasRow && present[0] != file) {
			return nil // not as the row says: the next run reads the folder
		}
	}
	now.Dir = stamp.String()
	if now.String() == recorded {
		return nil
	}
	return s.opts.Index.SetFolderStamp(ctx, f, now)
}

// add merges more (a later drain) into ev.
func (ev *dirEvents) add(more dirEvents) {
	for f, ns := range more.names {
		ev.names[f] = append(ev.names[f], ns...)
	}
	for f := range more.lost {
		ev.lost[f] = true
	}
}

// settle reads one entry of the folder's cur/ and new/ (see
// recordEndStamps); errors are the caller's to meet later.
func settle(d *maildir.Dir) {
	for _, sub := range [...]string{"cur", "new"} {
		if f, err := os.Open(filepath.Join(d.Path, sub)); err == nil {
			f.ReadDir(1)
			f.Close()
		}
	}
}

// clockPast waits until a file the folder's filesystem changes gets a time
// after t (maildir.Dir.FileTime), at most until deadline; it reports
// whether it did.
func clockPast(ctx context.Context, d *maildir.Dir, t, deadline time.Time) bool {
	for {
		now, err := d.FileTime()
		if err != nil {
			return false
		}
		if now.After(t) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}
