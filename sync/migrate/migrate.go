package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

// Options configure a migration. Zero values mean the documented defaults.
type Options struct {
	Index  *index.Store // the store's index, opened with index.OpenStore(Root)
	Root   string       // the store's Maildir root
	Source string       // the source account's name in the store

	// Folders are the source folders to migrate (local names); nil: every
	// folder the store has of the source account.
	Folders []string
	// Map gives source folders another destination folder; the others keep
	// their name. Several source folders may go into one destination
	// folder: its messages are then the union of theirs. Every key must be
	// one of the source folders.
	Map map[string]string

	Dest        imapconn.Endpoint
	DestAccount string // the destination account's name, for messages
	// DestFolderMap is the destination account's folder_map (server name
	// -> postfach name): destination folder names are postfach names, and
	// its inverse gives the server's.
	DestFolderMap map[string]string
	// DestNamespacePrefix is the destination account's namespace_prefix:
	// destination folders other than INBOX are created and looked for
	// below it (Archive is INBOX.Archive on a server whose personal
	// namespace is "INBOX."). nil: the prefix the server's NAMESPACE
	// answer gives.
	DestNamespacePrefix *string

	// DryRun reads both sides and reports what a run would copy, without
	// changing anything on the destination (no CREATE, no APPEND).
	DryRun bool

	Connections  int // parallel connections to the destination, one folder each; default 4
	Window       int // APPENDs in flight per connection; default 16
	DialAttempts int // tries for a temporary connection failure; default 3
	// NoMultiAppend copies with one APPEND per message even where the
	// server has MULTIAPPEND (tests use it to keep that path proven).
	NoMultiAppend bool

	Logger   *slog.Logger // default: discard
	Progress Progress     // default: none
}

// Progress receives the copy's progress: Expect once with what is to be
// copied, then Done per confirmed APPEND. Calls come from several
// goroutines.
type Progress interface {
	Expect(msgs int, bytes int64)
	Done(msgs int, bytes int64)
}

type noProgress struct{}

func (noProgress) Expect(int, int64) {}
func (noProgress) Done(int, int64)   {}

// Report is the outcome of a migration: per destination folder, the
// verification of the destination against the source after the copy.
type Report struct {
	DryRun  bool // Copied is what a run would copy; Dest* is the destination as it is
	Source  string
	Dest    string
	Folders []FolderReport // by destination folder name
}

// FolderReport is one destination folder. Counts are messages; bytes are
// RFC822.SIZE (CRLF line ends).
type FolderReport struct {
	Dest    string   // destination folder (postfach name)
	Remote  string   // its name on the destination server (below the namespace prefix)
	Sources []string // the source folders copied into it
	Created bool     // CREATEd by this run (DryRun: would be)

	SourceCount int
	SourceBytes int64
	DestCount   int // after the run (DryRun: as it is)
	DestBytes   int64

	Copied      int   // APPENDed by this run (DryRun: would be)
	CopiedBytes int64 // their bytes
	Failed      int   // APPENDs the server refused, or files that could not be read

	// Missing counts source messages without a destination copy after the
	// run (DryRun: now); Extra counts destination messages that match no
	// source message; Differ counts messages on both sides whose flags or
	// internal date differ (changed on one side after they were copied).
	Missing, Extra, Differ int

	// Damaged names, one line each, the source messages whose stored copy
	// is shorter than the source server said (see the package
	// documentation, Identity): they are not copied and count as Missing,
	// and the folder fails with an error naming the first.
	Damaged []string

	Err error // the folder failed; the counts are what is known
}

// Totals adds up the folder reports.
func (r *Report) Totals() FolderReport {
	var t FolderReport
	for _, f := range r.Folders {
		t.SourceCount += f.SourceCount
		t.SourceBytes += f.SourceBytes
		t.DestCount += f.DestCount
		t.DestBytes += f.DestBytes
		t.Copied += f.Copied
		t.CopiedBytes += f.CopiedBytes
		t.Failed += f.Failed
		t.Missing += f.Missing
		t.Extra += f.Extra
		t.Differ += f.Differ
	}
	return t
}

// Complete reports whether every source message is on the destination and
// every folder was verified.
func (r *Report) Complete() bool {
	for _, f := range r.Folders {
		if f.Missing > 0 || f.Err != nil {
			return false
		}
	}
	return true
}

