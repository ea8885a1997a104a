package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Progress receives progress reports from Fetch: Expect once with the
// number and total size of the messages to download, then Done after each
// committed batch with the batch's count and size. Calls come from the
// goroutine running Fetch.
type Progress interface {
	Expect(msgs int, bytes int64)
	Done(msgs int, bytes int64)
}

// FetchOptions configure Fetch.
type FetchOptions struct {
	Account string       // account name; also its directory under Root
	Root    string       // Maildir root of the store
	Index   *index.Store // the store's index

	Addr      string      // "host:port"
	TLS       TLSMode     // default TLSImplicit
	TLSConfig *tls.Config // see Options.TLSConfig
	Username  string
	Password  string

	// Folder is the local folder the messages go into; default "INBOX".
	Folder string

	// Keep leaves the messages on the server. When false (the zero value!),
	// every message whose copy is committed locally is deleted on the
	// server at the end of the run. With Keep and DeleteAfterDays > 0, the
	// messages stored more than that many days ago are deleted.
	Keep            bool
	DeleteAfterDays int

	Logger   *slog.Logger // default: none
	Progress Progress     // default: none

	// BatchSize is how many messages are made durable and indexed together
	// (one file-system sync, two transactions). Default 128.
	BatchSize int

	// Timeout is the client's network timeout (Options.Timeout).
	Timeout time.Duration
}

// FetchResult is what a Fetch did.
type FetchResult struct {
	OnServer  int   // messages listed on the server
	New       int   // messages downloaded and stored
	Bytes     int64 // their size as the server counts it (CRLF line ends)
	Recovered int   // downloads of an interrupted run indexed from disk
	Deleted   int   // messages deleted on the server (QUIT succeeded)
	Skipped   int   // server messages left alone: their identity repeats
	Failed    int   // messages the server refused to send (-ERR to RETR)
	NoUIDL    bool  // the server lacks UIDL: identities are content hashes
}

const (
	defaultBatchSize = 128
	// hashIDPrefix starts a content identity. It holds a space, which a
	// UIDL (RFC 1939: octets 0x21-0x7E) cannot, so the two never collide.
	hashIDPrefix = "sha256 "
)

// testHook, when set by a test, is called at the named points of a batch
// commit ("pending", "renamed", "synced"); a non-nil error aborts the run
// there, as a crash would, without undoing what is on disk.
var testHook func(point string) error

func hook(point string) error {
	if testHook == nil {
		return nil
	}
	return testHook(point)
}

// entry is one message of the server listing.
type entry struct {
	num  int
	size int64
	id   string // identity (UIDL or content hash); "" when skipped
}

// download is a message written to tmp/, waiting for its batch.
type download struct {
	e      entry
	dlv    *maildir.Delivery
	header index.Header
	idate  time.Time
}

type fetcher struct {
	o      FetchOptions
	log    *slog.Logger
	res    *FetchResult
	acct   index.AccountID
	folder *index.Folder
	dir    *maildir.Dir
	files  *maildir.Syncer // makes batches durable; open for the whole run
	known  map[string]index.POP3UIDL
}

