package maildir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UIDValidityFile is the name of the file in a folder directory that holds
// the folder's UIDVALIDITY in decimal, followed by a newline.
const UIDValidityFile = ".postfach-uidvalidity"

// Dir is one Maildir folder: the directory holding cur/, new/ and tmp/.
type Dir struct {
	Path string
}

// Open returns the Maildir at path, creating path and its cur/, new/ and
// tmp/ with mode 0700 if missing. Each directory it creates is made durable
// by fsyncing its parent.
func Open(path string) (*Dir, error) {
	path = filepath.Clean(path)
	if err := mkdirDurable(path); err != nil {
		return nil, fmt.Errorf("maildir: open %s: %w", path, err)
	}
	for _, sub := range [...]string{"cur", "new", "tmp"} {
		if err := mkdirDurable(filepath.Join(path, sub)); err != nil {
			return nil, fmt.Errorf("maildir: open %s: %w", path, err)
		}
	}
	return &Dir{Path: path}, nil
}

// mkdirDurable creates dir and any missing parents, fsyncing the parent of
// each directory it creates.
func mkdirDurable(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return mkdirDurable(dir) // created meanwhile; check it is a directory
		}
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory, making the entries in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncSub fsyncs one subdirectory, "cur" or "new": enough after Commits
// that all went there (the name Commit returns begins with it).
func (d *Dir) SyncSub(sub string) error {
	if sub != "cur" && sub != "new" {
		return fmt.Errorf("maildir: sync: %q is not cur or new", sub)
	}
	if err := syncDir(filepath.Join(d.Path, sub)); err != nil {
		return fmt.Errorf("maildir: sync: %w", err)
	}
	return nil
}

// SyncDir fsyncs cur/ and new/, making renames and removals in them durable.
func (d *Dir) SyncDir() error {
	for _, sub := range [...]string{"cur", "new"} {
		if err := syncDir(filepath.Join(d.Path, sub)); err != nil {
			return fmt.Errorf("maildir: sync: %w", err)
		}
	}
	return nil
}