// folderJob is one destination folder's part of the run.
type folderJob struct {
	dest    string // postfach name
	remote  string // server name
	exists  bool
	sources []string
	folders []*index.Folder // the source folders, as srcRec.fi numbers them
	recs    []srcRec        // the source messages, in source order
	todo    []int32         // missing at the start, to copy (indexes into recs)
	damaged []error         // missing, but their stored copy is damaged: not copied
	rep     FolderReport
	err     error

	planFailed bool  // nothing was copied
	copyErr    error // the copy failed (or some APPENDs were refused)
}

// Run copies the source account's messages from the store to the
// destination server and verifies the result; see the package
// documentation. It returns an error when a folder failed (the report
// says which) or the run was cancelled; messages still missing at the end
// are not an error: the report's Missing counts them.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Index == nil || o.Root == "" || o.Source == "" {
		return nil, errors.New("migrate: Index, Root and Source are required")
	}
	if err := o.Index.CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if o.Connections <= 0 {
		o.Connections = 4
	}
	if o.Window <= 0 {
		o.Window = 16
	}
	if o.DialAttempts <= 0 {
		o.DialAttempts = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	log := o.Logger.With("source", o.Source, "dest", o.DestAccount)

	jobs, err := loadSource(ctx, &o)
	if err != nil {
		return nil, err
	}
	first, err := openDest(ctx, &o, log, jobs)
	if err != nil {
		return nil, err
	}
	p := &pool{o: &o, log: log, conns: make([]*imapclient.Client, o.Connections)}
	p.conns[0] = first
	defer p.close(ctx)

	// 1. Plan: what each destination folder lacks.
	p.run(ctx, jobs, func(c *imapclient.Client, j *folderJob) error { return plan(ctx, c, j, &o, log) })
	for _, j := range jobs {
		j.planFailed = j.err != nil
	}
	var msgs int
	var bytes int64
	for _, j := range jobs {
		if j.err == nil {
			msgs += len(j.todo)
			bytes += j.todoBytes()
		}
	}
	if !o.DryRun {
		// 2. Copy, 3. verify.
		o.Progress.Expect(msgs, bytes)
		// Where the server has MULTIAPPEND, one connection shared by the
		// folders copies with it.
		up := &imapconn.LazyUploader{Endpoint: &o.Dest, Off: o.NoMultiAppend, Log: log}
		p.run(ctx, jobs, func(c *imapclient.Client, j *folderJob) error {
			return copyFolder(ctx, c, up.Get(ctx, c), j, &o, log)
		})
		up.Close()
		// A folder whose copy broke off is verified too, on a new
		// connection: its counts are then exact.
		for _, j := range jobs {
			if j.err != nil && !j.planFailed {
				j.copyErr, j.err = j.err, nil
			}
		}
		p.run(ctx, jobs, func(c *imapclient.Client, j *folderJob) error { return verify(ctx, c, j, &o, log) })
		for _, j := range jobs {
			if j.copyErr != nil {
				j.err = errors.Join(j.copyErr, j.err)
			}
		}
	}
	for _, j := range jobs {
		if len(j.damaged) > 0 {
			j.err = errors.Join(j.err, damagedErr(j.damaged))
		}
	}

	rep := &Report{DryRun: o.DryRun, Source: o.Source, Dest: o.DestAccount}
	var errs []error
	for _, j := range jobs {
		j.rep.Err = j.err
		if j.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", j.dest, j.err))
		}
		rep.Folders = append(rep.Folders, j.rep)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// openDest dials the destination, LISTs it and settles each job's server
// folder (below the destination's namespace prefix, see destNames), whether
// it exists, and the start of its report. It returns the connection, for
// the pool.
func openDest(ctx context.Context, o *Options, log *slog.Logger, jobs []*folderJob) (*imapclient.Client, error) {
	first, err := o.Dest.DialRetry(ctx, o.DialAttempts, log.Warn)
	if err != nil {
		return nil, err
	}
	// go-imap waits 30 s for an answer whatever the context says: close
	// the connection when the context ends (pool.do does the same).
	stop := context.AfterFunc(ctx, func() { first.Close() })
	delim, existing, err := destFolders(first)
	var names imapsync.FolderNames
	if err == nil {
		names, err = destNames(first, delim, o)
	}
	stop()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		first.Close()
		return nil, fmt.Errorf("%s: %w", o.Dest.Addr, err)
	}
	for _, j := range jobs {
		j.remote = names.Remote(j.dest)
		j.exists = existing[j.remote]
		j.rep = FolderReport{Dest: j.dest, Remote: j.remote, Sources: j.sources, SourceCount: len(j.recs)}
		j.err = roundTrip(names, j.dest)
		for i := range j.recs {
			j.rep.SourceBytes += j.recs[i].size
		}
	}
	return first, nil
}

