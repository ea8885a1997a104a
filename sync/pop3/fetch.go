package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/auth"
)

// Progress receives progress reports from Fetch: Expect once with the
// number and total size of the messages to download, then Done after each
// committed batch with the batch's count and size (and with 1 after a
// message downloaded only to be found equal to its stored copy). Calls come
// from the goroutine running Fetch.
type Progress interface {
	Expect(msgs int, bytes int64)
	Done(msgs int, bytes int64)
}

// FetchOptions configure Fetch.
type FetchOptions struct {
	Account string       // account name; also its directory under Root
	Root    string       // Maildir root of the store
	Index   *index.Store // the store's index, opened with index.OpenStore(Root)

	Addr      string      // "host:port"
	TLS       TLSMode     // default TLSImplicit
	TLSConfig *tls.Config // see Options.TLSConfig
	Username  string
	Password  string
	// Token, when set, signs in with an OAuth2 access token instead of
	// Password (Client.SignIn: AUTH OAUTHBEARER or XOAUTH2). It is called
	// at the sign-in, and once more when the server refuses the token.
	Token func(ctx context.Context) (string, error)

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
	// Debug receives the raw traffic (Options.Debug): passwords included.
	Debug io.Writer

	// DryRun plans the run and reports it (FetchResult.Plan, and New,
	// Bytes and Deleted as what a real run would do) without changing
	// anything: no file, the index rolled back (index.Store.DryRun), no
	// RETR and no DELE; only USER/PASS, UIDL, LIST and TOP are sent.
	DryRun bool
}

// Planned is one message of a dry run's plan.
type Planned struct {
	Op   string // "download" or "delete" (on the server)
	Num  int    // message number in the session
	UIDL string // the identity ("sha256 ..." without UIDL)
	Size int64  // as LIST says
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

	// Reused counts the messages downloaded although their identity was
	// known: it had named another message, which the server no longer has
	// (its size or header differs). They are counted in New as well.
	Reused int
	// Unproven counts the messages due for deletion that were left on the
	// server because their stored copy could not be shown to be theirs:
	// the local copy was deleted or changed, or the server refused TOP.
	Unproven int

	// DryRun: the counts are what a real run would do, and Plan lists the
	// messages, downloads first. (A message whose stored copy can only be
	// proven by downloading it again is planned as a download; the real
	// run stores it only if it differs.)
	DryRun bool
	Plan   []Planned
}

const (
	defaultBatchSize = 128
	// hashIDPrefix starts a content identity. It holds a space, which a
	// UIDL (RFC 1939: octets 0x21-0x7E) cannot, so the two never collide.
	hashIDPrefix = "sha256 "
)

// testHook, when set by a test, is called at the named points of a run:
// "listed" once the listing is read and planned, the points of a batch
// commit ("pending", "renamed", "synced", "committed") and of the deletion
// ("dele": marked, before QUIT; "quit": QUIT succeeded, before the index
// forgets the deleted messages); a non-nil error aborts the run there, as a
// crash would, without undoing what is on disk or on the server.
var testHook func(point string) error

// timeNow is the clock of the deletion policy (when a message was stored,
// whether its time has come); tests move it forward.
var timeNow = time.Now

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
	id   string    // identity (UIDL or content hash); "" when skipped
	hdr  *[32]byte // header hash (headerHasher) if TOP was read for the identity
}

// download is a message written to tmp/, waiting for its batch.
type download struct {
	e       entry
	dlv     *maildir.Delivery
	header  index.Header
	hdrHash [32]byte // headerHasher's
	idate   time.Time
}

