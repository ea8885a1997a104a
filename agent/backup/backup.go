package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Options says what to back up where.
type Options struct {
	Store *index.Store // opened with index.OpenStore
	To    string       // the backup directory (created, mode 0700)
	Keep  int          // complete snapshots to keep, of every format together; 0 keeps all
	// Format is FormatDir (the default when empty), FormatTarZst or
	// FormatMbox.
	Format string
	// Progress, if set, is called as files are stored: files done of
	// total, bytes copied so far. It may be called from several
	// goroutines at once, never after Backup returns.
	Progress func(done, total int, copied int64)
	Now      func() time.Time // default time.Now
}

// Result says what a backup did.
type Result struct {
	Snapshot    string // the new snapshot's directory
	Files       int    // message and outbox files in it
	Linked      int    // of them, shared with the previous snapshot
	Copied      int    // of them, copied from the store
	CopiedBytes int64
	// Dropped names the rows (their last known path in the store) whose
	// file was gone by the time it was fetched: they are not in the
	// snapshot's index.
	Dropped []string
	// Mismatched names the files stored whose bytes differ from their
	// row's SHA-256 or size (a damaged store: postfach verify).
	Mismatched []string
	Removed    []string // old snapshots removed (Keep)
	Duration   time.Duration
}

// copyWorkers is how many files are fetched at once.
const copyWorkers = 4

// Backup takes a snapshot of the store into a new directory in opts.To.
func Backup(ctx context.Context, opts Options) (*Result, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	start := time.Now()
	root := opts.Store.Root()
	if root == "" {
		return nil, errors.New("backup: the store was opened without its Maildir root")
	}
	if err := os.MkdirAll(opts.To, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	unlock, err := lockDir(opts.To)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer unlock()
	format := opts.Format
	if format == "" {
		format = FormatDir
	}
	if format != FormatDir && format != FormatTarZst && format != FormatMbox {
		return nil, fmt.Errorf("backup: unknown format %q (dir, tar.zst or mbox)", format)
	}
	snaps, err := List(opts.To)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var base string
	var complete []Snapshot
	for _, s := range snaps {
		if !s.Complete {
			// Left by a backup that did not finish: nobody writes
			// here but us (the lock).
			if err := os.RemoveAll(s.Path); err != nil {
				return nil, fmt.Errorf("backup: removing the incomplete snapshot %s: %w", s.Path, err)
			}
			continue
		}
		complete = append(complete, s)
		if s.Format == FormatDir {
			base = s.Path
		}
	}
	name := newName(opts.To, now())
	snap := filepath.Join(opts.To, name)
	switch format {
	case FormatTarZst:
		snap += tarSuffix
	case FormatMbox:
		snap += mboxSuffix
	}
	b := &run{Options: opts, root: root, snap: snap, base: map[string]baseFile{}, res: &Result{Snapshot: snap}}
	if base != "" && format == FormatDir {
		if err := b.loadBase(base); err != nil {
			return nil, fmt.Errorf("backup: the previous snapshot %s: %w", base, err)
		}
	}
	switch format {
	case FormatTarZst:
		err = b.takeTar(ctx)
	case FormatMbox:
		err = b.takeMbox(ctx)
	default:
		err = b.take(ctx)
	}
	if err != nil {
		os.RemoveAll(snap)
		return nil, fmt.Errorf("backup: %w", err)
	}
	complete = append(complete, Snapshot{Name: filepath.Base(snap), Path: snap, Format: format, Complete: true})
	if opts.Keep > 0 {
		for len(complete) > opts.Keep {
			old := complete[0]
			complete = complete[1:]
			if err := removeSnapshot(old.Path); err != nil {
				return b.res, fmt.Errorf("backup: removing the old snapshot %s: %w", old.Path, err)
			}
			b.res.Removed = append(b.res.Removed, old.Path)
		}
	}
	b.res.Duration = time.Since(start)
	return b.res, nil
}

// baseFile is a message file of the previous snapshot.
type baseFile struct {
	path string // absolute
	Entry
}

// run is one backup under way.
type run struct {
	Options
	root string
	snap string
	// base: the previous snapshot's message files by folder and key
	// (baseKey).
	base  map[string]baseFile
	res   *Result
	fs    *fsHandle
	links *linker

	mu      sync.Mutex
	entries []Entry
	dropped []index.StoredFile
	done    atomic.Int64
	copied  atomic.Int64
}

func baseKey(dir, key string) string { return dir + "\x00" + key }

// loadBase reads the previous snapshot's manifest.
func (b *run) loadBase(dir string) error {
	es, err := readManifest(dir)
	if err != nil {
		return err
	}
	for _, e := range es {
		folder, _, name := splitMessagePath(e.Path)
		if folder == "" {
			continue
		}
		ent, ok := maildir.ParseName(name)
		if !ok {
			continue
		}
		b.base[baseKey(folder, ent.Key)] = baseFile{path: filepath.Join(dir, filepath.FromSlash(e.Path)), Entry: e}
	}
	return nil
}

// splitMessagePath splits "<folder>/cur/<name>" (or new/); folder is ""
// when p is not a message file's path.
func splitMessagePath(p string) (folder, sub, name string) {
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	folder, sub = path.Split(dir)
	if sub != "cur" && sub != "new" || name == "" {
		return "", "", ""
	}
	return strings.TrimSuffix(folder, "/"), sub, name
}

// take writes the snapshot.
func (b *run) take(ctx context.Context) error {
	if err := os.Mkdir(b.snap, 0o700); err != nil {
		return err
	}
	h, err := openFS(b.snap)
	if err != nil {
		return err
	}
	defer h.close()
	b.fs = h
	b.links = newLinker()
	defer b.links.close()
	if err := os.Mkdir(filepath.Join(b.snap, ".postfach"), 0o700); err != nil {
		return err
	}
	dbPath := filepath.Join(b.snap, ".postfach", "index.db")
	if err := b.Store.SnapshotInto(ctx, dbPath); err != nil {
		return err
	}
	p, err := planOfCopy(dbPath)
	if err != nil {
		return err
	}
	err = b.layout(p)
	if err == nil && testHookCopied != nil {
		testHookCopied()
	}
	if err == nil {
		err = b.fetchAll(ctx, p.files)
	}
	if err == nil && len(b.dropped) > 0 {
		err = b.dropRows(ctx, dbPath)
	}
	if err != nil {
		return err
	}
	for _, f := range b.dropped {
		b.res.Dropped = append(b.res.Dropped, f.Path())
	}
	// The index copy as it stays; dropRows may have left -wal and -shm
	// files behind on a system that keeps them: they are no part of it.
	for _, p := range []string{dbPath + "-wal", dbPath + "-shm", dbPath + "-journal"} {
		os.Remove(p)
	}
	e, err := hashFile(dbPath, ".postfach/index.db")
	if err != nil {
		return err
	}
	b.entries = append(b.entries, e)
	// The manifest goes to its temporary file first: the one syncfs
	// makes it durable with the rest (without syncfs, it is fsynced on
	// its own), before it is renamed into place.
	if err := stageManifest(b.snap, b.entries, b.fs.perFile()); err != nil {
		return err
	}
	if err := h.sync(); err != nil {
		return err
	}
	return placeManifest(b.snap)
}

// testHookCopied, when set (by tests), runs between the index's copy and
// the fetching of the files its rows name.
var testHookCopied func()

// layout makes the snapshot's folders (every folder row's, with cur/,
// new/ and tmp/, and the outbox) and copies their small marker files.
func (b *run) layout(p *plan) error {
	for _, d := range p.dirs {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(b.snap, filepath.FromSlash(d), sub), 0o700); err != nil {
				return err
			}
		}
	}
	for _, m := range p.markers {
		if err := b.copyMarker(m); err != nil {
			return err
		}
	}
	return nil
}