// UIDValidity returns the UIDVALIDITY stored in the folder, or 0 if none is
// stored yet.
func (d *Dir) UIDValidity() (uint32, error) {
	b, err := os.ReadFile(filepath.Join(d.Path, UIDValidityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("maildir: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("maildir: %s: bad UIDVALIDITY %q", filepath.Join(d.Path, UIDValidityFile), b)
	}
	return uint32(v), nil
}

// clockProbe names the file FileTime creates in tmp/.
const clockProbe = ".postfach-clock"

// FileTime returns the time the folder's filesystem gives a file changed
// now: the modification time of a file it creates in tmp/ and removes at
// once. The filesystem's clock may be coarser than, or lag, the system's
// (a tick of the kernel's coarse clock): a change to the folder after
// FileTime returned gets this time or a later one.
func (d *Dir) FileTime() (time.Time, error) {
	f, err := os.CreateTemp(filepath.Join(d.Path, "tmp"), clockProbe+"."+strconv.Itoa(os.Getpid())+".*")
	if err != nil {
		return time.Time{}, fmt.Errorf("maildir: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	os.Remove(f.Name())
	if err != nil {
		return time.Time{}, fmt.Errorf("maildir: %w", err)
	}
	return fi.ModTime(), nil
}

// SetUIDValidity stores v, which must not be 0, atomically and durably: it
// writes and fsyncs a file in tmp/, renames it over the old one and fsyncs
// the folder directory.
func (d *Dir) SetUIDValidity(v uint32) error {
	if v == 0 {
		return errors.New("maildir: UIDVALIDITY must not be 0")
	}
	// The process ID in the name lets CleanOwnTmp tell a killed process's
	// leftover from a file being written.
	f, err := os.CreateTemp(filepath.Join(d.Path, "tmp"), UIDValidityFile+"."+strconv.Itoa(os.Getpid())+".*")
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(strconv.FormatUint(uint64(v), 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.Path, UIDValidityFile))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("maildir: set UIDVALIDITY: %w", err)
	}
	if err := syncDir(d.Path); err != nil {
		return fmt.Errorf("maildir: set UIDVALIDITY: %w", err)
	}
	return nil
}

// FilePath returns the path of e's file.
func (d *Dir) FilePath(e Entry) string {
	sub := e.Sub
	if sub == "" {
		sub = "cur"
	}
	return filepath.Join(d.Path, sub, e.Name)
}

// Scan lists the messages in cur/ and new/, cur/ first, each sorted by name.
// It skips names starting with '.', directories and names ParseName rejects.
// A name without info (usual in new/) has Flags 0.
func (d *Dir) Scan() ([]Entry, error) { return d.scan(false) }

// ScanAsOpened is Scan of the folder as Open would leave it: a missing
// folder, cur/ or new/ lists nothing. It is for a dry run, which plans
// with what a real run would find but creates nothing.
func (d *Dir) ScanAsOpened() ([]Entry, error) { return d.scan(true) }

// new/ is read before cur/: mail moves from new/ to cur/ (a mail reader
// taking it in, a flag change; nothing moves it back), so a file moved
// while the folder is read is seen twice, and its entry in cur/ is kept,
// never missed (read the other way round, it would be in neither listing,
// and its row would look deleted here: TestRunKill9 lost mail so). The
// entries of cur/ come first.
// scanBetween, if set (by tests), runs between the two directories' reads.
var scanBetween func()

func (d *Dir) scan(missingEmpty bool) ([]Entry, error) {
	l, err := d.list(missingEmpty)
	if err != nil {
		return nil, err
	}
	out, _ := l.Sorted()
	return out, nil
}

// Listing is a folder's files as read, new/ and then cur/ (see List):
// what Scan lists, before it is sorted.
type Listing struct {
	New, Cur []Entry // in directory order
}

// List reads the folder's new/ and then cur/ (in that order for the
// reason scan gives), skipping what Scan skips, without sorting: a caller
// that looks each file up needs no order, and Sorted makes it Scan's
// listing.
func (d *Dir) List() (Listing, error) { return d.list(false) }

func (d *Dir) list(missingEmpty bool) (Listing, error) {
	var l Listing
	for i, sub := range [...]string{"new", "cur"} {
		if i == 1 && scanBetween != nil {
			scanBetween()
		}
		err := readDir(filepath.Join(d.Path, sub), func(name string, isDir bool) {
			if isDir {
				return
			}
			e, ok := ParseName(name)
			if !ok {
				return
			}
			e.Sub = sub
			if sub == "new" {
				l.New = appendDoubling(l.New, e)
			} else {
				l.Cur = appendDoubling(l.Cur, e)
			}
		})
		if missingEmpty && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Listing{}, fmt.Errorf("maildir: scan: %w", err)
		}
	}
	return l, nil
}

// appendDoubling appends e to s, doubling its capacity when full: append
// grows a large slice by a quarter, which for a folder of 25,000 files
// allocated and copied five times the listing's size, and made a listing
// spend more time on that and the garbage collector than on reading the
// directory.
func appendDoubling(s []Entry, e Entry) []Entry {
	if len(s) == cap(s) {
		s = slices.Grow(s, max(len(s), 64))
	}
	return append(s, e)
}

// Sorted returns the listing as Scan does, and how many files of new/ it
// leaves out because a file in cur/ has their key (see scan): a listing
// that hides none and lists each key once is one whose every file is the
// message of its key. It takes the listing's arrays.
func (l Listing) Sorted() (out []Entry, hidden int) {
	fromNew, cur := l.New, l.Cur
	byName := func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(fromNew, byName)
	slices.SortFunc(cur, byName)
	// cur/ first, then new/ but for the files moved into cur/ meanwhile
	// (found by key in cur/, through an index of cur/ sorted by key: 4
	// bytes an entry, where a map of the keys took ten times that).
	byKey := make([]int32, len(cur))
	for i := range byKey {
		byKey[i] = int32(i)
	}
	slices.SortFunc(byKey, func(a, b int32) int { return strings.Compare(cur[a].Key, cur[b].Key) })
	inCur := func(key string) bool {
		_, ok := slices.BinarySearchFunc(byKey, key, func(i int32, k string) int { return strings.Compare(cur[i].Key, k) })
		return ok
	}
	out = slices.Grow(cur, len(fromNew))
	for _, e := range fromNew {
		if !inCur(e.Key) {
			out = append(out, e)
		} else {
			hidden++
		}
	}
	return out, hidden
}

// matchKey reports whether the base name name has the given key.
func matchKey(name, key string) bool {
	if !strings.HasPrefix(name, key) {
		return false
	}
	return len(name) == len(key) || name[len(key)] == ',' || name[len(key)] == ':'
}

// Find returns the entry with the given key. It tries hint, the last known
// base name, in new/ and then cur/, and otherwise reads new/ and then cur/
// in chunks (in that order for the reason scan gives) for a name that is
// key or starts with key+"," or key+":". If more
// than one file has the key (it never happens by our hand), the first found
// wins. The error wraps fs.ErrNotExist if no file has the key.
func (d *Dir) Find(key, hint string) (Entry, error) {
	if !validKey(key) {
		return Entry{}, fmt.Errorf("maildir: find: bad key %q", key)
	}
	if e, ok := ParseName(hint); ok && e.Key == key {
		for _, sub := range [...]string{"new", "cur"} {
			if _, err := os.Lstat(filepath.Join(d.Path, sub, hint)); err == nil {
				e.Sub = sub
				return e, nil
			}
		}
	}
	for _, sub := range [...]string{"new", "cur"} {
		e, err := findIn(filepath.Join(d.Path, sub), key)
		if err == nil {
			e.Sub = sub
			return e, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Entry{}, fmt.Errorf("maildir: find %q: %w", key, err)
		}
	}
	return Entry{}, fmt.Errorf("maildir: find %q in %s: %w", key, d.Path, fs.ErrNotExist)
}

func findIn(dir, key string) (Entry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if matchKey(n, key) {
				if e, ok := ParseName(n); ok {
					return e, nil
				}
			}
		}
		if err == io.EOF {
			return Entry{}, fs.ErrNotExist
		} else if err != nil {
			return Entry{}, err
		}
	}
}

