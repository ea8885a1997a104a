package index

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path"

	sqlite "modernc.org/sqlite"
)

// What a backup (agent/backup) needs of the index: a consistent copy of
// the database taken while a writer may be at work, and the files its
// rows name.

// OutboxPath is the outbox's Maildir, relative to the store root
// ('/'-separated), as StoredFile.Dir gives it.
const OutboxPath = ".postfach/outbox"

// SnapshotInto writes a consistent copy of the index to the new file dst
// with SQLite's online backup (sqlite3_backup_step over every page at
// once: one read transaction of the database, as a Read is, so it holds
// up no writer and sees no half-committed write). VACUUM INTO would do
// too, but it rebuilds every table and index (the FTS index too), which
// grows with the store, where the backup copies pages. The copy is one
// self-contained file in rollback-journal mode (no -wal or -shm file is
// part of it; a store opened on it later switches to WAL again). It is
// made durable by the caller (dst is written without fsync); it is mode
// 0600 and dst must not exist.
func (s *Store) SnapshotInto(ctx context.Context, dst string) error {
	if s.dry != nil {
		return errors.New("index: snapshot of a dry-run view")
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("index: snapshot: %s exists", dst)
	}
	// SQLite would create dst 0644 less the umask: an empty file made
	// first, 0600, is what it fills instead (SQLite takes an empty file
	// for a new database).
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("index: snapshot: %w", err)
	}
	f.Close()
	// A connection of its own, outside the pools: the copy is a
	// connection-level operation the pools' statement caches know
	// nothing of. It reads the database file through a memory map and
	// keeps a small page cache: the copy reads each page once, and with
	// modernc's allocator every page cached is a page allocated and
	// freed again (the page cache, not the copying, was most of the
	// time of a copy).
	db, err := sql.Open("sqlite", "file:"+uriPath(s.path)+"?_pragma=busy_timeout(30000)&_pragma=mmap_size(1073741824)&_pragma=cache_size(-"+snapshotCacheKiB+")")
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("index: snapshot: %w", err)
	}
	defer db.Close()
	if err := pageCopy(ctx, db, dst); err != nil {
		os.Remove(dst)
		return diskFull(fmt.Errorf("index: snapshot of %s: %w", s.path, err))
	}
	return nil
}

// snapshotCacheKiB is the page cache of each side of a copy (see
// SnapshotInto).
const snapshotCacheKiB = "256"

// pageCopy copies the database of db into the file dst with SQLite's
// online backup (sqlite3_backup_step(-1): every page in one step, inside
// one read transaction of the source), and leaves the copy in
// rollback-journal mode (the backup copies the source's header, which
// says WAL).
func pageCopy(ctx context.Context, db *sql.DB, dst string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		src, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("the SQLite driver has no online backup")
		}
		// synchronous off: the caller makes the copy durable (with
		// the rest of the snapshot).
		bk, err := src.NewBackup("file:" + uriPath(dst) + "?_pragma=synchronous(OFF)&_pragma=cache_size(-" + snapshotCacheKiB + ")")
		if err != nil {
			return err
		}
		for {
			more, err := bk.Step(-1)
			if err != nil {
				return errors.Join(err, bk.Finish())
			}
			if !more {
				break
			}
		}
		cp, err := bk.Commit()
		if err != nil {
			return err
		}
		defer cp.Close()
		ex, ok := cp.(driver.ExecerContext)
		if !ok {
			return errors.New("the SQLite driver cannot execute on a backup's connection")
		}
		_, err = ex.ExecContext(ctx, "PRAGMA journal_mode=DELETE", nil)
		return err
	})
}

// StoredFile is a file a row of the index names: a message's (Outbox
// false) or a queued outgoing message's (Outbox true).
type StoredFile struct {
	ID     int64 // MessageID, or the outbox row's id
	Outbox bool
	Dir    string // the folder's Maildir, relative to the store root, '/'-separated (OutboxPath for the outbox)
	Key    string // Maildir key
	File   string // last known name: "cur/<name>" or "new/<name>"
	Size   int64  // bytes on disk; -1 unknown (outbox rows record the size on the wire)
	SHA256 []byte // of the file's bytes; nil unknown (outbox)
}

