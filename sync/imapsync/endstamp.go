package imapsync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
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
// stamp and listing are read (scanFolder), its cur/ and new/ are watched
// (inotify, Linux; elsewhere no end stamps). At the end the run takes the
// folder's stamp, then reads every change the watch saw until that
// moment, and records the stamp only when all of these hold:
//
//   - the scan found every file the message of its key (no second file
//     of a key, none of new/ hidden by one in cur/: maildir.Dir.ScanHidden;
//     a stamp of version 2 vouches for that too, see index.FolderStamp);
//   - each key the run or anyone else touched (a name in a watch event,
//     or a difference the scan found between listing and rows) now has
//     exactly the files its row says: one, under the row's name, or none
//     and no row. Checked on disk (lstat of each name seen) and in the
//     index (the rows of those keys);
//   - every other key was untouched on both sides: no event names it, and
//     the index changes a row's file only with the file (the store's
//     door), so its row and its file are as the scan found them, equal;
//   - the stamp is older than the time the watch was read by more than a
//     clock tick (endRacyWindow): a change after that time leaves another
//     directory time, however soon it comes;
//   - the folder's job succeeded, nothing made the run read listings
//     again (a move, a folder action, a local change before the turn:
//     then none is recorded), the watch lost nothing (no queue overflow,
//     the directory still the one watched), and the keys to check are
//     not more than endMaxKeys.
//
// Otherwise the folder is read whole by the next run, as before.
type endStamps struct {
	w     dirWatch // nil: none this run
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
// ("stamp") and before the watch is read ("drain").
var endStampHook func(stage string)

const (
	// endRacyWindow is how much older than the watch's reading an end
	// stamp's directory times must be. Linux's file times come from the
	// kernel's coarse clock (or a finer one), which ticks at HZ of 100
	// or more: 10 ms at most. A change after the reading, at t, gets a
	// time after t minus a tick, so later than the stamp's once the
	// window is a tick or more; 12 ms. (maildir.Stamp.Racy's 100 ms is
	// for any system; end stamps are Linux's only.)
	endRacyWindow = 12 * time.Millisecond
	// endMaxKeys bounds the keys checked for one folder: beyond, reading
	// the folder whole next time costs about as much.
	endMaxKeys = 5000
)

// newEndStamps starts the run's watch (none in a dry run, or where the
// system has none).
func newEndStamps(dryRun bool) *endStamps {
	e := &endStamps{cands: map[index.FolderID]*endCand{}}
	if dryRun {
		return e
	}
	if w, err := newDirWatch(); err == nil {
		e.w = w
	}
	return e
}

// watch starts watching the folder's cur/ and new/; it reports whether
// the folder can get an end stamp. Call it before the folder's stamp and
// listing are read.
func (e *endStamps) watch(f index.FolderID, d *maildir.Dir) bool {
	if e == nil || e.w == nil {
		return false
	}
	for _, sub := range [...]string{"cur", "new"} {
		if err := e.w.add(f, sub, filepath.Join(d.Path, sub)); err != nil {
			return false
		}
	}
	return true
}

// candidate records a watched folder whose scan found every file the
// message of its key, with the scan's differences (nil: none, a folder
// its stamp vouched for). A scan with more than endMaxKeys differences
// makes none.
func (e *endStamps) candidate(f index.FolderID, d *maildir.Dir, at maildir.Stamp, diff *scanDiff) {
	c := &endCand{dir: d, at: at, names: map[string][]string{}, vouched: diff == nil}
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
	off, cands := e.off, e.cands
	e.mu.Unlock()
	if e.w == nil || off || ctx.Err() != nil {
		return
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
		if c == nil || j.res.Err != nil {
			continue
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
	// The run's last changes (its last folder's) are often younger than
	// endRacyWindow, and a stamp that young vouches for nothing: wait out
	// the rest of the window, at most endRacyWindow, once for all.
	var newest time.Time
	for _, t := range todo {
		if n := t.stamp.Newest(); n.After(newest) {
			newest = n
		}
	}
	if wait := time.Until(newest.Add(endRacyWindow)); wait > 0 && wait <= endRacyWindow {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
	if endStampHook != nil {
		endStampHook("drain")
	}
	read := time.Now()
	ev, err := e.w.drain()
	if err != nil {
		s.log.Debug("no end stamps: the watch of the folders lost track", "err", err)
		return
	}
	for _, t := range todo {
		if ev.lost[t.f] || t.stamp.RacyWithin(read, endRacyWindow) {
			continue
		}
		if t.c.vouched && len(ev.names[t.f]) == 0 {
			continue // untouched: its recorded stamp holds (a run with nothing to do reads no more)
		}
		keys, names, ok := endKeys(t.c, ev.names[t.f])
		if !ok {
			continue
		}
		if err := s.recordEndStamp(ctx, t.f, t.c.dir, t.stamp, keys, names); err != nil {
			s.log.Debug("recording a folder's end stamp", "folder", t.f, "err", err)
		}
	}
}

// endKeys merges a candidate's differences with the names its folder's
// events named, by key: the keys to check and the names each may have
// on disk. ok is false past endMaxKeys, or for a name no Maildir key can be
// read from (a scan leaves such a file out; so is its event).
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
	var files map[string]string
	err := s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		if len(keys) > 0 {
			if files, err = tx.FilesByKey(f, keys); err != nil {
				return err
			}
		}
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