// renameEntry renames e's file to the name newName computes from its current
// name, in sub toSub. If e's file is gone (another program renamed it), it
// looks the key up once more and retries with the name found.
func (d *Dir) renameEntry(e Entry, toSub string, newName func(old string) string) (Entry, error) {
	for try := 0; ; try++ {
		if e.Sub == "" {
			e.Sub = "cur"
		}
		sub := toSub
		if sub == "" {
			sub = e.Sub
		}
		name := newName(e.Name)
		if name == e.Name && sub == e.Sub {
			return e, nil
		}
		err := os.Rename(d.FilePath(e), filepath.Join(d.Path, sub, name))
		if err == nil {
			ne, _ := ParseName(name)
			ne.Sub = sub
			return ne, nil
		}
		if try > 0 || !errors.Is(err, fs.ErrNotExist) {
			return e, fmt.Errorf("maildir: %w", err)
		}
		found, ferr := d.Find(e.Key, "")
		if ferr != nil {
			return e, ferr
		}
		e = found
	}
}

// SetFlags sets e's flags to f, renaming the file into cur/ (a file in new/
// moves to cur/). Foreign fields and info letters are kept. It does not fsync:
// call SyncDir after a batch. It returns the entry under its new name.
//
// If another program changed the file's flags since e was read (a mail
// client marking it answered while a sync applies the server's flags), its
// change is kept on top of f: the flags it added stay added, those it
// removed stay removed. The returned entry has the flags the file got,
// which may then differ from f.
func (d *Dir) SetFlags(e Entry, f Flags) (Entry, error) {
	read := e.Flags
	return d.renameEntry(e, "cur", func(old string) string {
		u, _ := ParseName(old)
		return rename(old, u.UID, MergeFlags(f, read, u.Flags), true)
	})
}

// MergeFlags applies the change from read to found (another program's) on
// top of want: the flags found has and read had not are added, those read
// had and found has not are removed.
func MergeFlags(want, read, found Flags) Flags {
	return want&^(read&^found) | found&^read
}

// SetUID sets the ",U=" field of e's file name to uid (removing it for 0),
// leaving the file in its sub directory. It does not fsync: call SyncDir after
// a batch. It returns the entry under its new name.
func (d *Dir) SetUID(e Entry, uid uint32) (Entry, error) {
	return d.renameEntry(e, "", func(old string) string {
		u, _ := ParseName(old)
		return rename(old, uid, u.Flags, false)
	})
}

// Remove unlinks e's file (looking it up by key if it was renamed) and fsyncs
// its directory. A file that is already gone is no error.
func (d *Dir) Remove(e Entry) error {
	e, err := d.Unlink(e)
	if err != nil {
		return err
	}
	if err := syncDir(filepath.Join(d.Path, e.Sub)); err != nil {
		return fmt.Errorf("maildir: remove: %w", err)
	}
	return nil
}

// Unlink unlinks e's file (looking it up by key if it was renamed) without
// syncing its directory (the caller does, after a batch), and returns the
// entry it removed. A file that is already gone is no error.
func (d *Dir) Unlink(e Entry) (Entry, error) {
	if e.Sub == "" {
		e.Sub = "cur"
	}
	err := os.Remove(d.FilePath(e))
	if errors.Is(err, fs.ErrNotExist) {
		found, ferr := d.Find(e.Key, "")
		if errors.Is(ferr, fs.ErrNotExist) {
			return e, nil
		} else if ferr != nil {
			return e, ferr
		}
		e = found
		err = os.Remove(d.FilePath(e))
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return e, fmt.Errorf("maildir: %w", err)
	}
	return e, nil
}