// storeError marks an error of the local store inside RetrMany's callback.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// Fetch downloads the messages of a POP3 mailbox that the index does not
// know yet into a local folder, and deletes messages on the server as
// FetchOptions.Keep and DeleteAfterDays say. See the package documentation,
// "Fetching", for the algorithm and its crash-safety argument.
//
// The result is nil when the run failed before the server listing (login,
// network, local store); otherwise it says what was done, also when an error
// is returned.
func Fetch(ctx context.Context, o FetchOptions) (*FetchResult, error) {
	if o.Index == nil || o.Root == "" || o.Account == "" {
		return nil, errors.New("pop3: fetch: Account, Root and Index are required")
	}
	if o.Folder == "" {
		o.Folder = "INBOX"
	}
	if o.TLS == "" {
		o.TLS = TLSImplicit
	}
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	f := &fetcher{o: o, log: o.Logger, res: &FetchResult{}}
	// Opened before anything is written, kept until the end: see
	// maildir.Syncer for why a fresh descriptor per batch is not enough.
	var err error
	if f.files, err = maildir.OpenSyncer(o.Root); err != nil {
		return nil, err
	}
	defer f.files.Close()
	if err := f.prepare(ctx); err != nil {
		return nil, err
	}
	c, err := Dial(ctx, o.Addr, &Options{TLS: o.TLS, TLSConfig: o.TLSConfig, Timeout: o.Timeout, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(ctx, o.Username, o.Password); err != nil {
		return nil, err
	}
	entries, err := f.list(ctx, c)
	if err != nil {
		return nil, err
	}
	err = f.fetchNew(ctx, c, entries)
	if err == nil || errors.Is(err, errSomeFailed) {
		err = errors.Join(err, f.deleteOld(ctx, c, entries))
	}
	f.recordResult(err)
	return f.res, err
}

// recordResult stores the folder's last sync time and error for status.
func (f *fetcher) recordResult(runErr error) {
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	err := f.o.Index.Write(context.Background(), func(tx *index.Tx) error {
		return tx.SetSyncResult(f.folder.ID, time.Now(), msg)
	})
	if err != nil {
		f.log.Error("recording the folder's sync result", "err", err)
	}
}

type noProgress struct{}

func (noProgress) Expect(int, int64) {}
func (noProgress) Done(int, int64)   {}

// prepare opens the account's folder in the index and on disk, completes
// the downloads an interrupted run left pending, cleans tmp/ and loads the
// known identities.
func (f *fetcher) prepare(ctx context.Context) error {
	path, err := maildir.FolderDir(f.o.Root, f.o.Account, f.o.Folder)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(f.o.Root, path)
	if err != nil {
		return err
	}
	if f.dir, err = maildir.Open(path); err != nil {
		return err
	}
	err = f.o.Index.Write(ctx, func(tx *index.Tx) error {
		var err error
		if f.acct, err = tx.EnsureAccount(f.o.Account); err != nil {
			return err
		}
		f.folder, err = tx.EnsureFolder(f.acct, f.o.Folder, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	if err := f.recover(ctx); err != nil {
		return fmt.Errorf("pop3: completing an interrupted run: %w", err)
	}
	// Leftovers of a killed run: the caller holds the store's sync lock.
	if n, err := f.dir.CleanOwnTmp(); err != nil {
		return err
	} else if n > 0 {
		f.log.Info("removed files of an interrupted download from tmp/", "count", n)
	}
	return f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		f.known, err = tx.POP3UIDLs(f.acct)
		return err
	})
}

// recover resolves the pending downloads: a file that reached cur/ or new/
// is indexed (with its UIDL, as if the batch had finished); a file that did
// not is forgotten (it is in tmp/, if anywhere, and CleanOwnTmp removes it).
func (f *fetcher) recover(ctx context.Context) error {
	var pend []index.POP3Pending
	err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		pend, err = tx.POP3PendingList(f.acct)
		return err
	})
	if err != nil || len(pend) == 0 {
		return err
	}
	synced := map[index.FolderID]bool{}
	for _, p := range pend {
		var folder *index.Folder
		err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			folder, err = tx.Folder(p.Folder)
			return err
		})
		if err != nil {
			return err
		}
		dir := &maildir.Dir{Path: filepath.Join(f.o.Root, filepath.FromSlash(folder.Path))}
		ent, err := dir.Find(p.Key, "")
		if errors.Is(err, fs.ErrNotExist) {
			f.log.Debug("dropping a pending download that never reached the folder", "uidl", p.UIDL)
			err = f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DonePOP3Pending(f.acct, p.UIDL) })
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		// The file's contents were made durable before its rename; its name
		// may not be yet. Sync the directory before a row points at it.
		if !synced[p.Folder] {
			if err := dir.SyncDir(); err != nil {
				return err
			}
			synced[p.Folder] = true
		}
		m, err := readStored(dir.FilePath(ent))
		if err != nil {
			return err
		}
		m.Folder, m.Key, m.File = p.Folder, ent.Key, ent.Sub+"/"+ent.Name
		m.Flags, m.SyncedFlags = ent.Flags, ent.Flags
		m.RFC822Size = p.RFC822Size
		err = f.o.Index.Write(ctx, func(tx *index.Tx) error {
			id, err := tx.MessageIDByKey(p.Folder, ent.Key)
			if errors.Is(err, index.ErrNotFound) {
				id, err = tx.AddMessage(m)
			}
			if err != nil {
				return err
			}
			if err := tx.AddPOP3UIDL(f.acct, p.UIDL, id, time.Now()); err != nil {
				return err
			}
			return tx.DonePOP3Pending(f.acct, p.UIDL)
		})
		if err != nil {
			return err
		}
		f.res.Recovered++
		f.log.Info("indexed a message an interrupted run had stored", "uidl", p.UIDL, "key", ent.Key)
	}
	return nil
}

