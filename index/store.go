// Package index is postfach's SQLite catalogue of the local store.
//
// The Maildir (package maildir) holds the content; the index holds the state:
// folders with their upstream sync state (UIDVALIDITY, UIDNEXT,
// HIGHESTMODSEQ), one row per message file (Maildir key, upstream UID, flags,
// keywords, sizes, parsed headers, SHA-256 of the stored bytes), a contentless
// FTS5 table over decoded headers and text bodies, the journal of local
// changes waiting to go upstream, POP3 UIDLs, and the outbox (mail queued
// to leave through an account's SMTP relay: outbox.go, sync/outbox).
//
// Every change to a message (added, flags or keywords changed, moved out
// or in, removed) gives it the folder's next local MODSEQ
// (folders.local_modseq; the messages one transaction changes share one,
// as RFC 7162 allows); a message removed or moved away leaves a tombstone
// (folder, local UID, MODSEQ). ReadTx.ChangesSince answers "what changed
// in this folder since MODSEQ n" in one query, for the local endpoints'
// IDLE and CONDSTORE. A row's key, file name and UID changing move its
// MODSEQ too, even where local clients see no change (a trigger, for the
// statements that change no flags): the row images of a sync
// (rowimage.go) are brought up to date from what changed since theirs.
// Local UIDs only grow (never reused); a recreated
// folder gets a new local UIDVALIDITY.
//
// The change feed (Store.Subscribe) delivers committed changes in commit
// order, from a closed set of kinds (message added, flags changed,
// message removed, folder created, renamed, removed): the Tx mutators
// record them and Write publishes them after its commit (nothing for a
// rolled-back Write or a dry-run view). Each subscription has a bounded
// buffer; one that falls behind is ended with a Resync item instead of
// holding up writers.
//
// The door's local mutations (Store.SetFlags, Move, Remove, CreateFolder,
// RenameFolder, RemoveFolder; mutate.go, folderdoor.go) change a message
// file or a folder's Maildir and its row in one call, the file first and
// the row in a transaction after it, in the order that leaves a crash in
// between to the next scan (each documents why). They need the store's
// Maildir root (OpenStore) and refuse a dry-run view.
//
// A sync run and the local endpoints' changes take turns per account
// (turns.go): a run holds SyncTurn while it reads and acts on the Maildir
// and the rows; the door methods for the endpoints (local.go) and the
// endpoints' other door calls (LocalChange) wait for it, so a run never
// sees a local change half made.
//
// Full-text entries can be deferred (NewMessage.DeferText): the sync engines
// store messages with their headers parsed and queue the body text in
// fts_pending; IndexPending decodes the files and fills the FTS table later,
// off the sync's critical path (postfach search runs it first). Decoding
// (ExtractText) is linear in the message, keeps at most 128 KiB of text per
// message, follows at most 64 levels of multipart and 1,000 parts (a
// message beyond that is indexed as far as they reach; its file is never
// touched) and stops when the context is cancelled.
// The same pass records the message's MIME parts (type, file name,
// attachment or not) in the parts table. The full-text table has the
// columns subject, from_addr, to_addr, cc_addr, body and attachments
// (file names), its text folded (searchtext.go: ß, æ, ø, ł ... spelled
// out; the tokenizer folds case and the other accents).
//
// Search (query.go, querylex.go, queryterm.go, querycompile.go,
// search.go): ParseQuery parses the search language of postfach search
// into a Query tree; it is compiled into one SQL condition over the
// messages row (folder, dates, flags, keywords, size: indexed columns or
// row tests), the parts table and messages_fts (each word a quoted FTS5
// string; text subtrees in one MATCH), every value bound. SearchQuery
// returns hits newest first (the Date header, else the internal date:
// the indexes messages_sort_date and messages_folder_sort_date). IMAP
// SEARCH (searchlocal.go) is translated into the same tree.
//
// The local IMAP endpoint's view of a message (imapview.go): its
// ENVELOPE and BODYSTRUCTURE, RFC822.SIZE, the Date header's own day and
// the header block, computed once from the file (IMAPView on first use,
// IndexIMAP for a folder) and kept in imap_views beside the row (keyed by
// its id, gone with it, computed again when the row's SHA-256 changes).
// ReadTx.SearchLocal answers IMAP SEARCH in one query over the row, that
// view and the FTS table, reading no file (searchlocal.go).
//
// # The door
//
// A store opened with OpenStore knows its Maildir root, and is the one
// door through which messages enter the store and are read back: engines
// never run the file sequence themselves nor build a message's path.
//   - Dir turns a folder row into its Maildir; FolderPath gives the path
//     ('/'-separated, relative to the root) a new folder row records.
//   - Deliver stores a batch of files an engine wrote into tmp/: one
//     maildir.Syncer.Sync (the store's, opened by OpenStore before
//     anything is written), an optional write of the caller's before the
//     renames (POP3's pending downloads), the renames into cur/ or, unread,
//     new/, one sync per directory renamed into, then one transaction with the
//     rows and the caller's extra rows (POP3 UIDLs). Files not renamed
//     when it fails are removed; files renamed stay for the next scan.
//     Enqueue runs the same sequence (Store.file, written once; its one
//     file fsynced alone, maildir.Dir.DeliverSync, not by syncfs) for a
//     message queued in the outbox: its file in
//     <root>/.postfach/outbox/cur/, then its rows.
//   - FileMessages and IndexFile build the row of a file found on disk
//     (crash leftovers, a lost index, other programs' files): one reader.
//   - OpenBody and OpenMessage open a message's file by its row: the last
//     known name, else its key (a mail reader renamed it).
//
// The archive view of an account with archive = true (archive.go): a
// message deleted upstream or locally moves (Store.Archive, through Move)
// to the local-only folder ArchiveFolder(<folder>), marked in the table
// archived; Purge alone removes it; ScanArchive indexes that folder again
// from its files (a lost index loses only the times of archiving).
//
// A backup (agent/backup) copies the database while writers go on
// (Store.SnapshotInto: SQLite's online backup, one read transaction) and
// reads the files the copy's rows name (ReadTx.StoredFiles, ReadSnapshot;
// snapshot.go).
//
// On disk it is one SQLite database in WAL mode at
// <store root>/.postfach/index.db, written with synchronous=FULL (but for
// WriteRelaxed's bookkeeping commits, durable with the next commit); it and its
// -wal and -shm files are mode 0600 whatever the umask (they hold every
// subject and address of the mail). A command that only reads opens it
// with OpenStoreReadOnly (readonly.go): read-only connections alone, which
// never write the index, not even a checkpoint.
//
// Invariants:
//   - One writer at a time: Write transactions use BEGIN IMMEDIATE on a
//     single connection; Read transactions use a separate read-only pool and
//     see a consistent snapshot. A dry-run view (Store.DryRun) runs all its
//     Reads and Writes in one transaction on the write connection, never
//     committed (Discard rolls it back).
//   - No descriptor of the database file is opened outside SQLite while
//     a connection of this process may hold it: its close would drop the
//     process's POSIX locks on the file, SQLite's too (its WAL-mode
//     SHARED lock, held as long as a connection is open, tells other
//     processes the WAL is in use; without it the last of them to close
//     checkpoints and deletes the WAL under this one). SQLite shares
//     one descriptor per file among its own connections for this reason.
//   - Nothing that lives only in memory decides what has been synced: a
//     message counts as stored when its row is committed, and its file was
//     made durable before that commit (Deliver).
//   - Everything except the journal, POP3 UIDLs (with the pending POP3
//     downloads, see sync/pop3) and the outbox can be rebuilt from the Maildir plus the
//     server: a lost index costs a scan, not a download. (Local UIDs,
//     MODSEQs and tombstones start afresh then, under new local
//     UIDVALIDITYs: the local endpoints' clients resynchronise.)
//   - The feed publishes a commit's changes before the next commit's:
//     Write holds the feed's commit lock from its commit until it has
//     published, and every commit goes through the one write connection.
//   - The schema is versioned (PRAGMA user_version); migrations are embedded
//     numbered .sql files applied in one write transaction each, which
//     also reads the version; opens take turns (an flock on the index's
//     directory until the schema is current): two first runs at once
//     both succeed.
package index

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/postfach/postfach/maildir"
)