// dropRows removes from the index copy at dbPath the rows whose file was
// gone (b.dropped), leaving it one self-contained file again.
func (b *run) dropRows(ctx context.Context, dbPath string) error {
	cp, err := index.Open(dbPath)
	if err != nil {
		return err
	}
	err = cp.Write(ctx, func(tx *index.Tx) error {
		for _, f := range b.dropped {
			if err := tx.DropStored(f); err != nil {
				return err
			}
		}
		return nil
	})
	return errors.Join(err, cp.CloseSnapshot())
}

// copyMarker copies a small file of the store (rel, '/'-separated) into
// the snapshot, if it exists.
func (b *run) copyMarker(rel string) error {
	src, err := os.Open(filepath.Join(b.root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer src.Close()
	e, err := b.copyFrom(src, rel)
	if err != nil {
		return err
	}
	b.entries = append(b.entries, e)
	return nil
}

// fetchAll stores every file of files in the snapshot, copyWorkers at a
// time.
func (b *run) fetchAll(ctx context.Context, files []index.StoredFile) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan index.StoredFile)
	errc := make(chan error, copyWorkers)
	var wg sync.WaitGroup
	for range copyWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := b.fetch(ctx, f); err != nil {
					errc <- err
					cancel()
					return
				}
				n := b.done.Add(1)
				if b.Progress != nil {
					b.Progress(int(n), len(files), b.copied.Load())
				}
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	// The first failure: the others (a full disk fails every worker)
	// would only repeat it.
	err := <-errc
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// fetch stores the file of row f in the snapshot, under the name f
// records: linked from the previous snapshot when it has the same
// content there, else copied from the store.
func (b *run) fetch(ctx context.Context, f index.StoredFile) error {
	rel, err := filePath(f)
	if err != nil {
		return err
	}
	dst := filepath.Join(b.snap, filepath.FromSlash(rel))
	if bf, ok := b.base[baseKey(f.Dir, f.Key)]; ok && f.SHA256 != nil && bf.Size == f.Size && string(bf.SHA256[:]) == string(f.SHA256) {
		if err := b.links.link(bf.path, dst); err == nil {
			b.add(bf.Entry, rel, true)
			return nil
		}
		// No hard links there (a file system without them, too many
		// links to the file) or the old file is gone: a copy then.
	}
	src, err := b.openLive(ctx, f)
	if errors.Is(err, fs.ErrNotExist) {
		b.mu.Lock()
		b.dropped = append(b.dropped, f)
		b.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	defer src.Close()
	e, err := b.copyFrom(src, rel)
	if err != nil {
		return err
	}
	if f.SHA256 != nil && (string(e.SHA256[:]) != string(f.SHA256) || e.Size != f.Size) {
		b.mu.Lock()
		b.res.Mismatched = append(b.res.Mismatched, rel)
		b.mu.Unlock()
	}
	b.copied.Add(e.Size)
	b.add(e, rel, false)
	return nil
}

// filePath returns the path of row f's file in a snapshot, failing when
// it would not be in its folder's cur/ or new/.
func filePath(f index.StoredFile) (string, error) {
	rel := f.Path()
	if !validPath(rel) || !strings.HasPrefix(f.File, "cur/") && !strings.HasPrefix(f.File, "new/") || strings.Count(f.File, "/") != 1 {
		return "", fmt.Errorf("the index names a file outside its folder: %q", rel)
	}
	return rel, nil
}

func (b *run) add(e Entry, rel string, linked bool) {
	e.Path = rel
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries = append(b.entries, e)
	b.res.Files++
	if linked {
		b.res.Linked++
	} else {
		b.res.Copied++
		b.res.CopiedBytes += e.Size
	}
}

// openLive opens the live file of row f: by its last known name, else by
// its key (renamed since), else where the live index says the row's file
// is now (moved to another folder since). An error wrapping
// fs.ErrNotExist: it is gone.
func (b *run) openLive(ctx context.Context, f index.StoredFile) (*os.File, error) {
	cur := f
	for range 3 {
		if !validPath(cur.Dir) {
			return nil, fmt.Errorf("the index names a folder outside the store: %q", cur.Dir)
		}
		d := &maildir.Dir{Path: filepath.Join(b.root, filepath.FromSlash(cur.Dir))}
		fh, err := os.Open(filepath.Join(d.Path, filepath.FromSlash(cur.File)))
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return fh, err
		}
		if e, err := d.Find(cur.Key, path.Base(cur.File)); err == nil {
			fh, err := os.Open(d.FilePath(e))
			if err == nil || !errors.Is(err, fs.ErrNotExist) {
				return fh, err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		var now index.StoredFile
		var ok bool
		err = b.Store.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			now, ok, err = tx.StoredFileOf(f)
			return err
		})
		if err != nil {
			return nil, err
		}
		if !ok || (f.SHA256 != nil && string(now.SHA256) != string(f.SHA256)) {
			return nil, fmt.Errorf("%s: %w", f.Path(), fs.ErrNotExist)
		}
		if now.Dir == cur.Dir && now.Key == cur.Key && now.File == cur.File {
			// The live row names the file we did not find: it is
			// gone (the watcher or a sync will forget the row).
			return nil, fmt.Errorf("%s: %w", f.Path(), fs.ErrNotExist)
		}
		cur = now
	}
	return nil, fmt.Errorf("%s: %w", f.Path(), fs.ErrNotExist)
}

// copyFrom copies src into the snapshot at rel (a new file, 0600),
// hashing it.
func (b *run) copyFrom(src io.Reader, rel string) (Entry, error) {
	dst := filepath.Join(b.snap, filepath.FromSlash(rel))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Entry{}, err
	}
	h := sha256.New()
	buf := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(out, h), onlyReader{src}, *buf)
	bufPool.Put(buf)
	if err == nil && b.fs.perFile() {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Path: rel, Size: n}
	h.Sum(e.SHA256[:0])
	return e, nil
}

// onlyReader hides an *os.File's WriterTo/ReaderFrom, so that CopyBuffer
// goes through the hash.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// hashFile returns the manifest entry of the file at p (rel: its path in
// the snapshot).
func hashFile(p, rel string) (Entry, error) {
	f, err := os.Open(p)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	h := sha256.New()
	buf := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(h, onlyReader{f}, *buf)
	bufPool.Put(buf)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Path: rel, Size: n}
	h.Sum(e.SHA256[:0])
	return e, nil
}