// readStored reads a message file back for its index row.
func readStored(path string) (*index.NewMessage, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	h := sha256.New()
	size, err := io.Copy(h, fh)
	if err != nil {
		return nil, err
	}
	m := &index.NewMessage{}
	m.Size = size
	h.Sum(m.SHA256[:0])
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	hdr := make([]byte, maildir.MaxHeader)
	n, err := io.ReadFull(fh, hdr)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	hdr = hdr[:n]
	if i := bytes.Index(hdr, []byte("\n\n")); i >= 0 {
		hdr = hdr[:i+2]
	}
	m.Header = index.ParseHeader(hdr)
	m.InternalDate = internalDate(hdr, m.Header)
	m.DeferText = true // full text: index.IndexPending
	return m, nil
}

// list reads the server's listing and gives each message its identity: its
// UIDL, or a content hash when the server has no UIDL or repeats one. A
// message whose identity repeats an earlier one is skipped.
func (f *fetcher) list(ctx context.Context, c *Client) ([]entry, error) {
	uidls, err := c.UIDL()
	var perr *Error
	if errors.As(err, &perr) {
		f.res.NoUIDL = true
		f.log.Warn("pop3 server has no UIDL: recognizing messages by a hash of their header and their size; "+
			"messages with the same header and size are fetched once", "reply", perr.Reply)
	} else if err != nil {
		return nil, err
	}
	list, err := c.List()
	if err != nil {
		return nil, err
	}
	sizes := make(map[int]int64, len(list))
	for _, m := range list {
		sizes[m.Num] = m.Size
	}
	if f.res.NoUIDL {
		uidls = list
		for i := range uidls {
			uidls[i].UID = ""
		}
	}
	entries := make([]entry, 0, len(uidls))
	seen := make(map[string]bool, len(uidls))
	dupUIDs, dupContent := 0, 0
	for _, m := range uidls {
		e := entry{num: m.Num, size: sizes[m.Num], id: m.UID}
		if e.id == "" || seen[e.id] {
			if e.id != "" {
				dupUIDs++
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if e.id, err = contentID(c, e.num, e.size); err != nil {
				return nil, err
			}
			if seen[e.id] {
				dupContent++
				e.id = ""
			}
		}
		if e.id != "" {
			seen[e.id] = true
		} else {
			f.res.Skipped++
		}
		entries = append(entries, e)
	}
	if dupUIDs > 0 {
		f.log.Warn("pop3 server repeats UIDLs: the first message keeps the UIDL, the others are recognized by a hash of their header and size",
			"count", dupUIDs)
	}
	if dupContent > 0 {
		f.log.Warn("pop3 server has messages that cannot be told apart (same UIDL or none, same header and size): fetching only the first",
			"skipped", dupContent)
	}
	f.res.OnServer = len(entries)

	// Stored messages that are gone from the server were deleted there,
	// by us in a run whose QUIT reply was lost, or by someone else.
	var gone []string
	for id, u := range f.known {
		if u.DeletedAt.IsZero() && !seen[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		now := time.Now()
		err := f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.MarkPOP3Deleted(f.acct, gone, now) })
		if err != nil {
			return nil, err
		}
		for _, id := range gone {
			u := f.known[id]
			u.DeletedAt = now
			f.known[id] = u
		}
	}
	return entries, nil
}