type fetcher struct {
	o      FetchOptions
	log    *slog.Logger
	res    *FetchResult
	acct   index.AccountID
	folder *index.Folder
	dir    *maildir.Dir
	known  map[string]index.POP3UIDL // identities of stored messages

	// What this session knows of the listed messages, by number:
	ours   map[int]bool     // downloaded and committed in this session
	proven map[int]bool     // stored by an earlier run, proven by check
	verify map[int][32]byte // a download with this content is the stored copy (check, byContent)
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
	if o.DryRun {
		o.Index = o.Index.DryRun()
		defer o.Index.Discard()
	}
	f := &fetcher{o: o, log: o.Logger, res: &FetchResult{DryRun: o.DryRun},
		ours: map[int]bool{}, proven: map[int]bool{}, verify: map[int][32]byte{}}
	if err := o.Index.CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if !o.DryRun {
		if err := maildir.MarkAccount(o.Root, o.Account); err != nil {
			return nil, err
		}
	}
	if err := f.prepare(ctx); err != nil {
		return nil, err
	}
	c, err := dialHinted(ctx, o.Addr, &Options{TLS: o.TLS, TLSConfig: o.TLSConfig, Timeout: o.Timeout, Logger: o.Logger, Debug: o.Debug})
	if err != nil {
		return nil, &ConnError{Addr: o.Addr, Op: "connect", Err: err}
	}
	defer c.Close()
	if err := f.signIn(ctx, c); err != nil {
		return nil, err
	}
	entries, err := f.list(ctx, c)
	if err != nil {
		return nil, err
	}
	todo, err := f.plan(ctx, c, entries)
	if err == nil {
		err = hook("listed")
	}
	if err == nil && o.DryRun {
		err = f.planOnly(c, entries, todo)
		return f.res, err
	}
	if err == nil {
		err = f.fetchNew(ctx, c, todo)
	}
	if err == nil || errors.Is(err, errSomeFailed) {
		err = errors.Join(err, f.deleteOld(ctx, c, entries))
	}
	f.recordResult(err)
	return f.res, err
}

// signIn logs in with the password, or with FetchOptions.Token.
func (f *fetcher) signIn(ctx context.Context, c *Client) error {
	o := f.o
	if o.Token == nil {
		if err := c.Login(ctx, o.Username, o.Password); err != nil {
			return &ConnError{Addr: o.Addr, Op: "login as " + o.Username, Err: err}
		}
		return nil
	}
	host, p, _ := net.SplitHostPort(o.Addr)
	port, _ := strconv.Atoi(p)
	if err := c.SignIn(ctx, auth.Credentials{Username: o.Username, Token: o.Token}, host, port); err != nil {
		return &ConnError{Addr: o.Addr, Op: "sign-in as " + o.Username, Err: err}
	}
	return nil
}

// planOnly finishes a dry run: it reports what fetchNew and deleteOld
// would do with the messages plan chose (todo) and those it proved
// stored, and ends the session without marking anything.
func (f *fetcher) planOnly(c *Client, entries, todo []entry) error {
	now := timeNow()
	down := make(map[int]bool, len(todo))
	for _, e := range todo {
		down[e.num] = true
		f.res.Plan = append(f.res.Plan, Planned{Op: "download", Num: e.num, UIDL: e.id, Size: e.size})
		f.res.New++
		f.res.Bytes += e.size
	}
	for _, e := range entries {
		if e.id == "" || !(down[e.num] || f.proven[e.num]) {
			continue // never delete what is not stored
		}
		if f.dueStored(e, down[e.num], now) {
			f.res.Plan = append(f.res.Plan, Planned{Op: "delete", Num: e.num, UIDL: e.id, Size: e.size})
			f.res.Deleted++
		}
	}
	return c.Quit()
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
	rel, err := index.FolderPath(f.o.Account, f.o.Folder)
	if err != nil {
		return err
	}
	err = f.o.Index.Write(ctx, func(tx *index.Tx) error {
		var err error
		if f.acct, err = tx.EnsureAccount(f.o.Account); err != nil {
			return err
		}
		f.folder, err = tx.EnsureFolder(f.acct, f.o.Folder, rel)
		return err
	})
	if err != nil {
		return err
	}
	if f.dir, err = f.o.Index.Dir(*f.folder); err != nil {
		return err
	}
	if !f.o.DryRun { // (a dry run's folder is not created; read only)
		if _, err := maildir.Open(f.dir.Path); err != nil {
			return err
		}
	}
	if !f.o.DryRun { // (a dry run plans as if the interrupted run's files were not there)
		if err := f.recover(ctx); err != nil {
			return fmt.Errorf("pop3: completing an interrupted run: %w", err)
		}
		// Leftovers of a killed run: the caller holds the store's sync lock.
		if n, err := f.dir.CleanOwnTmp(); err != nil {
			return err
		} else if n > 0 {
			f.log.Info("removed files of an interrupted download from tmp/", "count", n)
		}
	}
	return f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		f.known, err = tx.POP3UIDLs(f.acct)
		return err
	})
}