//go:embed sql/*.sql
var migrations embed.FS

// Store is an open index. It is safe for concurrent use.
type Store struct {
	dry  *dryTx // non-nil: a dry-run view (see DryRun)
	path string
	root string  // the Maildir root (OpenStore); "" when opened with Open
	w    *sql.DB // one connection, BEGIN IMMEDIATE
	r    *sql.DB // read-only pool
	// rstmts and wstmts are the statements prepared on r and w (see
	// stmtCache).
	rstmts, wstmts *stmtCache

	// files makes delivered files durable (Deliver): opened by OpenStore,
	// before the store writes anything, and kept until Close (see
	// maildir.Syncer).
	files *maildir.Syncer
	feed  *feed // committed changes to subscribers (see Subscribe)
	// delivering: the keys of Deliver's files not committed yet.
	delivering *keySet
	turns      *turns // sync runs and local changes take turns per account (turns.go)
	// followupsLeft: per folder, the outbox follow-ups found filed
	// already at the first filing into it (see OutboxFile).
	followupsLeft *leftovers
	// outboxHeld: the accounts whose outbox lock this process holds
	// (LockOutbox; beside the flock, which some file systems lack).
	outboxHeld *accountSem
	// prefetching: Prefetch's reading is under way.
	prefetching *atomic.Bool
}

