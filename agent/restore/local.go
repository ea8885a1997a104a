package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/migrate"
)

// StoreOptions say what ToStore restores into the local store.
type StoreOptions struct {
	// Store is the live store (index.OpenStore); the caller holds its sync
	// lock.
	Store *index.Store
	// Folders are the snapshot's folders to restore (Select); nil: all.
	Folders []Folder
	Logger  *slog.Logger
	// Progress, if set, is told the messages to deliver (Expect, once)
	// and each batch delivered (Done).
	Progress migrate.Progress
}

// Batches: a Deliver of at most this many messages or bytes.
const (
	batchMessages = 256
	batchBytes    = 32 << 20
)

// localJob is one folder of a restore into the store.
type localJob struct {
	acctName string
	acct     index.AccountID
	src      *index.Folder // the snapshot's
	dst      *index.Folder // the store's
	msgs     []*localMsg
	todo     []*localMsg
	live     map[[32]byte]int // the store folder's files by content, a multiset
	rest     map[[32]byte]int // those the snapshot's messages did not match
	rep      migrate.FolderReport
}

// localMsg is one message of the snapshot.
type localMsg struct {
	m   *index.Message
	sum [32]byte // SHA-256 of the snapshot's file (its row's, or read)
	// alt is the SHA-256 of the file as the store wrote it, when it
	// differs from sum (the door turns CRLF into LF).
	alt *[32]byte
}

func (l *localMsg) size() int64 {
	if l.m.RFC822Size > 0 {
		return l.m.RFC822Size
	}
	return l.m.Size
}

// ToStore restores the snapshot's folders into the same accounts and
// folders of the local store (see the package documentation). It returns
// one report per account of the snapshot: per folder, the snapshot's
// messages (source), the store folder's after the run (destination),
// those delivered (copied), those still missing and the store's messages
// the snapshot does not have (extra).
func (s *Snapshot) ToStore(ctx context.Context, o StoreOptions) ([]*migrate.Report, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	progress := o.Progress
	if progress == nil {
		progress = noProgress{}
	}
	folders := o.Folders
	if folders == nil {
		var err error
		if folders, err = s.Folders(ctx); err != nil {
			return nil, err
		}
	}
	accounts, names := byAccount(folders)
	var reps []*migrate.Report
	var jobs []*localJob
	for _, acct := range accounts {
		rep := &migrate.Report{Source: acct, Dest: "the local store"}
		reps = append(reps, rep)
		for _, name := range names[acct] {
			j, err := s.planLocal(ctx, &o, acct, name)
			if err != nil {
				return reps, fmt.Errorf("%s:%s: %w", acct, name, err)
			}
			jobs = append(jobs, j)
		}
	}
	var n int
	var bytes int64
	for _, j := range jobs {
		n += len(j.todo)
		for _, m := range j.todo {
			bytes += m.size()
		}
	}
	progress.Expect(n, bytes)
	// A failure of the store (a full disk) stops the deliveries; a
	// message that cannot be restored (a damaged file) fails its folder
	// only.
	var fatal, failed error
	for _, j := range jobs {
		if fatal == nil {
			if err := s.deliverLocal(ctx, &o, j, progress); err != nil {
				j.rep.Err = err
				fatal = fmt.Errorf("%s:%s: %w", j.acctName, j.dst.Name, err)
			} else if j.rep.Err != nil && failed == nil {
				failed = fmt.Errorf("%s:%s: %w", j.acctName, j.dst.Name, j.rep.Err)
			}
		}
		if ctx.Err() == nil {
			if err := verifyLocal(ctx, o.Store, j); err != nil {
				j.rep.Err = err
				if fatal == nil {
					fatal = fmt.Errorf("verifying %s:%s: %w", j.acctName, j.dst.Name, err)
				}
			}
		}
	}
	runErr := fatal
	if runErr == nil {
		runErr = failed
	}
	i := 0
	for _, rep := range reps {
		for range names[rep.Source] {
			rep.Folders = append(rep.Folders, jobs[i].rep)
			i++
		}
	}
	if err := ctx.Err(); err != nil {
		runErr = err
	}
	return reps, runErr
}