// contentID is the substitute identity of message num: a hash of its header
// (TOP num 0) and its size.
func contentID(c *Client, num int, size int64) (string, error) {
	r, err := c.Top(num, 0)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(h, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return hashIDPrefix + hex.EncodeToString(h.Sum(nil)) + " " + strconv.FormatInt(size, 10), nil
}

var errSomeFailed = errors.New("pop3: the server refused to send some messages")

// fetchNew downloads the messages whose identity the index does not know,
// committing them in batches.
func (f *fetcher) fetchNew(ctx context.Context, c *Client, entries []entry) error {
	var todo []int
	byNum := make(map[int]entry)
	var total int64
	for _, e := range entries {
		if _, ok := f.known[e.id]; ok || e.id == "" {
			continue
		}
		todo = append(todo, e.num)
		byNum[e.num] = e
		total += e.size
	}
	f.o.Progress.Expect(len(todo), total)
	if len(todo) == 0 {
		return nil
	}
	var batch []*download
	defer func() {
		for _, d := range batch {
			d.dlv.Abort()
		}
	}()
	var failed []error
	for len(todo) > 0 {
		got := 0 // messages of todo handed to the callback
		err := c.RetrMany(ctx, todo, func(num int, r io.Reader) error {
			got++
			d, err := f.store(byNum[num], r)
			if err != nil {
				return err
			}
			batch = append(batch, d)
			if len(batch) >= f.o.BatchSize {
				b := batch
				batch = nil
				if err := f.commit(ctx, b); err != nil {
					return &storeError{err}
				}
			}
			return nil
		})
		var perr *Error
		if errors.As(err, &perr) && got < len(todo) {
			// RETR of todo[got] was refused; RetrMany stopped there and the
			// session is still usable: carry on after it.
			f.res.Failed++
			f.log.Warn("pop3 server refused to send a message; it stays on the server", "num", todo[got], "err", err)
			failed = append(failed, err)
			todo = todo[got+1:]
			continue
		}
		if err != nil {
			// Commit what arrived whole before giving up (e.g. on cancel).
			var se *storeError
			if !errors.As(err, &se) && len(batch) > 0 {
				b := batch
				batch = nil
				if cerr := f.commit(ctx, b); cerr != nil {
					err = errors.Join(err, cerr)
				}
			}
			return err
		}
		break
	}
	if len(batch) > 0 {
		b := batch
		batch = nil
		if err := f.commit(ctx, b); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %w", errSomeFailed, errors.Join(failed...))
	}
	return nil
}

// store streams one message into a tmp/ file and parses what the index
// needs.
func (f *fetcher) store(e entry, r io.Reader) (*download, error) {
	dlv, err := f.dir.NewDelivery()
	if err != nil {
		return nil, &storeError{err}
	}
	if _, err := io.Copy(dlv, r); err != nil {
		dlv.Abort()
		return nil, err
	}
	if err := dlv.Close(); err != nil {
		dlv.Abort()
		return nil, &storeError{err}
	}
	d := &download{e: e, dlv: dlv}
	d.header = index.ParseHeader(dlv.Header())
	d.idate = internalDate(dlv.Header(), d.header)
	_ = os.Chtimes(dlv.Path(), d.idate, d.idate)
	return d, nil
}

// commit makes a batch durable and indexes it: sync the files, record the
// intent (UIDL -> key), rename into cur/, sync the directory, then add the
// message rows and UIDLs and drop the intent in one transaction. It runs to
// the end even if ctx is cancelled meanwhile: the downloads are complete.
func (f *fetcher) commit(ctx context.Context, batch []*download) (err error) {
	ctx = context.WithoutCancel(ctx)
	next := 0 // batch[next:] are not committed into cur/ yet
	defer func() {
		if err != nil {
			for _, d := range batch[next:] {
				d.dlv.Abort()
			}
		}
	}()
	dlvs := make([]*maildir.Delivery, len(batch))
	pend := make([]index.POP3Pending, len(batch))
	for i, d := range batch {
		dlvs[i] = d.dlv
		pend[i] = index.POP3Pending{UIDL: d.e.id, Folder: f.folder.ID, Key: d.dlv.Key(), RFC822Size: d.e.size}
	}
	if err := f.files.Sync(dlvs); err != nil {
		return err
	}
	if err := f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.AddPOP3Pending(f.acct, pend) }); err != nil {
		return err
	}
	if err := hook("pending"); err != nil {
		return err
	}
	names := make([]string, len(batch))
	for i, d := range batch {
		name, err := f.dir.Commit(d.dlv, 0, 0)
		if err != nil {
			// Files already in cur/ stay pending: the next run indexes them.
			return err
		}
		names[i] = name
		next = i + 1
	}
	if err := hook("renamed"); err != nil {
		return err
	}
	if err := f.dir.SyncDir(); err != nil {
		return err
	}
	if err := hook("synced"); err != nil {
		return err
	}
	now := time.Now()
	var bytes int64
	ms := make([]*index.NewMessage, len(batch))
	for i, d := range batch {
		m := &index.NewMessage{DeferText: true} // full text: index.IndexPending
		m.Folder = f.folder.ID
		m.Key = d.dlv.Key()
		m.File = "cur/" + names[i]
		m.Size = d.dlv.Size()
		m.RFC822Size = d.e.size
		m.InternalDate = d.idate
		m.Header = d.header
		m.SHA256 = d.dlv.Sum()
		ms[i] = m
	}
	err = f.o.Index.Write(ctx, func(tx *index.Tx) error {
		ids, err := tx.AddMessages(ms)
		if err != nil {
			return err
		}
		for i, d := range batch {
			if err := tx.AddPOP3UIDL(f.acct, d.e.id, ids[i], now); err != nil {
				return err
			}
			if err := tx.DonePOP3Pending(f.acct, d.e.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range batch {
		f.known[d.e.id] = index.POP3UIDL{StoredAt: now}
		bytes += d.e.size
	}
	f.res.New += len(batch)
	f.res.Bytes += bytes
	f.o.Progress.Done(len(batch), bytes)
	return nil
}

// deleteOld marks for deletion the messages whose copy is committed and
// whose time has come, ends the session with QUIT, and records the
// deletions once QUIT has succeeded.
func (f *fetcher) deleteOld(ctx context.Context, c *Client, entries []entry) error {
	now := time.Now()
	var nums []int
	var ids []string
	for _, e := range entries {
		if e.id == "" {
			continue
		}
		u, ok := f.known[e.id]
		if !ok {
			continue // never delete what is not stored
		}
		due := !f.o.Keep ||
			(f.o.DeleteAfterDays > 0 && !now.Before(u.StoredAt.AddDate(0, 0, f.o.DeleteAfterDays)))
		if due {
			nums = append(nums, e.num)
			ids = append(ids, e.id)
		}
	}
	if len(nums) > 0 {
		if err := c.DeleMany(ctx, nums); err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				return err
			}
			// Some are marked, some not: unmark all and delete nothing.
			f.log.Warn("pop3 server refused to delete a message; deleting none this time", "err", err)
			if err := c.Rset(); err != nil {
				return err
			}
			nums, ids = nil, nil
		}
	}
	if err := c.Quit(); err != nil {
		if len(ids) > 0 {
			return fmt.Errorf("pop3: deleting %d messages on the server: %w", len(ids), err)
		}
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	err := f.o.Index.Write(context.WithoutCancel(ctx), func(tx *index.Tx) error {
		return tx.MarkPOP3Deleted(f.acct, ids, now)
	})
	if err != nil {
		return err
	}
	f.res.Deleted = len(ids)
	f.log.Info("deleted messages on the server", "count", len(ids))
	return nil
}

// internalDate is the date a message arrived: the date of its topmost
// Received field, else its Date field, else now.
func internalDate(hdr []byte, h index.Header) time.Time {
	th, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	if rcv := th.Get("Received"); rcv != "" {
		if i := strings.LastIndexByte(rcv, ';'); i >= 0 {
			s := strings.Join(strings.Fields(rcv[i+1:]), " ")
			if t, err := mail.ParseDate(s); err == nil {
				return t
			}
		}
	}
	if !h.Date.IsZero() {
		return h.Date
	}
	return time.Now()
}