// RemoveFolder removes an emptied Maildir at path: tmp/ (with whatever
// other programs left there), cur/, new/, the UIDVALIDITY file, and the
// directory itself unless it holds subfolders; the directory that changed
// is synced. A file that arrived in cur/ or new/ meanwhile makes it fail
// (the caller looks again later).
func RemoveFolder(path string) error {
	if err := os.RemoveAll(filepath.Join(path, "tmp")); err != nil {
		return err
	}
	for _, sub := range []string{"cur", "new"} {
		if err := os.Remove(filepath.Join(path, sub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing folder %s: %w", path, err)
		}
	}
	if err := os.Remove(filepath.Join(path, UIDValidityFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Subfolders remain (or another program's files): the directory stays.
		return syncDir(path)
	}
	return syncDir(filepath.Dir(path))
}

// SyncPath fsyncs the directory at path, making the entries in it durable.
func SyncPath(path string) error { return syncDir(path) }

// CleanTmp removes the files in tmp/ last modified more than olderThan ago
// (the Maildir convention is 36 hours) and returns how many it removed.
// Deliveries in progress are younger, unless olderThan is tiny.
func (d *Dir) CleanTmp(olderThan time.Duration) (int, error) {
	return d.cleanTmp(false, true, olderThan)
}

// ownTmpName matches the tmp/ files this package creates: delivery keys
// (see newKey), UIDVALIDITY temp files and FileTime's probes. Compiled on first use, as
// ownTmpPID and the others: not at every process's start (postfach send
// is a process per message).
var ownTmpName = lazyRegexp(`^(\d+\.\d+_\d+\.[0-9a-f]{16}\.|` + regexp.QuoteMeta(UIDValidityFile) + `\.|` + regexp.QuoteMeta(clockProbe) + `\.)`)

// ownTmpPID is the process ID in the name of a delivery's tmp/ file, a
// UIDVALIDITY temp file or a FileTime probe.
var ownTmpPID = lazyRegexp(`^(?:\d+\.(\d+)_|(?:` + regexp.QuoteMeta(UIDValidityFile) + `|` + regexp.QuoteMeta(clockProbe) + `)\.(\d+)\.)`)

// lazyRegexp returns expr compiled on the first call.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// liveTmpAge is how old a UIDVALIDITY temp file written by an older
// version (its name has no process ID) must be before CleanOwnTmp takes it
// for a leftover.
const liveTmpAge = time.Minute

// CleanOwnTmp removes the files in tmp/ that this package created, of any
// age: leftovers of a killed run. Call it only while holding the store's
// sync lock, so that no other process's delivery is in flight. This
// process's own deliveries are left alone (they may be in flight: the
// local endpoints store messages while a sync runs), as are UIDVALIDITY
// temp files without a process ID younger than a minute. Files of other programs are left to
// CleanTmp.
func (d *Dir) CleanOwnTmp() (int, error) { return d.cleanTmp(true, false, 0) }

// CleanLeftovers is CleanOwnTmp and CleanTmp(olderThan) in one reading of
// tmp/: it removes what either would (a sync's start, for each folder).
func (d *Dir) CleanLeftovers(olderThan time.Duration) (int, error) {
	return d.cleanTmp(true, true, olderThan)
}

// cleanTmp removes the files of tmp/ that are own leftovers (own: see
// CleanOwnTmp) or older than olderThan (aged: see CleanTmp).
func (d *Dir) cleanTmp(own, aged bool, olderThan time.Duration) (int, error) {
	tmp := filepath.Join(d.Path, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return 0, fmt.Errorf("maildir: clean tmp: %w", err)
	}
	now := time.Now()
	cutoff, pid := now.Add(-olderThan), strconv.Itoa(os.Getpid())
	n := 0
	for _, de := range ents {
		if de.IsDir() || !(own && ownLeftover(de, pid, now) || aged && olderThanAge(de, cutoff)) {
			continue
		}
		if err := os.Remove(filepath.Join(tmp, de.Name())); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("maildir: clean tmp: %w", err)
		}
	}
	return n, nil
}

// ownLeftover reports whether de, a file of tmp/, is one this package
// created and no longer in flight: of another process (pid is this
// one's), or a UIDVALIDITY temp file without a process ID older than
// liveTmpAge.
func ownLeftover(de fs.DirEntry, pid string, now time.Time) bool {
	if !ownTmpName().MatchString(de.Name()) {
		return false
	}
	if m := ownTmpPID().FindStringSubmatch(de.Name()); m != nil {
		return m[1]+m[2] != pid // ours is perhaps in flight
	}
	info, err := de.Info() // a UIDVALIDITY being written, perhaps; or gone
	return err == nil && now.Sub(info.ModTime()) >= liveTmpAge
}

// olderThanAge reports whether de was last modified before cutoff.
func olderThanAge(de fs.DirEntry, cutoff time.Time) bool {
	info, err := de.Info()
	return err == nil && info.ModTime().Before(cutoff) // (err: removed meanwhile)
}
