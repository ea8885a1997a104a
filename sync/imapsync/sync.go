package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
)

// Options configure one account's sync. Zero values mean the documented
// defaults.
type Options struct {
	Account  string            // account name; its folders live under Root/<Account>
	Root     string            // store root (Maildir tree)
	Endpoint imapconn.Endpoint // how to reach the server
	Index    *index.Store      // opened with index.OpenStore(Root): the store's door

	Folders []string // include/exclude patterns (see Match); default all
	// Direction is "both" (default), "pull" (server to local only) or
	// "push" (local to server only).
	Direction string
	// Expunge says where deletions are carried out: "both" (default),
	// "local" (server expunges are applied locally; local deletions are not
	// pushed), "remote" (local deletions are pushed; server expunges leave
	// the local copy) or "none".
	Expunge string
	// MaxDeletePercent stops a folder whose run would delete more than this
	// share of it on either side (and at least 5 messages); default 25.
	// Force overrides it.
	MaxDeletePercent int
	Force            bool
	// Archive keeps every message (configs' archive = true): a message
	// expunged upstream, or deleted locally, moves to the account's
	// local-only archive view (index.ArchiveFolder) instead of being
	// deleted here; see archive.go. Whatever it says, the archive folders
	// (index.ArchivePrefix) are never synced.
	Archive bool
	// CreateFolders creates upstream the folders made locally (and again
	// those deleted upstream that still exist locally); RemoveFolders
	// carries folder deletions over to the other side. See folderops.go.
	CreateFolders, RemoveFolders bool
	// FolderMap maps server folder names ('/'-separated, without the
	// namespace prefix) to local names.
	FolderMap map[string]string
	// NamespacePrefix, when set, is the personal namespace prefix local
	// folder names are made under (see FolderNames), whatever the server's
	// NAMESPACE says: "INBOX." makes server folder INBOX.Archive local
	// folder Archive, and a new local top-level folder is created below
	// INBOX. upstream. nil: the prefix recorded for the account, else the
	// server's (namespace.go).
	NamespacePrefix *string
	// MaxAgeDays > 0 leaves server messages older than this (by
	// INTERNALDATE) on the server; MaxSize > 0 leaves messages larger than
	// this many bytes where they are, in both directions. Neither deletes
	// anything: a message outside the limits is simply not copied.
	MaxAgeDays int
	MaxSize    int64
	// DryRun plans the run and reports it in the Result (what would be
	// downloaded, uploaded, changed and deleted) without changing anything:
	// no server command that modifies, no file touched, the index rolled
	// back.
	DryRun bool
	// NoActions leaves the Result's Actions empty, for a caller that reads
	// its counts alone: a run keeps one Action per message downloaded
	// until it returns, 8 MB for 100,000 new messages (postfach
	// migrate's pull of its source sets it).
	NoActions   bool
	Connections int // parallel connections; default 4
	// DialAttempts is how often a temporary connection failure is tried
	// before giving up; default 3 (waits 1 s, 2 s).
	DialAttempts int
	// NoMultiAppend uploads with one APPEND per message even where the
	// server has MULTIAPPEND (tests use it to keep that path proven).
	NoMultiAppend bool
	// ChunkSize is how many new messages one FETCH asks for; default 250.
	ChunkSize int
	// BatchSize is how many messages one durable commit covers; default 256.
	BatchSize int
	// Only, when not empty, makes the run a partial one: just these local
	// folders are synced, without the folder-level pass (no folder is
	// created, renamed or deleted). A named folder that pass would have to
	// look at (not listed, never synced, its Maildir gone, ...) makes the
	// run a full one instead; see only.go. Result.Partial says which it was.
	Only []string

	// FirstDial, when set, is the run's first connection, dialed ahead
	// (imapconn.Endpoint.DialAhead, of Endpoint) while the caller opened
	// the index; the run takes it instead of dialing.
	FirstDial *imapconn.Pending

	Logger   *slog.Logger // default: discard
	Progress Progress     // default: none
}