// plan creates the destination folder if needed (not in a dry run),
// fetches its identities and finds the source messages it lacks.
func plan(ctx context.Context, c *imapclient.Client, j *folderJob, o *Options, log *slog.Logger) error {
	var dest []destRec
	switch {
	case j.exists:
		var err error
		if dest, err = fetchDest(c, j.remote); err != nil {
			return err
		}
	case o.DryRun:
		j.rep.Created = true
	default:
		if err := create(c, j.remote); err != nil {
			return err
		}
		j.rep.Created = true
		log.Info("created destination folder", "folder", j.remote)
	}
	crlf, lookupErr := j.crlfOf(ctx, o)
	m := match(j.recs, dest, crlf)
	if err := lookupErr(); err != nil {
		return err
	}
	j.todo = j.todo[:0]
	for start := 0; start < len(m.missing); start += detailBatch {
		batch := m.missing[start:min(start+detailBatch, len(m.missing))]
		msgs, err := j.srcMsgs(ctx, o, batch)
		if err != nil {
			return err
		}
		for k := range msgs {
			if err := msgs[k].damage(); err != nil {
				j.damaged = append(j.damaged, err)
				j.rep.Damaged = append(j.rep.Damaged, err.Error())
				log.Warn("message not copied", "folder", j.dest, "err", err)
				continue
			}
			j.todo = append(j.todo, batch[k])
		}
	}
	j.rep.DestCount, j.rep.DestBytes = m.dest, m.bytes
	j.rep.Missing, j.rep.Extra, j.rep.Differ = len(m.missing), m.extra, m.differ
	if o.DryRun {
		j.rep.Copied = len(j.todo)
		j.rep.CopiedBytes = j.todoBytes()
	}
	log.Info("planned folder", "folder", j.dest, "source", len(j.recs), "dest", m.dest, "missing", len(m.missing), "extra", m.extra)
	return nil
}

// todoBytes is the size of the messages to copy.
func (j *folderJob) todoBytes() int64 {
	var n int64
	for _, i := range j.todo {
		n += j.recs[i].size
	}
	return n
}

// crlfOf returns match's crlf: the CRLF size of the file of recs[i], read
// from the index a window of rows at a time (match asks in source order,
// and seldom), and a function that returns the first failure to read the
// index: a match that met one is not to be trusted.
func (j *folderJob) crlfOf(ctx context.Context, o *Options) (func(i int) (int64, error), func() error) {
	var win []srcMsg
	var lo int
	var failed error
	crlf := func(i int) (int64, error) {
		if n := j.recs[i].crlf; n > 0 {
			return n, nil
		}
		if i < lo || i >= lo+len(win) {
			idx := make([]int32, 0, detailBatch)
			for k := i; k < len(j.recs) && len(idx) < detailBatch; k++ {
				idx = append(idx, int32(k))
			}
			w, err := j.srcMsgs(ctx, o, idx)
			if err != nil {
				if failed == nil {
					failed = err
				}
				return 0, err
			}
			win, lo = w, i
		}
		return win[i-lo].crlfSize()
	}
	return crlf, func() error { return failed }
}

// damagedErr is the folder's error for its damaged messages: one line,
// naming the first.
func damagedErr(damaged []error) error {
	if len(damaged) == 1 {
		return damaged[0]
	}
	return fmt.Errorf("%d stored messages are damaged and were not copied; the first: %w", len(damaged), damaged[0])
}

// copyBatch is how many messages copyFolder reads from the index and
// hands on at a time: a multiple of imapconn's MULTIAPPEND command size
// (100 messages).
const copyBatch = 500