// fetchNew downloads the messages plan chose, committing them in batches.
// A message in f.verify whose download equals its stored copy is not
// stored again: it is proven instead.
func (f *fetcher) fetchNew(ctx context.Context, c *Client, entries []entry) error {
	// todo and rest go on in step: rest[i] is the entry of todo[i] (no
	// map by number: on a mailbox of 100,000 that was 7 MB).
	todo := make([]int, 0, len(entries))
	rest := entries
	var total int64
	for _, e := range entries {
		todo = append(todo, e.num)
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
			e := rest[got-1]
			if e.num != num {
				return &storeError{fmt.Errorf("pop3: RETR answered for message %d, expected %d", num, e.num)}
			}
			d, err := f.store(e, r)
			if err != nil {
				return err
			}
			if sum, ok := f.verify[num]; ok && d.dlv.Sum() == sum {
				d.dlv.Abort()
				f.proven[num] = true
				f.o.Progress.Done(1, e.size)
				return nil
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
			todo, rest = todo[got+1:], rest[got+1:]
			continue
		}
		var tooLarge *TooLargeError
		if errors.As(err, &tooLarge) && c.err == nil && got <= len(todo) {
			// todo[got-1] was refused (LimitBody), its rest read and
			// thrown away: the session is still usable.
			f.res.Failed++
			f.log.Warn("pop3 message longer than its listed size: not stored; it stays on the server", "num", todo[got-1], "err", err)
			failed = append(failed, err)
			todo, rest = todo[got:], rest[got:]
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
	hh := newHeaderHasher(true)
	r = LimitBody(r, e.num, e.size) // a body far longer than listed: *TooLargeError
	if _, err := io.Copy(dlv, io.TeeReader(r, hh)); err != nil {
		// A cut connection: the body reader fails with an error wrapping
		// io.ErrUnexpectedEOF, never io.EOF, so a partial message is never
		// taken for a whole one.
		dlv.Abort()
		return nil, err
	}
	if err := dlv.Close(); err != nil {
		dlv.Abort()
		return nil, &storeError{err}
	}
	d := &download{e: e, dlv: dlv, hdrHash: hh.Sum()}
	d.header = index.ParseHeader(dlv.Header())
	d.idate = internalDate(dlv.Header(), d.header)
	_ = os.Chtimes(dlv.Path(), d.idate, d.idate)
	return d, nil
}

// commit makes a batch durable and indexes it through the store's door
// (index.Store.Deliver): sync the files, record the intent (UIDL -> key),
// rename into new/ (unread), sync the directory, then add the message rows
// and UIDLs and drop the intent in one transaction. It runs to the end
// even if ctx is cancelled meanwhile: the downloads are complete.
func (f *fetcher) commit(ctx context.Context, batch []*download) error {
	as := make([]*index.Arrival, len(batch))
	pend := make([]index.POP3Pending, len(batch))
	for i, d := range batch {
		a := &index.Arrival{Folder: f.folder, File: d.dlv}
		m := &a.Row
		m.DeferText = true // full text: index.IndexPending
		m.RFC822Size = d.e.size
		m.InternalDate = d.idate
		m.Header = d.header
		as[i] = a
		pend[i] = index.POP3Pending{UIDL: d.e.id, Folder: f.folder.ID, Key: d.dlv.Key(), RFC822Size: d.e.size}
	}
	err := f.o.Index.Deliver(ctx, &index.Batch{
		Arrivals: as,
		// Files that reach new/ stay pending if the batch stops: the next
		// run indexes them (recover).
		BeforeRename: func(ctx context.Context) error {
			if err := f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.AddPOP3Pending(f.acct, pend) }); err != nil {
				return err
			}
			return hook("pending")
		},
		WithRows: func(tx *index.Tx, ids []index.MessageID) error {
			now := timeNow()
			for i, d := range batch {
				// A known identity (the server reused it) now names this
				// message; the copy it named before stays.
				u := index.POP3UIDL{MessageID: ids[i], StoredAt: now, RFC822Size: d.e.size, HeaderSHA256: d.hdrHash[:]}
				if err := tx.AddPOP3UIDL(f.acct, d.e.id, u); err != nil {
					return err
				}
				if err := tx.DonePOP3Pending(f.acct, d.e.id); err != nil {
					return err
				}
			}
			return nil
		},
		Hook: hook,
	})
	if err != nil {
		return err
	}
	// Not added to f.known (on a first fetch of 100,000 messages that
	// was 11 MB): what this session stored is in f.ours, and deleteOld
	// takes its time as stored now, as planOnly does.
	var bytes int64
	for _, d := range batch {
		f.ours[d.e.num] = true
		bytes += d.e.size
	}
	f.res.New += len(batch)
	f.res.Bytes += bytes
	f.o.Progress.Done(len(batch), bytes)
	return hook("committed")
}
