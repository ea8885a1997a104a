package index

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync/atomic"
)

// ErrNeedsWrite is returned by OpenStoreReadOnly when the index cannot be
// read as it is: it does not exist yet, its schema is older than this
// postfach's (it needs migrating) or its files are not private yet. OpenStore
// does what is missing.
var ErrNeedsWrite = errors.New("index: needs to be created or brought up to date first")

// readOnlyMmapBytes is the most of the database file a read-only store maps
// into memory (mmap_size): a short-lived reader's pages come straight
// from the OS's cache, without a read and a copy into a page buffer that
// SQLite must allocate first, each.
const readOnlyMmapBytes = 1 << 30

// OpenStoreReadOnly opens the index of the store rooted at root for
// reading only, as a command that only reads it (postfach search, show,
// status) does: it writes nothing to the index (read-only connections:
// closing the last one checkpoints nothing), creates nothing but SQLite's
// -wal and -shm files when they are missing, and takes none of an open's
// turns (OpenStore's flock), so it never waits for another open. Its
// Reads run on one connection, opened at once (more only for Reads at the
// same time); Write returns an error. It answers ErrNeedsWrite (wrapped)
// when the index needs an OpenStore first (see ErrNeedsWrite), and
// refuses in one line an index that a newer postfach migrated beyond this
// one's schema.
func OpenStoreReadOnly(root string) (*Store, error) {
	path := DefaultPath(root)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNeedsWrite, path)
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// SQLite would create its -wal and -shm files with the same mode.
		return nil, fmt.Errorf("%w: %s is not private", ErrNeedsWrite, path)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(30000)", "query_only(1)", fmt.Sprintf("cache_size(-%d)", readerCacheKiB),
		"temp_store(2)", fmt.Sprintf("mmap_size(%d)", readOnlyMmapBytes)} {
		q.Add("_pragma", p)
	}
	r, err := sql.Open("sqlite", "file:"+uriPath(path)+"?mode=ro&"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	if err := checkVersion(r, path); err != nil {
		r.Close()
		return nil, err
	}
	rstmts := newStmtCache(r)
	return &Store{path: path, root: root, r: r, rstmts: rstmts, prefetching: new(atomic.Bool),
		feed: newFeed(), delivering: &keySet{}, turns: &turns{}, outboxHeld: &accountSem{},
		followupsLeft: &leftovers{folders: map[FolderID]map[string]bool{}}}, nil
}

// checkVersion compares the schema version of the index db opens with
// this postfach's latest migration.
func checkVersion(db *sql.DB, path string) error {
	_, nums, err := migrationFiles()
	if err != nil {
		return err
	}
	latest := nums[len(nums)-1]
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return busy(fmt.Errorf("index: open %s: %w", path, err))
	}
	switch {
	case version < latest:
		return fmt.Errorf("%w: %s has schema version %d, this postfach's is %d", ErrNeedsWrite, path, version, latest)
	case version > latest:
		return fmt.Errorf("index: %s was brought to schema version %d by a newer postfach; this one knows up to %d: use the newer postfach", path, version, latest)
	}
	return nil
}

// errReadOnly is returned by Write on a store opened with
// OpenStoreReadOnly.
var errReadOnly = errors.New("index: opened read-only")
