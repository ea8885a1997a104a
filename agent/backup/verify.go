package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Difference is one thing verify found wrong: a file (its path relative
// to the store root or the snapshot, '/'-separated) and what is wrong.
type Difference struct {
	Path string
	What string
}

func (d Difference) String() string { return d.Path + ": " + d.What }

// Report is what a verify found.
type Report struct {
	Files       int   // files checked
	Bytes       int64 // bytes read
	Differences []Difference
}

func (r *Report) add(p, format string, args ...any) {
	r.Differences = append(r.Differences, Difference{Path: p, What: fmt.Sprintf(format, args...)})
}

func (r *Report) sort() {
	sort.SliceStable(r.Differences, func(i, j int) bool { return r.Differences[i].Path < r.Differences[j].Path })
}

// Progress, if not nil, is told files done of total as verify hashes
// them (total 0: not known, a tar.zst); it may be called from several
// goroutines at once.
type Progress func(done, total int)

// VerifySnapshot checks the snapshot in dir: every file its manifest
// lists is there with its size and SHA-256, no other file is, and the
// snapshot's index and its message files agree (every row has its file
// with the row's SHA-256, every message file has its row); for an mbox
// export (a manifest of mbox files only), that each message reads back
// as its X-Postfach-Export header says. An error
// means it could not be checked at all (no manifest: an incomplete
// snapshot, or not one).
func VerifySnapshot(ctx context.Context, dir string, progress Progress) (*Report, error) {
	es, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	r := &Report{}
	listed := make(map[string]bool, len(es))
	for _, e := range es {
		listed[e.Path] = true
	}
	present := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() || rel == ManifestName {
			return nil
		}
		if !d.Type().IsRegular() {
			r.add(rel, "not a regular file")
			return nil
		}
		if !listed[rel] {
			r.add(rel, "not in the manifest")
			return nil
		}
		present[rel] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	var jobs []hashJob
	for _, e := range es {
		if present[e.Path] {
			jobs = append(jobs, hashJob{rel: e.Path, abs: filepath.Join(dir, filepath.FromSlash(e.Path))})
		}
	}
	hashed := make(map[string]Entry, len(jobs))
	err = hashAll(ctx, jobs, progress, r, func(j hashJob, e Entry) { hashed[j.rel] = e })
	if err != nil {
		return nil, err
	}
	if isMboxExport(es) {
		bad := checkFiles(r, es, present, hashed)
		if err := checkMboxes(ctx, dir, es, bad, r); err != nil {
			return nil, fmt.Errorf("verify %s: %w", dir, err)
		}
		r.sort()
		return r, nil
	}
	if err := checkSnapshot(r, es, present, hashed, filepath.Join(dir, ".postfach", "index.db")); err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	r.sort()
	return r, nil
}

// checkFiles compares the files found in a snapshot (present: found as
// regular files; hashed: their entries, for those read whole) with its
// manifest es, and returns the paths that are not as it says.
func checkFiles(r *Report, es []Entry, present map[string]bool, hashed map[string]Entry) map[string]bool {
	bad := map[string]bool{}
	for _, l := range es {
		e, ok := hashed[l.Path]
		switch {
		case !present[l.Path]:
			r.add(l.Path, "missing (the manifest lists it)")
			bad[l.Path] = true
		case !ok: // unreadable: named as it was read
			bad[l.Path] = true
		case e.Size != l.Size:
			r.add(l.Path, "size %d, the manifest says %d", e.Size, l.Size)
			bad[l.Path] = true
		case e.SHA256 != l.SHA256:
			r.add(l.Path, "content differs from the manifest (SHA-256 %s, the manifest says %s)", short(e.SHA256[:]), short(l.SHA256[:]))
			bad[l.Path] = true
		}
	}
	return bad
}

// checkSnapshot compares the files found in a snapshot with its manifest
// es (checkFiles), then the snapshot's index, at dbPath, with its files
// (when the index is as the manifest says).
func checkSnapshot(r *Report, es []Entry, present map[string]bool, hashed map[string]Entry, dbPath string) error {
	bad := checkFiles(r, es, present, hashed)
	listed := make(map[string]*Entry, len(es))
	for i := range es {
		listed[es[i].Path] = &es[i]
	}
	db := ".postfach/index.db"
	if !present[db] || bad[db] || listed[db] == nil {
		r.add(db, "the snapshot's index is missing or damaged: its rows were not compared with the files")
		return nil
	}
	named := map[string]bool{}
	err := index.ReadSnapshot(dbPath, func(f index.StoredFile) error {
		p := f.Path()
		named[p] = true
		e := listed[p]
		switch {
		case e == nil:
			r.add(p, "no file for the snapshot index's row (%s)", rowName(f))
		case f.SHA256 != nil && string(f.SHA256) != string(e.SHA256[:]):
			r.add(p, "content differs from the snapshot index's row (SHA-256 %s, the row says %s)", short(e.SHA256[:]), short(f.SHA256))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range es {
		if folder, _, _ := splitMessagePath(e.Path); folder != "" && !named[e.Path] {
			r.add(e.Path, "no row in the snapshot's index")
		}
	}
	return nil
}

// VerifyStore checks the live store of st (opened with index.OpenStore):
// every row has its file (found by its key when renamed), every message
// file in a Maildir of the store has its row, and each file's size and
// SHA-256 are its row's. A store in use may change while it is checked:
// a row or file found without its counterpart is looked at again in a
// fresh read of the index before it is named (a delivery or removal in
// flight is not a difference).
func VerifyStore(ctx context.Context, st *index.Store, progress Progress) (*Report, error) {
	root := st.Root()
	if root == "" {
		return nil, errors.New("verify: the store was opened without its Maildir root")
	}
	rows, dirs, err := liveRows(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	// Maildirs no folder row names hold files without rows too.
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		err := maildir.WalkFolders(filepath.Join(root, e.Name()), func(_ string, d *maildir.Dir) error {
			rel, _ := filepath.Rel(root, d.Path)
			dirs[filepath.ToSlash(rel)] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	r := &Report{}
	seen := map[int64]bool{} // outbox ids negated
	var orphans []orphan
	var jobs []hashJob
	for dir := range dirs {
		d := &maildir.Dir{Path: filepath.Join(root, filepath.FromSlash(dir))}
		es, err := d.ScanAsOpened()
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for _, e := range es {
			rel := path.Join(dir, e.Sub, e.Name)
			f, ok := rows[baseKey(dir, e.Key)]
			if !ok {
				orphans = append(orphans, orphan{dir: dir, key: e.Key, rel: rel, d: d, e: e})
				continue
			}
			seen[rowID(f)] = true
			if f.SHA256 != nil {
				jobs = append(jobs, hashJob{rel: rel, abs: d.FilePath(e), size: f.Size, sum: f.SHA256})
			}
		}
	}
	var missing []index.StoredFile
	for _, f := range rows {
		if !seen[rowID(f)] {
			missing = append(missing, f)
		}
	}
	err = hashAll(ctx, jobs, progress, r, func(j hashJob, e Entry) {
		if e.Size != j.size {
			r.add(j.rel, "size %d, the index says %d", e.Size, j.size)
		} else if string(e.SHA256[:]) != string(j.sum) {
			r.add(j.rel, "content differs from the index (SHA-256 %s, the index says %s)", short(e.SHA256[:]), short(j.sum))
		}
	})
	if err != nil {
		return nil, err
	}
	if len(orphans) > 0 || len(missing) > 0 {
		if err := recheck(ctx, st, root, orphans, missing, r); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	r.sort()
	return r, nil
}

// orphan is a file found without a row.
type orphan struct {
	dir, key, rel string
	d             *maildir.Dir
	e             maildir.Entry
}

func rowID(f index.StoredFile) int64 {
	if f.Outbox {
		return -f.ID
	}
	return f.ID
}

func rowName(f index.StoredFile) string {
	if f.Outbox {
		return fmt.Sprintf("outbox message %d", f.ID)
	}
	return fmt.Sprintf("message %d", f.ID)
}

// liveRows reads the rows of the live index: by baseKey(folder, key),
// and the Maildirs the folder rows name.
func liveRows(ctx context.Context, st *index.Store) (map[string]index.StoredFile, map[string]bool, error) {
	rows := map[string]index.StoredFile{}
	dirs := map[string]bool{index.OutboxPath: true}
	err := st.Read(ctx, func(tx *index.ReadTx) error {
		if err := folderPaths(tx, dirs); err != nil {
			return err
		}
		return tx.StoredFiles(func(f index.StoredFile) error {
			rows[baseKey(f.Dir, f.Key)] = f
			dirs[f.Dir] = true
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	for d := range dirs {
		if !validPath(d) {
			return nil, nil, fmt.Errorf("the index names a folder outside the store: %q", d)
		}
	}
	return rows, dirs, nil
}

// recheck names the orphans and missing files that are still so in a
// fresh read of the index and the Maildirs.
func recheck(ctx context.Context, st *index.Store, root string, orphans []orphan, missing []index.StoredFile, r *Report) error {
	rows, _, err := liveRows(ctx, st)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		if _, ok := rows[baseKey(o.dir, o.key)]; ok {
			continue // its row came meanwhile (a delivery in flight)
		}
		if _, err := o.d.Find(o.key, o.e.Name); err != nil {
			continue // gone meanwhile
		}
		r.add(o.rel, "no row in the index")
	}
	for _, f := range missing {
		var now index.StoredFile
		var ok bool
		err := st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			now, ok, err = tx.StoredFileOf(f)
			return err
		})
		if err != nil {
			return err
		}
		if !ok {
			continue // removed meanwhile
		}
		d := &maildir.Dir{Path: filepath.Join(root, filepath.FromSlash(now.Dir))}
		if _, err := d.Find(now.Key, path.Base(now.File)); err == nil {
			continue // moved or renamed meanwhile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		r.add(now.Path(), "no file for the index's row (%s)", rowName(now))
	}
	return nil
}

// hashJob is a file to hash and what it should be.
type hashJob struct {
	rel, abs string
	size     int64
	sum      []byte
}

// hashAll hashes the files of jobs, a few at a time, and calls check
// (serialized) with each one's entry. A file that cannot be read is a
// difference.
func hashAll(ctx context.Context, jobs []hashJob, progress Progress, r *Report, check func(hashJob, Entry)) error {
	var mu sync.Mutex
	var done atomic.Int64
	work := make(chan hashJob)
	var wg sync.WaitGroup
	for range copyWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				e, err := hashFile(j.abs, j.rel)
				mu.Lock()
				r.Files++
				r.Bytes += e.Size
				if err != nil {
					r.add(j.rel, "unreadable: %v", errors.Unwrap(err))
				} else {
					check(j, e)
				}
				mu.Unlock()
				if n := done.Add(1); progress != nil {
					progress(int(n), len(jobs))
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case work <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

// short is a hash's first 12 hex digits, for a line a person reads.
func short(sum []byte) string {
	s := hex.EncodeToString(sum)
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// folderPaths adds the path of every folder row of every account to dirs.
func folderPaths(tx *index.ReadTx, dirs map[string]bool) error {
	accts, err := tx.Accounts()
	if err != nil {
		return err
	}
	for _, a := range accts {
		fs, err := tx.Folders(a.ID)
		if err != nil {
			return err
		}
		for _, f := range fs {
			dirs[f.Path] = true
		}
	}
	return nil
}