// Sync runs one pull of the account: every selected folder is brought up to
// the server's state. It returns an error if any folder failed; the Result
// says which.
func Sync(ctx context.Context, opts Options) (*Result, error) {
	o := opts.withDefaults()
	defer o.Index.Discard() // a dry run's view: everything it wrote is rolled back
	s := &syncer{opts: o, log: o.Logger, q: newQueue(), dryCreated: map[string]bool{}, ends: newEndStamps(o.DryRun)}
	defer s.ends.close()
	defer func() {
		if s.releaseTurn != nil {
			s.releaseTurn()
		}
	}()
	if err := o.Index.CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if !o.DryRun {
		if err := maildir.MarkAccount(o.Root, o.Account); err != nil {
			return nil, err
		}
	}
	s.up = imapconn.LazyUploader{Endpoint: &s.opts.Endpoint, Off: o.NoMultiAppend, Log: s.log}
	defer s.up.Close() // (runJobs closes it first; this is for the runs that end before)
	var acct index.AccountID
	err := o.Index.Write(ctx, func(tx *index.Tx) error {
		var err error
		if acct, err = tx.EnsureAccount(o.Account); err != nil {
			return err
		}
		return tx.SetArchive(acct, o.Archive)
	})
	if err != nil {
		return nil, err
	}
	first, folders, moved, err := s.folderLevel(ctx, acct)
	if err != nil {
		return nil, err
	}
	if o.Archive && !o.DryRun { // the turn is held: see archive.go
		added, dropped, err := o.Index.ScanArchive(ctx, acct)
		if err != nil {
			first.Close()
			s.closeSpares(ctx)
			return nil, fmt.Errorf("archive: %w", err)
		}
		if added+dropped > 0 {
			s.log.Info("archive view indexed again", "added", added, "dropped", dropped)
		}
	}
	defer s.closeSpares(ctx)
	jobs, err := s.jobs(ctx, acct, folders)
	if err != nil {
		first.Close()
		return nil, err
	}
	s.runJobs(ctx, first, jobs)
	s.recordEndStamps(ctx, jobs)
	s.ends.close() // as early as can be: see inotifyWatch.close
	s.recordRowImages(ctx, jobs)
	return s.result(ctx, jobs, moved)
}

