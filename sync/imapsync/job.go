package imapsync

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

var imapSelectReadOnly = imap.SelectOptions{ReadOnly: true}

// folderJob is one folder's share of a run. Its outstanding counter holds
// one unit for the plan, one per queued chunk and one per message handed to
// the committer; when it drops to zero the folder's new state is recorded.
type folderJob struct {
	s     *syncer
	rf    remoteFolder
	f     *index.Folder // state before this run
	dir   *maildir.Dir  // index.Store.Dir of f; prepare creates it
	dirUV uint32        // the Maildir's recorded UIDVALIDITY at the start
	rows  int           // the index's rows of f, when the LIST has no STATUS (size)

	// Server state seen at SELECT (or LIST-STATUS); recorded when done.
	uidValidity   uint32
	uidNext       uint32
	highestModSeq uint64

	outstanding atomic.Int64
	mu          sync.Mutex
	res         FolderResult
	refused     []error // messages not stored (refuse)
}

// size is the folder's message count, for the order the jobs start in:
// the server's, from the LIST, else the rows the index holds.
func (j *folderJob) size() int {
	if j.rf.Status != nil && j.rf.Status.NumMessages != nil {
		return int(*j.rf.Status.NumMessages)
	}
	return j.rows
}

func (j *folderJob) fail(err error) {
	j.mu.Lock()
	if j.res.Err == nil {
		j.res.Err = err
	}
	j.mu.Unlock()
}

// refuse records a server message this run would not store (fetch.go:
// its body is too large). Unlike fail it does not stop the folder: the
// rest syncs, and when the folder is done the refusals are its error, so
// its state is not advanced and the next run tries the message again.
func (j *folderJob) refuse(err error) {
	j.mu.Lock()
	j.refused = append(j.refused, err)
	j.mu.Unlock()
	j.s.log.Warn("message not stored", "folder", j.rf.Local, "err", err)
}

func (j *folderJob) failed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.res.Err != nil
}

func (j *folderJob) update(fn func(r *FolderResult)) {
	j.mu.Lock()
	fn(&j.res)
	j.mu.Unlock()
}

func (j *folderJob) acquire(n int) { j.outstanding.Add(int64(n)) }

// release drops one unit; the last one records the folder's outcome.
func (j *folderJob) release() { releaseAll([]*folderJob{j}) }

// releaseAll drops one unit of each job and records the outcomes of those
// it finishes: those with nothing to do (skipped) in one commit that need
// not wait for the disk (see index.Store.WriteRelaxed), so a run that
// changes nothing syncs no file and commits once however many folders it
// looked at; the others in one commit.
func releaseAll(jobs []*folderJob) {
	var relaxed, durable []*folderJob
	for _, j := range jobs {
		if j.outstanding.Add(-1) != 0 {
			continue
		}
		if j.settle() {
			relaxed = append(relaxed, j)
		} else {
			durable = append(durable, j)
		}
	}
	recordOutcomes(relaxed, true)
	recordOutcomes(durable, false)
}

// settle makes the messages the server would not store the job's error,
// and reports whether the job had nothing to do (skipped, no error).
func (j *folderJob) settle() (idle bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.res.Err == nil && len(j.refused) > 0 {
		j.res.Err = j.refused[0]
		if n := len(j.refused); n > 1 {
			j.res.Err = fmt.Errorf("%w (and %d more messages not stored)", j.refused[0], n-1)
		}
	}
	return j.res.Skipped && j.res.Err == nil
}

// recordOutcomes records the finished jobs' outcomes in one commit: each
// folder's sync time and error or note, and the server state its run
// reached unless it failed.
func recordOutcomes(jobs []*folderJob, relaxed bool) {
	if len(jobs) == 0 {
		return
	}
	store := jobs[0].s.opts.Index
	write := store.Write
	if relaxed {
		write = store.WriteRelaxed
	}
	now := time.Now()
	werr := write(context.Background(), func(tx *index.Tx) error {
		for _, j := range jobs {
			if err := j.recordOutcome(tx, now); err != nil {
				return err
			}
		}
		return nil
	})
	for _, j := range jobs {
		if werr != nil {
			j.fail(werr)
		}
		j.mu.Lock()
		res := j.res
		j.mu.Unlock()
		j.s.log.Debug("folder done", "folder", j.rf.Local, "new", res.New, "flags", res.FlagsChanged,
			"expunged", res.Expunged, "rebuilt", res.Rebuilt, "skipped", res.Skipped, "err", res.Err)
	}
}

// recordOutcome writes the job's outcome (see recordOutcomes).
func (j *folderJob) recordOutcome(tx *index.Tx, now time.Time) error {
	j.mu.Lock()
	err, note := j.res.Err, j.res.Note()
	j.mu.Unlock()
	if err != nil {
		return tx.SetSyncResult(j.f.ID, now, err.Error())
	}
	if j.uidValidity != 0 {
		if err := tx.SetRemoteState(j.f.ID, j.uidValidity, j.uidNext, j.highestModSeq); err != nil {
			return err
		}
	}
	return tx.SetSyncResult(j.f.ID, now, note) // "" unless something was left undone
}
