package imapsync

import (
	"context"
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
	s       *syncer
	rf      remoteFolder
	f       *index.Folder // state before this run
	dirPath string
	dir     *maildir.Dir
	dirUV   uint32 // the Maildir's recorded UIDVALIDITY at the start

	// Server state seen at SELECT (or LIST-STATUS); recorded when done.
	uidValidity   uint32
	uidNext       uint32
	highestModSeq uint64

	outstanding atomic.Int64
	mu          sync.Mutex
	res         FolderResult
}

func (j *folderJob) size() int {
	if j.rf.Status != nil && j.rf.Status.NumMessages != nil {
		return int(*j.rf.Status.NumMessages)
	}
	return 0
}

func (j *folderJob) fail(err error) {
	j.mu.Lock()
	if j.res.Err == nil {
		j.res.Err = err
	}
	j.mu.Unlock()
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
func (j *folderJob) release() {
	if j.outstanding.Add(-1) == 0 {
		j.finish()
	}
}

func (j *folderJob) finish() {
	j.mu.Lock()
	err, note := j.res.Err, j.res.Note()
	j.mu.Unlock()
	now := time.Now()
	werr := j.s.opts.Index.Write(context.Background(), func(tx *index.Tx) error {
		if err != nil {
			return tx.SetSyncResult(j.f.ID, now, err.Error())
		}
		if j.uidValidity != 0 {
			if err := tx.SetRemoteState(j.f.ID, j.uidValidity, j.uidNext, j.highestModSeq); err != nil {
				return err
			}
		}
		return tx.SetSyncResult(j.f.ID, now, note) // "" unless something was left undone
	})
	if werr != nil && err == nil {
		j.fail(werr)
	}
	j.mu.Lock()
	res := j.res
	j.mu.Unlock()
	j.s.log.Debug("folder done", "folder", j.rf.Local, "new", res.New, "flags", res.FlagsChanged,
		"expunged", res.Expunged, "rebuilt", res.Rebuilt, "skipped", res.Skipped, "err", res.Err)
}