// copyFolder APPENDs the messages the destination lacks: with MULTIAPPEND
// on up when there is one, else one APPEND each on c.
func copyFolder(ctx context.Context, c *imapclient.Client, up *imapconn.Uploader, j *folderJob, o *Options, log *slog.Logger) error {
	if len(j.todo) == 0 {
		return nil
	}
	var mu sync.Mutex
	var firstNO error
	record := func(a appended) {
		mu.Lock()
		defer mu.Unlock()
		if a.err != nil {
			j.rep.Failed++
			if firstNO == nil {
				firstNO = a.err
			}
			log.Warn("message not copied", "folder", j.dest, "key", a.s.key, "err", a.err)
			return
		}
		j.rep.Copied++
		j.rep.CopiedBytes += a.size
		o.Progress.Done(1, a.size)
	}
	// A batch at a time: what the copy needs of a message besides its
	// srcRec is read from the index just before it is sent.
	var err error
	for start := 0; start < len(j.todo) && err == nil; start += copyBatch {
		var msgs []srcMsg
		if msgs, err = j.srcMsgs(ctx, o, j.todo[start:min(start+copyBatch, len(j.todo))]); err != nil {
			break
		}
		if up != nil {
			err = appendMulti(ctx, up, j.remote, msgs, record)
		} else {
			err = appendAll(ctx, c, j.remote, msgs, o.Window, record)
		}
	}
	log.Info("copied", "folder", j.dest, "messages", j.rep.Copied, "bytes", j.rep.CopiedBytes, "failed", j.rep.Failed)
	if err != nil {
		return err
	}
	if firstNO != nil {
		return fmt.Errorf("%d messages not copied; the first: %w", j.rep.Failed, firstNO)
	}
	return nil
}

// verify fetches the destination's identities again and compares them
// with the source.
func verify(ctx context.Context, c *imapclient.Client, j *folderJob, o *Options, log *slog.Logger) error {
	dest, err := fetchDest(c, j.remote)
	if err != nil {
		return err
	}
	crlf, lookupErr := j.crlfOf(ctx, o)
	m := match(j.recs, dest, crlf)
	if err := lookupErr(); err != nil {
		return err
	}
	j.rep.DestCount, j.rep.DestBytes = m.dest, m.bytes
	j.rep.Missing, j.rep.Extra, j.rep.Differ = len(m.missing), m.extra, m.differ
	log.Info("verified folder", "folder", j.dest, "source", len(j.recs), "dest", m.dest, "missing", len(m.missing), "extra", m.extra)
	return nil
}

// pool runs a phase over the folders on up to Connections connections,
// one folder at a time per connection. A folder that failed in an earlier
// phase is skipped. A connection that failed with anything but a NO is
// dropped and dialled again for the next folder.
type pool struct {
	o       *Options
	log     *slog.Logger
	conns   []*imapclient.Client
	dialMu  sync.Mutex
	dialErr error // dialling failed for good: the remaining folders fail with it
}

func (p *pool) run(ctx context.Context, jobs []*folderJob, fn func(*imapclient.Client, *folderJob) error) {
	queue := make(chan *folderJob, len(jobs))
	for _, j := range jobs {
		if j.err == nil {
			queue <- j
		}
	}
	close(queue)
	var wg sync.WaitGroup
	for i := range min(len(p.conns), max(1, len(queue))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				j.err = p.do(ctx, i, j, fn)
			}
		}()
	}
	wg.Wait()
}

func (p *pool) do(ctx context.Context, i int, j *folderJob, fn func(*imapclient.Client, *folderJob) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.conns[i] == nil {
		p.dialMu.Lock()
		err := p.dialErr
		p.dialMu.Unlock()
		if err != nil {
			return err
		}
		c, err := p.o.Dest.DialRetry(ctx, p.o.DialAttempts, p.log.Warn)
		if err != nil {
			p.dialMu.Lock()
			p.dialErr = err
			p.dialMu.Unlock()
			return err
		}
		p.conns[i] = c
	}
	c := p.conns[i]
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := fn(c, j)
	stop()
	var ie *imap.Error
	if err != nil && !errors.As(err, &ie) {
		c.Close()
		p.conns[i] = nil
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// close logs out of the pool's connections. A server that does not
// answer the LOGOUT is not waited for beyond logoutWait or the end of ctx
// (go-imap would wait 30 s).
func (p *pool) close(ctx context.Context) {
	for i, c := range p.conns {
		if c == nil {
			continue
		}
		imapconn.Logout(ctx, c)
		p.conns[i] = nil
	}
}

// String is the report as one line per folder, for logs.
func (f FolderReport) String() string {
	return fmt.Sprintf("%s <- %s: source %d (%d B), dest %d (%d B), copied %d, missing %d, extra %d",
		f.Dest, strings.Join(f.Sources, ", "), f.SourceCount, f.SourceBytes, f.DestCount, f.DestBytes, f.Copied, f.Missing, f.Extra)
}