// DefaultPath returns the index location for a store root.
func DefaultPath(storeRoot string) string {
	return filepath.Join(storeRoot, ".postfach", "index.db")
}

// The SQLite page cache of each connection (cache_size), in KiB: one
// writer, readers readers. The writer's is large, for the sync's batches
// of inserts into the messages table and its indexes. Each reader's is
// small: a reader's cache starts over whenever another connection has
// committed (every flag change, every computed IMAP view: SQLite
// resets a connection's cache when the database changed), and the
// database file's pages stay in the OS's cache anyway.
//
// A full cache holds about twice its cache_size in memory: modernc's
// allocator (modernc.org/memory, outside Go's heap) hands out
// power-of-two slots, and a cached page is its 4 KiB plus SQLite's
// header of about 200 bytes, so each takes an 8 KiB slot (measured,
// TestCacheMemory: the writer's cache, full, holds 30 MiB of RssAnon; a
// reader's 4 MiB). So a reader's 2,000 KiB is about 4 MiB, and four of
// them 16 MiB, the most the agent's readers may hold while it serves
// mail clients from a large store; the writer's 16,000 KiB is about 30
// MiB once a large sync has filled it, which ReleaseMemory gives back.
const (
	writerCacheKiB = 16000
	readerCacheKiB = 2000
	readers        = 4
)

// Open opens (creating if needed) the index at path and brings its schema up
// to date.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	// Two first opens at once: SQLite answers a second switch to WAL
	// with "database is locked" at once, without waiting. Opens of one
	// index take turns (an flock on its directory, held until the schema
	// is current), so the second finds WAL and the schema in place.
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	defer unlock()
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	dsn := func(cacheKiB int, extra string) string {
		q := url.Values{}
		for _, p := range []string{"busy_timeout(30000)", "foreign_keys(1)", "synchronous(FULL)", fmt.Sprintf("cache_size(-%d)", cacheKiB), "temp_store(2)"} {
			q.Add("_pragma", p)
		}
		return "file:" + uriPath(path) + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn(writerCacheKiB, "&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec("PRAGMA journal_mode=WAL"); err != nil {
		w.Close()
		return nil, diskFull(fmt.Errorf("index: open %s: %w", path, err))
	}
	if err := migrate(w); err != nil {
		w.Close()
		return nil, diskFull(fmt.Errorf("index: %s: %w", path, err))
	}
	// SQLite gives the WAL and shared-memory files the database file's
	// mode when it creates them; ones an older postfach left are made
	// private here.
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
			w.Close()
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	r, err := sql.Open("sqlite", dsn(readerCacheKiB, "&_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("index: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	// Nothing is prepared yet (see stmtCache): r opens its first
	// connection with the first Read.
	rstmts, wstmts := newStmtCache(r), newStmtCache(w)
	return &Store{path: path, w: w, r: r, rstmts: rstmts, wstmts: wstmts, prefetching: new(atomic.Bool),
		feed: newFeed(), delivering: &keySet{}, turns: &turns{}, outboxHeld: &accountSem{},
		followupsLeft: &leftovers{folders: map[FolderID]map[string]bool{}}}, nil
}

// flock is syscall.Flock (a variable for tests: a file system without
// flock).
var flock = syscall.Flock

// lockDir waits for an exclusive flock on the directory dir and returns
// its release. On a file system without flock (some network and FUSE
// ones) it goes on without: then only two first opens at the very same
// moment can still collide, and the second one fails and can be rerun.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.ENOLCK) && !errors.Is(err, syscall.EINVAL) {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// createPrivate creates the database file at path, mode 0600 whatever the
// umask, before SQLite opens it (SQLite would create it 0644 less the
// umask); an existing one is made 0600.
// One that is not ours to change (a read-only file system, another
// user's store) is left to SQLite as it is.
//
// It never opens an existing file: closing a descriptor drops every
// POSIX lock this process holds on the file, SQLite's among them, and
// another Store of this process may have it open (see the package
// comment). Only a file it has just made itself, which no one has
// locked, is opened and closed.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		cerr := f.Chmod(0o600)
		if err := f.Close(); cerr == nil {
			cerr = err
		}
		return cerr
	}
	if !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(path); serr == nil && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)) {
			return nil
		}
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	return nil
}