// withDefaults fills in the documented defaults.
func (o Options) withDefaults() Options {
	if o.Connections <= 0 {
		o.Connections = 4
	}
	if o.DialAttempts <= 0 {
		o.DialAttempts = 3
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 250
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.Direction == "" {
		o.Direction = "both"
	}
	if o.Expunge == "" {
		o.Expunge = "both"
	}
	if o.MaxDeletePercent <= 0 {
		o.MaxDeletePercent = 25
	}
	// The archive view is local only, whatever the patterns say: never
	// created or uploaded upstream, never taken for a folder deleted
	// there (see Match's callers).
	o.Folders = append(slices.Clip(o.Folders), "!"+index.ArchivePrefix, "!"+index.ArchivePrefix+"/*")
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	if o.DryRun {
		o.Index = o.Index.DryRun()
	}
	if len(o.Only) > 0 {
		only := make([]string, len(o.Only))
		for i, f := range o.Only {
			only[i] = inboxCase(f)
		}
		o.Only = only
	}
	return o
}

// folderLevel dials the first connection and, on it, LISTs the account,
// carries out the folder-level changes (folderops.go) and the moves
// between folders (moves.go), while the Maildir and the index are read
// and the connections the changed folders need are dialed. It returns the
// connection, still open, and the folders to sync. The caller closes the
// spare connections (closeSpares) once err is nil.
func (s *syncer) folderLevel(ctx context.Context, acct index.AccountID) (*imapclient.Client, []remoteFolder, int, error) {
	o, log := &s.opts, s.log
	// The Maildir and the index are read while the server is dialed and
	// LISTed; the listings hold until a folder is changed (see scanCache).
	start := time.Now()
	localChanges := o.Index.LocalChanges()
	prescanned := make(chan error, 1)
	scanned := make(chan struct{}) // closed with prescanned's send
	seen, looked := make(chan localLook, 1), make(chan localLook, 1)
	go func() {
		err := s.prescan(ctx, acct, seen)
		log.Debug("read the Maildir and the index", "took", time.Since(start).Round(time.Millisecond))
		prescanned <- err
		close(scanned)
	}()
	// Each folder changed here since its stamp will be planned whatever
	// the server says, each with a connection: those are dialed as soon
	// as the look tells, beside the first (over a network, the first's
	// login and LIST would otherwise come before their logins). One
	// attempt each, quietly: the first dial tells whether the server is
	// there, and a worker whose spare failed dials again itself.
	go func() {
		look := <-seen
		s.prefetchIndex(look.changed)
		s.predial(ctx, look.changed, 1)
		looked <- look // after predial: folderLevel's own calls follow it
	}()

	var first *imapclient.Client
	var err error
	if o.FirstDial != nil {
		first, err = o.FirstDial.Wait(ctx)
	} else {
		first, err = o.Endpoint.DialRetry(ctx, o.DialAttempts, log.Warn)
	}
	if err != nil {
		<-looked
		<-prescanned
		s.closeSpares(ctx)
		return nil, nil, 0, err
	}
	// The uploader is dialed as soon as the Maildir shows something to
	// upload (uploadsLikely), beside the LIST and the SELECT made ahead.
	go func(caps imap.CapSet) {
		if <-scanned; s.toUpload {
			s.up.Start(ctx, caps)
		}
	}(first.Caps())
	// Until a worker takes it (and watches ctx per task), a cancelled run
	// closes the first connection: a server that stops answering the LIST
	// or a folder command holds nobody up past the run's end.
	s.stopFirst = context.AfterFunc(ctx, func() { go first.Close() }) // see abort
	// From here to the run's end, the local endpoints' changes to the
	// account wait (index.Store.SyncTurn): what the run reads of the
	// Maildir and the index stays what it acts on. Not a dry run's: it
	// changes nothing, and its view holds the store's write connection
	// from its first read, which a local change holding its turn may be
	// waiting for.
	if !o.DryRun {
		s.releaseTurn = o.Index.SyncTurn(acct)
	}
	log.Debug("connected", "server", o.Endpoint.Addr, "took", time.Since(start).Round(time.Millisecond))
	// Each folder's STATUS in the LIST serves to skip the folders
	// unchanged on both sides. When every known folder changed here since
	// its stamp, none can be skipped, and the STATUS would only cost the
	// server a look into every folder (a rescan of each changed Maildir,
	// for Dovecot), one after the other, before the folders' own SELECTs
	// look again, side by side.
	look := <-looked
	allFolders, delim, err := listFolders(first, !look.allChanged())
	var ns *nsChoice
	if err != nil {
		err = fmt.Errorf("LIST: %w", err)
	} else {
		ns, err = s.namespace(ctx, first, acct, allFolders, delim)
	}
	if err != nil {
		<-prescanned
		s.closeSpares(ctx)
		first.Close()
		return nil, nil, 0, fmt.Errorf("%s: %w", o.Endpoint.Addr, err)
	}
	s.names = ns.names
	folders := selectFolders(allFolders, o.Folders, ns.old)
	log.Debug("listed", "folders", len(folders), "status", !look.allChanged(), "took", time.Since(start).Round(time.Millisecond))
	// Folders the LIST shows changed upstream will each need a connection:
	// dial the others now, while the Maildir is read, not when the first
	// plans start. (Under the names the local folders have: a change of
	// the namespace prefix costs a dial too many at most.)
	if look.allChanged() {
		s.prefetchIndex(len(folders))
		s.predial(ctx, len(s.onlyRemote(folders)), o.DialAttempts)
		s.selectAhead(ctx, first, acct, s.onlyRemote(folders))
	} else {
		changed := max(look.changed, s.changedUpstream(ctx, acct, s.onlyRemote(folders)))
		s.prefetchIndex(changed)
		s.predial(ctx, changed, o.DialAttempts)
	}
	pending := false
	if err = <-prescanned; err == nil {
		if o.Index.LocalChanges() != localChanges {
			s.listingsChanged() // read before a local change that came before the turn
		}
		pending, err = s.applyNamespace(ctx, ns)
	}
	if pending {
		folders = nil // a dry run of a prefix change plans the renames only
	}
	moveFolders := folders
	if err == nil && !pending {
		folders = selectFolders(allFolders, o.Folders, s.names)
		folders, moveFolders, err = s.partialOrFull(ctx, first, acct, folders, allFolders, ns.old.Prefix != ns.names.Prefix)
	}
	if len(s.actions) > 0 {
		s.listingsChanged() // folders were created, renamed or deleted
	}
	moved := 0
	if err == nil && !pending {
		// What the local endpoints queued first: a row they moved is
		// never taken for a new message, nor its source for a deletion.
		moved, err = s.consumeIntents(ctx, first, acct, moveFolders)
		folders = s.withMovedInto(folders, moveFolders)
	}
	if err == nil && !pending {
		var n int
		n, err = s.detectMoves(ctx, first, acct, moveFolders)
		moved += n
	}
	if moved > 0 || s.intentRes != nil || len(s.actions) > 0 {
		s.spareAheadStale.Store(true)
	}
	if err != nil {
		s.closeSpares(ctx)
		first.Close()
		return nil, nil, 0, err
	}
	return first, folders, moved, nil
}

// jobs records the folders to sync in the index and returns a job for
// each, the largest first (so that their chunks spread over all workers).
func (s *syncer) jobs(ctx context.Context, acct index.AccountID, folders []remoteFolder) ([]*folderJob, error) {
	o := &s.opts
	jobs := make([]*folderJob, 0, len(folders))
	err := o.Index.Write(ctx, func(tx *index.Tx) error {
		for _, rf := range folders {
			rel, err := index.FolderPath(o.Account, rf.Local)
			if err != nil {
				return err
			}
			f, err := tx.EnsureFolder(acct, rf.Local, rel)
			if err != nil {
				return err
			}
			if f.SpecialUse != rf.SpecialUse {
				if err := tx.SetSpecialUse(f.ID, rf.SpecialUse); err != nil {
					return err
				}
			}
			dir, err := o.Index.Dir(*f) // created by prepare
			if err != nil {
				return err
			}
			j := &folderJob{rf: rf, f: f, dir: dir, res: FolderResult{Name: rf.Local}}
			if rf.Status == nil {
				if j.rows, _, err = tx.RowsStamp(f.ID); err != nil {
					return err
				}
			}
			if r := s.intentRes[rf.Local]; r != nil { // intents.go
				j.res.ExpungedRemote += r.expunged
				if !s.opts.NoActions {
					j.res.Actions = append(j.res.Actions, r.acts...)
				}
				delete(s.intentRes, rf.Local)
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].size() > jobs[j].size() })
	return jobs, nil
}

// runJobs plans every job and fetches its new messages over up to
// Options.Connections workers, the first of which takes over first, with
// one committer for all; it returns when all is done. The folders that
// can be skipped are told first (prepare, no connection needed), so that
// only the others are queued, as many workers start as they need, and the
// first connection goes to the first of them: a run that changed one
// folder logs in once.
func (s *syncer) runJobs(ctx context.Context, first *imapclient.Client, jobs []*folderJob) {
	s.commit = newCommitter(s)
	for _, j := range jobs {
		j.s = s
		j.acquire(1) // the plan's unit
	}
	pending := s.prepareAll(ctx, jobs)
	n := min(s.opts.Connections, max(1, len(pending)))
	// The folder selected ahead on the first connection goes to the first
	// worker, which owns that connection; those selected ahead on the
	// connections dialed ahead go to the workers that take them, as many
	// as there are workers for (ahead.go).
	var start *task
	bound := s.boundRemotes[:min(len(s.boundRemotes), n-1)]
	held := map[string]*folderJob{}
	for _, j := range pending {
		if a := s.aheadOn(first); a != nil && start == nil && j.rf.Remote == a.remote {
			start = &task{job: j}
			s.q.claim()
			continue
		}
		if slices.Contains(bound, j.rf.Remote) {
			held[j.rf.Remote] = j
			s.q.claim()
			continue
		}
		s.q.push(task{job: j})
	}
	var wg sync.WaitGroup
	commitDone := make(chan struct{})
	go func() {
		s.commit.run(ctx)
		close(commitDone)
	}()
	for i := 0; i < n; i++ {
		w := &worker{s: s}
		if i == 0 {
			s.stopFirst()
			w.c, w.start = first, start
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				w.takeBound(held)
			}
			w.run(ctx)
		}()
	}
	if len(jobs) == 0 {
		first.Close()
	}
	wg.Wait()
	s.up.Close()
	close(s.commit.in)
	<-commitDone
}

// prepareAll prepares each job (prepare), prepareParallel at a time, and
// returns those that need a connection, in their order. A job skipped or
// failed here is done: their plans' units are released together, so
// their outcomes are recorded in one commit.
func (s *syncer) prepareAll(ctx context.Context, jobs []*folderJob) []*folderJob {
	need := make([]bool, len(jobs))
	parallel(len(jobs), prepareParallel, func(i int) {
		j := jobs[i]
		skip, err := false, ctx.Err()
		if err == nil {
			skip, err = s.prepare(ctx, j)
		}
		if err != nil {
			j.fail(err)
		}
		if skip || err != nil {
			return
		}
		s.ends.arm(j.f.ID) // before the job changes the folder
		need[i] = true
	})
	var pending, done []*folderJob
	for i, j := range jobs {
		if need[i] {
			pending = append(pending, j)
		} else {
			done = append(done, j)
		}
	}
	releaseAll(done)
	return pending
}

// prepareParallel is how many folders prepareAll prepares at once (each
// reads its tmp/, its UIDVALIDITY and counts in the index).
const prepareParallel = 4

// result gathers the folders' outcomes.
func (s *syncer) result(ctx context.Context, jobs []*folderJob, moved int) (*Result, error) {
	res := &Result{Moved: moved, DryRun: s.opts.DryRun, Partial: s.partial, FolderActions: s.actions, Recovered: s.recovered}
	var errs []error
	addr := s.opts.Endpoint.Addr
	for _, fr := range s.folderErrs {
		fr.Err = readableErr(addr, fr.Err)
		errs = append(errs, folderError(addr, fr.Name, fr.Err))
		res.Folders = append(res.Folders, fr)
	}
	for name, r := range s.intentRes { // folders this run does not plan
		res.Folders = append(res.Folders, FolderResult{Name: name, ExpungedRemote: r.expunged, Actions: r.acts})
	}
	for _, j := range jobs {
		if j.res.Err != nil {
			j.res.Err = readableErr(addr, j.res.Err)
			errs = append(errs, folderError(addr, j.rf.Local, j.res.Err))
		}
		res.Folders = append(res.Folders, j.res)
	}
	sort.Slice(res.Folders, func(i, k int) bool { return res.Folders[i].Name < res.Folders[k].Name })
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// syncer is the state shared by the workers of one run.
type syncer struct {
	// releaseTurn ends the run's turn on the account (index.Store.SyncTurn),
	// taken once it is connected; nil before.
	releaseTurn func()
	opts        Options
	log         *slog.Logger
	q           *queue
	commit      *committer
	// stopFirst stops the first connection's watch of the run's context
	// when a worker takes it over (see folderLevel).
	stopFirst func() bool
	// prefetched: the index was asked into the page cache (prefetchIndex).
	prefetched sync.Once
	dialErr    atomic.Pointer[error]     // set once dialing has failed for good
	actions    []string                  // folder-level actions, for the Result
	names      FolderNames               // server folder names <-> local ones (namespace.go)
	scans      scanCache                 // listings read at the start (prescan, detectMoves), reused once
	ends       *endStamps                // the folders that may get an end stamp (endstamp.go)
	planned    map[string]*index.Message // DryRun: the rows of planned moves, by Maildir key
	// intentRes: the deletions consumeIntents carried out (or, DryRun,
	// would), by local folder, until the folder's job takes them (see
	// intents.go).
	intentRes map[string]*intentResult
	// partial: the run syncs Options.Only alone (only.go).
	partial bool
	// movedInto names the local folders consumeIntents moved messages
	// into upstream: the run syncs them (see withMovedInto).
	movedInto map[string]bool
	// dryCreated holds the server names of the folders a dry run would
	// create upstream: their plan is made against an empty folder.
	dryCreated map[string]bool

	// folderErrs are the folders the folder-level pass left out, with why
	// (collisions, the deletion valve); recovered, the messages it kept.
	folderErrs []FolderResult
	recovered  []Recovery

	spares chan *imapclient.Client // connections dialed ahead (nil: that dial failed)
	claims atomic.Int32            // spares not yet taken by a worker
	dialed int                     // spares dialed (predial; in folderLevel's order)
	// aheads are the folders selected ahead while the Maildir was read,
	// by connection, until a plan takes them (ahead.go); bound, the
	// connections dialed ahead they were selected on, boundLeft of them
	// not yet taken by a worker (bindSpares).
	aheadMu      sync.Mutex
	aheads       map[*imapclient.Client]*selectedAhead
	bound        chan boundSpare
	boundLeft    atomic.Int32
	boundRemotes []string // the folders of bound, in order
	// spareAheadStale: the folder level changed something upstream (a
	// folder action, a queued change, a move), of which the SELECTs made
	// ahead on the connections dialed ahead heard nothing (ahead.go).
	spareAheadStale atomic.Bool

	// up is the run's MULTIAPPEND connection, used for every upload where
	// the server allows: it stores a folder's messages in one transaction,
	// sends them without a round trip each (LITERAL+; go-imap announces
	// every literal above 4 KiB and waits), and a refused message does not
	// cost the connection.
	up imapconn.LazyUploader
	// toUpload: the prescan found what the run will most likely upload
	// (uploadsLikely); set before prescan's end is told.
	toUpload bool
}

// listingsChanged forgets the listings read (the scan cache): something
// changed the folders since, in a way their scans do not cover; nor do
// they vouch for an end stamp then.
func (s *syncer) listingsChanged() {
	s.scans.clear()
	s.ends.drop()
}

// changedUpstream counts the folders whose LIST-STATUS differs from the
// state the index recorded (or that the index does not know): each will
// be planned with a connection of its own. Without LIST-STATUS it counts
// nothing (the plans dial as they go).
func (s *syncer) changedUpstream(ctx context.Context, acct index.AccountID, folders []remoteFolder) int {
	var known []*index.Folder
	if err := s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		known, err = tx.Folders(acct)
		return err
	}); err != nil {
		return 0
	}
	byName := make(map[string]*index.Folder, len(known))
	for _, f := range known {
		byName[f.Name] = f
	}
	n := 0
	for _, rf := range folders {
		st, f := rf.Status, byName[rf.Local]
		if st == nil {
			return 0
		}
		if f == nil || st.UIDValidity != f.UIDValidity || uint32(st.UIDNext) != f.UIDNext || st.HighestModSeq != f.HighestModSeq {
			n++
		}
	}
	return n
}