type noProgress struct{}

func (noProgress) Expect(int, int64) {}
func (noProgress) Done(int, int64)   {}

// planLocal reads one folder of the snapshot, makes its store folder (and
// account) if needed, indexes the files a cut-short delivery left in it
// without their row, and finds the messages it lacks.
func (s *Snapshot) planLocal(ctx context.Context, o *StoreOptions, acct, name string) (*localJob, error) {
	j := &localJob{acctName: acct}
	j.rep.Dest, j.rep.Sources = name, []string{name}
	err := s.Index.Read(ctx, func(tx *index.ReadTx) error {
		id, err := tx.Account(acct)
		if err != nil {
			return err
		}
		if j.src, err = tx.FolderByName(id, name); err != nil {
			return err
		}
		rows, err := tx.Messages(j.src.ID)
		for _, m := range rows {
			j.msgs = append(j.msgs, &localMsg{m: m, sum: m.SHA256})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("the snapshot's index: %w", err)
	}
	for _, m := range j.msgs {
		j.rep.SourceCount++
		j.rep.SourceBytes += m.size()
		if m.sum == ([32]byte{}) {
			if m.sum, err = fileSum(s.Index, j.src, m.m); err != nil {
				return nil, fmt.Errorf("the snapshot's file: %w", err)
			}
		}
	}

	st := o.Store
	var existed bool
	err = st.Write(ctx, func(tx *index.Tx) error {
		var err error
		if j.acct, err = tx.EnsureAccount(acct); err != nil {
			return err
		}
		_, err = tx.FolderByName(j.acct, name)
		existed = err == nil
		if errors.Is(err, index.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := maildir.MarkAccount(st.Root(), acct); err != nil {
		return nil, err
	}
	if j.dst, err = st.CreateFolder(ctx, j.acct, name, nil); err != nil {
		return nil, err
	}
	j.rep.Created = !existed
	snap := make(map[[32]byte]*index.Message, len(j.msgs))
	for _, m := range j.msgs {
		snap[m.sum] = m.m
	}
	if err := adoptOrphans(ctx, st, j.dst, snap); err != nil {
		return nil, err
	}
	if j.live, err = liveSums(ctx, st, j.dst); err != nil {
		return nil, err
	}
	j.rest = clone(j.live)
	for _, m := range j.msgs {
		if !take(j.rest, m.sum) {
			j.todo = append(j.todo, m)
		}
	}
	o.Logger.Info("planned folder", "account", acct, "folder", name, "snapshot", len(j.msgs), "store", total(j.live), "missing", len(j.todo))
	return j, nil
}

// adoptOrphans indexes the files of folder f that have no row and carry
// no upstream UID: what a delivery cut short between its renames and its
// commit leaves. They are indexed as the sync would index them, as new
// local messages (index.Store.FileMessages: flags from the name, the
// internal date from the modification time, which arrival sets), and,
// when their bytes are a snapshot message's (snap, by SHA-256), with its
// keywords and internal date, as the delivery would have recorded them.
// Files with a UID tag are the sync's to recover; they have no row yet,
// so liveSums reads them too.
func adoptOrphans(ctx context.Context, st *index.Store, f *index.Folder, snap map[[32]byte]*index.Message) error {
	d, err := st.Dir(*f)
	if err != nil {
		return err
	}
	entries, err := d.Scan()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		rows, err := tx.FileRows(f.ID)
		for _, m := range rows {
			known[m.Key] = true
		}
		return err
	})
	if err != nil {
		return err
	}
	var orphans []maildir.Entry
	for _, e := range entries {
		if !known[e.Key] && e.UID == 0 {
			orphans = append(orphans, e)
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	found, err := st.FileMessages(f, orphans, false)
	if err != nil {
		return err
	}
	var added []*index.NewMessage
	for _, nm := range found {
		if nm == nil {
			continue
		}
		if m := snap[nm.SHA256]; m != nil {
			nm.Keywords = m.Keywords
			if !m.InternalDate.IsZero() {
				nm.InternalDate = m.InternalDate
			}
			nm.SyncedFlags, nm.SyncedKeywords = 0, nil
		}
		added = append(added, nm)
	}
	return st.Write(ctx, func(tx *index.Tx) error {
		var fresh []*index.NewMessage
		for _, nm := range added {
			if _, err := tx.MessageIDByKey(f.ID, nm.Key); errors.Is(err, index.ErrNotFound) {
				fresh = append(fresh, nm)
			} else if err != nil {
				return err
			}
		}
		_, err := tx.AddMessages(fresh)
		return err
	})
}

// liveSums returns the contents of folder f's files, as a multiset of
// SHA-256s: its rows' (read from the file when a row does not record it)
// and those of files without a row.
func liveSums(ctx context.Context, st *index.Store, f *index.Folder) (map[[32]byte]int, error) {
	var rows []*index.Message
	err := st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.Messages(f.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[[32]byte]int{}
	known := map[string]bool{}
	for _, m := range rows {
		known[m.Key] = true
		sum := m.SHA256
		if sum == ([32]byte{}) {
			if sum, err = fileSum(st, f, m); errors.Is(err, index.ErrNotFound) || errors.Is(err, errGone) {
				continue // the file is gone: the sync forgets the row
			} else if err != nil {
				return nil, err
			}
		}
		out[sum]++
	}
	d, err := st.Dir(*f)
	if err != nil {
		return nil, err
	}
	entries, err := d.Scan()
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if known[e.Key] {
			continue
		}
		sum, err := fileSum(st, f, &index.Message{Key: e.Key, File: e.Sub + "/" + e.Name})
		if err != nil && !errors.Is(err, errGone) {
			return nil, err
		}
		if err == nil {
			out[sum]++
		}
	}
	return out, nil
}

var errGone = errors.New("the message file is gone")

// fileSum reads the SHA-256 of message m's file in folder f of st.
func fileSum(st *index.Store, f *index.Folder, m *index.Message) ([32]byte, error) {
	b, err := st.OpenMessage(f, m)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return [32]byte{}, fmt.Errorf("%s/%s: %w", f.Name, m.File, errGone)
		}
		return [32]byte{}, err
	}
	defer b.Close()
	h := sha256.New()
	if _, err := io.Copy(h, b); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// deliverLocal delivers the messages folder j lacks, in batches. A
// message that cannot be restored is counted (Failed) and the others go
// on; the first such failure is j.rep.Err. The error is the store's
// failure, which ends the run.
func (s *Snapshot) deliverLocal(ctx context.Context, o *StoreOptions, j *localJob, progress migrate.Progress) error {
	st := o.Store
	d, err := st.Dir(*j.dst)
	if err != nil {
		return err
	}
	var batch []*index.Arrival
	var batchSize int64
	var sizes []int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		release := st.LocalChangeOf(j.acct)
		err := st.Deliver(ctx, &index.Batch{Arrivals: batch})
		release()
		if err != nil {
			return err
		}
		var n int64
		for _, sz := range sizes {
			n += sz
		}
		j.rep.Copied += len(batch)
		j.rep.CopiedBytes += n
		progress.Done(len(batch), n)
		batch, sizes, batchSize = batch[:0], sizes[:0], 0
		return nil
	}
	var firstErr error
	for _, m := range j.todo {
		if err := ctx.Err(); err != nil {
			break
		}
		a, err := s.arrival(d, j, m)
		if err != nil {
			j.rep.Failed++
			if firstErr == nil {
				firstErr = err
			}
			o.Logger.Warn("message not restored", "folder", j.dst.Name, "key", m.m.Key, "err", err)
			continue
		}
		if a == nil { // present after all (as the store writes it)
			progress.Done(1, m.size())
			continue
		}
		batch = append(batch, a)
		sizes = append(sizes, m.size())
		batchSize += a.File.Size()
		if len(batch) >= batchMessages || batchSize >= batchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if firstErr != nil {
		j.rep.Err = fmt.Errorf("%d messages not restored; the first: %w", j.rep.Failed, firstErr)
	}
	return nil
}

// arrival writes message m of the snapshot into the tmp/ of d (the store
// folder's Maildir) and returns its arrival: a new local message with the
// snapshot's flags, keywords and internal date. nil: the file as the store
// writes it has other bytes than the snapshot's (CRLF turned into LF), and
// the folder has those in a file no other message of the snapshot
// matched (j.rest, which it takes). A snapshot file whose bytes differ
// from its row's SHA-256 is damaged: an error, nothing delivered.
func (s *Snapshot) arrival(d *maildir.Dir, j *localJob, m *localMsg) (*index.Arrival, error) {
	b, err := s.Index.OpenMessage(j.src, m.m)
	if err != nil {
		return nil, fmt.Errorf("the snapshot's file %s/%s: %w", j.src.Name, m.m.File, err)
	}
	defer b.Close()
	dlv, err := d.NewDelivery()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			dlv.Abort()
		}
	}()
	h := sha256.New()
	if _, err := io.Copy(dlv, io.TeeReader(b, h)); err != nil {
		return nil, err
	}
	if err := dlv.Close(); err != nil {
		return nil, err
	}
	date := m.m.InternalDate
	if date.IsZero() {
		date = m.m.Header.Date
	}
	if date.IsZero() {
		date = b.ModTime
	}
	// The file's modification time is the internal date, as the engines
	// leave it (a file indexed from disk takes it from there).
	if err := os.Chtimes(dlv.Path(), date, date); err != nil {
		return nil, err
	}
	var raw [32]byte
	h.Sum(raw[:0])
	if raw != m.sum {
		return nil, fmt.Errorf("the snapshot's file %s/%s differs from its index row: damaged (postfach verify names it)", j.src.Name, m.m.File)
	}
	if sum := dlv.Sum(); sum != m.sum {
		m.alt = &sum
		if take(j.rest, sum) {
			return nil, nil
		}
	}
	size, err := maildir.FileCRLFSize(dlv.Path())
	if err != nil {
		return nil, err
	}
	a := &index.Arrival{Folder: j.dst, File: dlv}
	r := &a.Row
	r.DeferText = true
	r.Flags, r.Keywords = m.m.Flags, m.m.Keywords
	r.RFC822Size = size
	r.InternalDate = date
	r.Header = index.ParseHeader(dlv.Header())
	ok = true
	return a, nil
}

// verifyLocal matches the snapshot's messages of j against its store
// folder as it is now.
func verifyLocal(ctx context.Context, st *index.Store, j *localJob) error {
	live, err := liveSums(ctx, st, j.dst)
	if err != nil {
		return err
	}
	j.rep.DestCount = total(live)
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		rows, err := tx.Messages(j.dst.ID)
		for _, m := range rows {
			if m.RFC822Size > 0 {
				j.rep.DestBytes += m.RFC822Size
			} else {
				j.rep.DestBytes += m.Size
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	j.rep.Missing = 0
	for _, m := range j.msgs {
		if !take(live, m.sum) && (m.alt == nil || !take(live, *m.alt)) {
			j.rep.Missing++
		}
	}
	j.rep.Extra = total(live)
	return nil
}

func take(set map[[32]byte]int, sum [32]byte) bool {
	if set[sum] > 0 {
		set[sum]--
		return true
	}
	return false
}

func total(set map[[32]byte]int) int {
	n := 0
	for _, c := range set {
		n += c
	}
	return n
}

func clone(set map[[32]byte]int) map[[32]byte]int {
	out := make(map[[32]byte]int, len(set))
	for k, v := range set {
		out[k] = v
	}
	return out
}