// uriPath escapes a file path for a "file:" URI as SQLite and the driver
// read it: every byte but unreserved ones and "/" as %XX, so that "?" and
// "#" in a directory name do not start the query or the fragment and "%"
// is not taken for an escape.
func uriPath(path string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~/", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Close closes the index and ends its subscriptions (see Subscribe).
func (s *Store) Close() error {
	s.feed.close()
	err := errors.Join(s.rstmts.close(), s.r.Close())
	if s.w != nil { // nil: opened read-only (OpenStoreReadOnly)
		err = errors.Join(err, s.wstmts.close(), s.w.Close())
	}
	return errors.Join(err, s.files.Close())
}

// closeStmts closes the statements prepared in tx (a dry-run view's
// transaction outlives the ReadTx that prepared them).
func (tx *ReadTx) closeStmts() {
	for _, st := range tx.stmts {
		st.Close()
	}
	tx.stmts = nil
}

// ReleaseMemory gives back the memory of the write connection's page
// cache (PRAGMA shrink_memory; about 30 MiB once a large sync has filled
// it, see writerCacheKiB), for a caller that will not write for a long
// while: postfach migrate, whose copy to the destination after the pull
// of the source only reads the index. The cache fills again as writes
// need it. It does nothing for a store opened read-only or a dry-run
// view (whose transaction holds the write connection).
func (s *Store) ReleaseMemory(ctx context.Context) error {
	if s.w == nil || s.dry != nil {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, "PRAGMA shrink_memory"); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// migrate applies the migrations the database lacks, each in its own write
// transaction. The version is read inside that transaction (BEGIN
// IMMEDIATE, the writer's lock): a second postfach opening the same new
// index at once waits for the first one's migration (busy_timeout), then
// finds it applied.
func migrate(db *sql.DB) error {
	names, nums, err := migrationFiles()
	if err != nil {
		return err
	}
	// A current schema (the usual case) is seen with one read, without
	// a write transaction per migration. Opens take turns (Open's
	// flock), so no other open migrates meanwhile; an older postfach
	// never lowers the version.
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return busy(err)
	}
	for i, name := range names {
		if nums[i] <= version {
			continue
		}
		if err := migrateTo(db, name, nums[i]); err != nil {
			return err
		}
	}
	return nil
}

// migrationFiles returns the embedded migrations' file names and numbers,
// in order.
func migrationFiles() ([]string, []int, error) {
	names, err := fs.Glob(migrations, "sql/*.sql")
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	nums := make([]int, len(names))
	for i, name := range names {
		if nums[i], err = strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0]); err != nil {
			return nil, nil, fmt.Errorf("bad migration name %s", name)
		}
	}
	return names, nums, nil
}

// migrateTo applies migration n (file name) unless the database has it.
func migrateTo(db *sql.DB, name string, n int) error {
	tx, err := db.Begin() // BEGIN IMMEDIATE: _txlock=immediate
	if err != nil {
		return busy(err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return busy(err)
	}
	if n <= version {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(string(body)); err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
		return err
	}
	return busy(tx.Commit())
}

// sqliteBusy is SQLITE_BUSY: another connection held the lock longer than
// busy_timeout.
const sqliteBusy = 5

// busy says so in plain words when err is SQLITE_BUSY.
func busy(err error) error {
	var se interface{ Code() int }
	if err != nil && errors.As(err, &se) && se.Code()&0xff == sqliteBusy {
		return fmt.Errorf("the index is busy: another postfach has held it for 30 s (%w)", err)
	}
	return err
}

// ReadTx is a read-only snapshot of the index.
type ReadTx struct {
	tx    *sql.Tx
	root  string               // the store's Maildir root ("" when opened with Open)
	stmts map[string]*sql.Stmt // prepared once per transaction (see prep)
	cache *stmtCache           // the pool's prepared statements; nil in a dry run
}

// prep returns q prepared on this transaction, preparing it on first use:
// loops that run a statement per message pay for the parse once. The
// statements close with the transaction.
func (tx *ReadTx) prep(q string) (*sql.Stmt, error) {
	if st, ok := tx.stmts[q]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if tx.cache != nil {
		if shared := tx.cache.get(q); shared != nil {
			st = tx.tx.Stmt(shared)
		}
	}
	if st == nil {
		var err error
		if st, err = tx.tx.Prepare(q); err != nil {
			return nil, err
		}
		if tx.cache != nil {
			tx.cache.miss(q)
		}
	}
	if tx.stmts == nil {
		tx.stmts = map[string]*sql.Stmt{}
	}
	tx.stmts[q] = st
	return st, nil
}

func (tx *ReadTx) exec(q string, args ...any) (sql.Result, error) {
	st, err := tx.prep(q)
	if err != nil {
		return nil, err
	}
	return st.Exec(args...)
}

// row is what queryRow returns: an *sql.Row, or the preparation error.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dst ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dst...)
}