// Path returns the file's last known path relative to the store root,
// '/'-separated.
func (f StoredFile) Path() string { return path.Join(f.Dir, f.File) }

const storedMessagesQ = `SELECT m.id, f.path, m.key, m.file, m.size, m.sha256 FROM messages m JOIN folders f ON f.id = m.folder_id`
const storedOutboxQ = `SELECT id, key, file FROM outbox`

// StoredFiles calls fn for the file of every message row and every
// outbox row, in no particular order.
func (tx *ReadTx) StoredFiles(fn func(StoredFile) error) error {
	return storedFiles(tx.tx, fn)
}

type querier interface {
	Query(q string, args ...any) (*sql.Rows, error)
}

func storedFiles(q querier, fn func(StoredFile) error) error {
	rows, err := q.Query(storedMessagesQ)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f StoredFile
		if err := rows.Scan(&f.ID, &f.Dir, &f.Key, &f.File, &f.Size, &f.SHA256); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	rows.Close()
	rows, err = q.Query(storedOutboxQ)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		f := StoredFile{Outbox: true, Dir: OutboxPath, Size: -1}
		if err := rows.Scan(&f.ID, &f.Key, &f.File); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// StoredFileOf returns the file the row of f (its ID and Outbox) names
// now, with ok false when the row is gone: a message moved to another
// folder keeps its row id.
func (tx *ReadTx) StoredFileOf(f StoredFile) (cur StoredFile, ok bool, err error) {
	cur = StoredFile{ID: f.ID, Outbox: f.Outbox}
	if f.Outbox {
		cur.Dir, cur.Size = OutboxPath, -1
		err = tx.queryRow(`SELECT key, file FROM outbox WHERE id=?`, f.ID).Scan(&cur.Key, &cur.File)
	} else {
		err = tx.queryRow("SELECT "+storedMessagesQ[len("SELECT m.id, "):]+` WHERE m.id=?`, f.ID).Scan(&cur.Dir, &cur.Key, &cur.File, &cur.Size, &cur.SHA256)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return cur, false, nil
	}
	if err != nil {
		return cur, false, fmt.Errorf("index: %w", err)
	}
	return cur, true, nil
}

// DropStored removes the row of f (a message with its full-text entry
// and a tombstone, or an outbox row with its recipients): for a copy of
// the index whose file for the row could not be had.
func (tx *Tx) DropStored(f StoredFile) error {
	if f.Outbox {
		_, err := tx.exec(`DELETE FROM outbox WHERE id=?`, f.ID)
		return err
	}
	return tx.DeleteMessage(MessageID(f.ID))
}

// CloseSnapshot closes a copy of the index made by SnapshotInto and
// opened with Open, leaving it one self-contained file: its WAL is
// checkpointed and it goes back to rollback-journal mode (a store opened
// on it later switches to WAL again).
func (s *Store) CloseSnapshot() error {
	// Leaving WAL needs the only connection: the read pool's go first.
	s.feed.close()
	err := errors.Join(s.rstmts.close(), s.r.Close(), s.wstmts.close())
	if err == nil {
		_, err = s.w.Exec("PRAGMA journal_mode=DELETE")
	}
	return errors.Join(err, s.w.Close(), s.files.Close())
}

// ReadSnapshot calls fn for every file the rows of the index copy at
// dbPath name (see StoredFiles), opening it read-only and immutable: it
// changes nothing on disk, not even a -wal or -shm file.
func ReadSnapshot(dbPath string, fn func(StoredFile) error) error {
	db, err := openSnapshot(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	return storedFiles(db, fn)
}

// ReadSnapshotFolders returns the Maildir path (Folder.Path) of every
// folder row of the index copy at dbPath, opened as ReadSnapshot opens
// it.
func ReadSnapshotFolders(dbPath string) ([]string, error) {
	db, err := openSnapshot(dbPath)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT path FROM folders ORDER BY path`)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return out, nil
}

// openSnapshot opens the index copy at dbPath read-only and immutable,
// through a memory map (see SnapshotInto).
func openSnapshot(dbPath string) (*sql.DB, error) {
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+uriPath(dbPath)+"?mode=ro&immutable=1&_pragma=mmap_size(1073741824)&_pragma=cache_size(-"+snapshotCacheKiB+")")
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dbPath, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}