// prefetchIndex asks the index file into the page cache once n folders
// are known to be planned (index.Store.Prefetch): their plans read and
// write rows all over it, under the store's one writer, and a file out
// of the cache makes each of those a disk read of its own. A run that
// skips every folder reads a few pages and asks nothing. Once a run: a
// long-running agent's runs each ask again (the file may have left the
// cache since; one still in it costs a few system calls).
func (s *syncer) prefetchIndex(n int) {
	if n > 0 {
		s.prefetched.Do(s.opts.Index.Prefetch)
	}
}

// predial dials, in the background, the connections beyond the first that
// n folders to plan will use, less those dialed already (it may be called
// again once more is known, from the same goroutine or one that happens
// before); a worker that needs a connection takes one of them first
// (waiting for it if its dial is under way). attempts is DialRetry's:
// with one, a failure is only logged at debug level.
func (s *syncer) predial(ctx context.Context, n, attempts int) {
	k := min(s.opts.Connections, n) - 1 - s.dialed
	if k <= 0 {
		return
	}
	if s.spares == nil {
		s.spares = make(chan *imapclient.Client, s.opts.Connections-1)
	}
	s.dialed += k
	s.claims.Add(int32(k))
	warn := s.log.Warn
	if attempts <= 1 {
		warn = s.log.Debug
	}
	for range k {
		go func() {
			begin := time.Now()
			c, err := s.opts.Endpoint.DialRetry(ctx, attempts, warn)
			if err != nil {
				s.log.Debug("dialing ahead failed", "err", err)
				s.spares <- nil // the worker dials itself, and reports
				return
			}
			s.log.Debug("connected another", "took", time.Since(begin).Round(time.Millisecond))
			s.spares <- c
		}()
	}
}