// query runs q, prepared through prep (and so learnt by the pool's
// stmtCache when it runs again and again). The transaction has one
// statement per query text, and SQLite one cursor per statement: the
// rows must be read to their end or closed before the same text runs
// again in the transaction (no query here runs itself while its rows
// are open; EachRow's callback must not call EachRow).
func (tx *ReadTx) query(q string, args ...any) (*sql.Rows, error) {
	st, err := tx.prep(q)
	if err != nil {
		return nil, err
	}
	return st.Query(args...)
}

func (tx *ReadTx) queryRow(q string, args ...any) row {
	st, err := tx.prep(q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRow(args...)}
}

// Tx is a read-write transaction; all its changes commit together.
type Tx struct {
	ReadTx
	// modseqs holds the local MODSEQ each folder got in this transaction:
	// the messages one transaction changes share one (as RFC 7162 allows
	// for the messages one command changes).
	modseqs map[FolderID]folderMod
	// changes are the changes made, in order, for the feed (see
	// Subscribe): published when the transaction commits.
	changes []Change
}

// Read runs fn in a read-only transaction.
func (s *Store) Read(ctx context.Context, fn func(*ReadTx) error) error {
	if s.dry != nil {
		return s.dryRead(ctx, fn)
	}
	s.rstmts.ensure()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer tx.Rollback()
	rt := &ReadTx{tx: tx, root: s.root, cache: s.rstmts}
	defer rt.closeStmts()
	return fn(rt)
}

// Write runs fn in a read-write transaction and commits it when fn returns
// nil. Only one Write runs at a time. The changes it made are published to
// the subscribers (see Subscribe) once it has committed.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	if s.dry != nil {
		return s.dryWrite(ctx, fn)
	}
	if s.w == nil {
		return errReadOnly
	}
	s.wstmts.ensure()
	return s.write(ctx, s.w.BeginTx, fn)
}

// write runs fn in a transaction that begin starts on the write
// connection, commits it and publishes its changes.
func (s *Store) write(ctx context.Context, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), fn func(*Tx) error) error {
	tx, err := begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	wt := &Tx{ReadTx: ReadTx{tx: tx, root: s.root, cache: s.wstmts}}
	if err := fn(wt); err != nil {
		tx.Rollback()
		return diskFull(err)
	}
	if len(wt.changes) > 0 {
		// Held until published: the next writer (it gets the write
		// connection as soon as this commit returns) waits here before
		// its commit, so its changes are published after these.
		s.feed.commit.Lock()
		defer s.feed.commit.Unlock()
	}
	if err := tx.Commit(); err != nil {
		return diskFull(fmt.Errorf("index: commit: %w", err))
	}
	if testHookCommitted != nil {
		testHookCommitted()
	}
	s.feed.publish(wt.changes)
	return nil
}

// testHookCommitted, when set (by tests), runs between a commit and the
// publication of its changes.
var testHookCommitted func()

// fullError is SQLite's "database or disk is full": it also matches
// syscall.ENOSPC, so callers tell a full disk apart the same way whether
// the index or a message file ran out of space.
type fullError struct{ err error }

func (e *fullError) Error() string   { return e.err.Error() }
func (e *fullError) Unwrap() []error { return []error{e.err, syscall.ENOSPC} }

// sqliteFull is SQLITE_FULL, the primary result code of a full disk.
const sqliteFull = 13

// diskFull marks err as a full disk when SQLite says so (see fullError).
func diskFull(err error) error {
	var se interface{ Code() int }
	if err != nil && errors.As(err, &se) && se.Code()&0xff == sqliteFull {
		return &fullError{err}
	}
	return err
}