// closeSpares logs out of the connections dialed ahead that no worker took.
func (s *syncer) closeSpares(ctx context.Context) {
	for b, ok := s.takeBound(); ok; b, ok = s.takeBound() {
		if b.c != nil {
			imapconn.Logout(ctx, b.c)
		}
	}
	for s.claims.Add(-1) >= 0 {
		if c := <-s.spares; c != nil {
			imapconn.Logout(ctx, c)
		}
	}
}

func (o *Options) push() bool { return o.Direction != "pull" }
func (o *Options) pull() bool { return o.Direction != "push" }

// pushDeletes: local deletions are carried out upstream.
func (o *Options) pushDeletes() bool {
	return o.push() && (o.Expunge == "both" || o.Expunge == "remote")
}

// pullDeletes: server expunges are carried out locally.
func (o *Options) pullDeletes() bool {
	return o.pull() && (o.Expunge == "both" || o.Expunge == "local")
}

// ErrTooManyDeletes is returned (wrapped) when a run would delete more of a
// folder than Options.MaxDeletePercent allows.
var ErrTooManyDeletes = errors.New("too many deletions")

func (o *Options) checkDeletes(folder string, n, total int, where string) error {
	if o.Force || n < 5 || n*100 <= o.MaxDeletePercent*total {
		return nil
	}
	return fmt.Errorf("%w: this run would delete %d of %d messages %s (more than %d%%); "+
		"check what happened, then run with --force", ErrTooManyDeletes, n, total, where, o.MaxDeletePercent)
}
