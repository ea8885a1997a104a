package imapsync

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/sync/imapconn"
)

// The run's workers: each owns one connection and takes tasks (plan a
// folder, fetch a chunk of its new messages) from one queue.

// task is a unit of work: plan a folder (uids == nil) or fetch a chunk.
type task struct {
	job  *folderJob
	uids []uint32
}

// queue is an unbounded FIFO of tasks that closes itself when it is empty
// and no task is running (running tasks may push more).
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []task
	running int
	chunks  int // items that fetch a chunk (task.uids)
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(t task) {
	q.mu.Lock()
	q.items = append(q.items, t)
	if t.uids != nil {
		q.chunks++
	}
	q.mu.Unlock()
	q.cond.Signal()
}

// claim counts as running a task handed to a worker past the queue, as
// pop does; the worker calls finish after it.
func (q *queue) claim() {
	q.mu.Lock()
	q.running++
	q.mu.Unlock()
}

// pop returns the next task, or false when all work is done. The caller
// must call finish after the task.
func (q *queue) pop() (task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 {
		if q.running == 0 {
			q.cond.Broadcast()
			return task{}, false
		}
		q.cond.Wait()
	}
	t := q.items[0]
	q.items = q.items[1:]
	if t.uids != nil {
		q.chunks--
	}
	q.running++
	return t, true
}

// last reports whether the one task running is the last: none waits.
func (q *queue) last() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) == 0 && q.running <= 1
}

// streaming reports whether chunks of new messages wait to be fetched:
// a stream of downloads (a first sync), not a folder's few.
func (q *queue) streaming() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.chunks > 0
}

func (q *queue) finish() {
	q.mu.Lock()
	q.running--
	q.mu.Unlock()
	q.cond.Broadcast()
}

// worker owns one connection.
type worker struct {
	s        *syncer
	c        *imapclient.Client
	selected string
	start    *task // its first task, claimed past the queue (runJobs)
}

func (w *worker) run(ctx context.Context) {
	defer func() {
		if w.c != nil {
			imapconn.Logout(ctx, w.c)
		}
	}()
	for {
		t, ok := task{}, true
		if w.start != nil {
			t, w.start = *w.start, nil
		} else if t, ok = w.s.q.pop(); !ok {
			// No work is left for anyone, and every upload was waited
			// for: the uploader is logged out of beside this
			// connection (runJobs waits for it).
			go w.s.up.Close()
			return
		}
		err := w.do(ctx, t)
		if err != nil {
			t.job.fail(err)
			if isConnErr(err) && w.c != nil {
				go w.c.Close() // see abort
				w.c = nil
			}
		}
		t.job.release()
		w.s.q.finish()
	}
}

// takeBound gives the worker, if one is left, a connection dialed ahead on
// which a folder was selected ahead (bindSpares), and as its first task
// that folder's plan, held out of the queue for it (held, by server name;
// runJobs): no other worker SELECTs that folder again. It waits for the
// connection's dial. If that dial failed, the plan goes to the queue.
func (w *worker) takeBound(held map[string]*folderJob) {
	b, ok := w.s.takeBound()
	if !ok {
		return
	}
	j := held[b.remote]
	switch {
	case b.c != nil:
		w.c, w.selected = b.c, ""
		if j != nil {
			w.start = &task{job: j}
		}
	case j != nil:
		w.s.q.push(task{job: j})
		w.s.q.finish() // runJobs claimed it
	}
}

func (w *worker) do(ctx context.Context, t task) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if t.job.failed() {
		return nil
	}
	if w.c == nil && w.s.claims.Add(-1) >= 0 {
		if c := <-w.s.spares; c != nil {
			w.c, w.selected = c, ""
		}
	}
	if w.c == nil {
		if p := w.s.dialErr.Load(); p != nil {
			return *p
		}
		begin := time.Now()
		c, err := w.s.opts.Endpoint.DialRetry(ctx, w.s.opts.DialAttempts, w.s.log.Warn)
		if err != nil {
			w.s.dialErr.CompareAndSwap(nil, &err)
			return err
		}
		w.s.log.Debug("connected another", "took", time.Since(begin).Round(time.Millisecond))
		w.c, w.selected = c, ""
	}
	c := w.c
	stop := context.AfterFunc(ctx, func() { go c.Close() }) // see abort
	defer stop()
	if t.uids == nil {
		begin := time.Now()
		err := w.plan(ctx, t.job)
		w.s.log.Debug("planned", "folder", t.job.rf.Local, "took", time.Since(begin).Round(time.Millisecond))
		return err
	}
	return w.fetch(ctx, t.job, t.uids)
}

func isConnErr(err error) bool {
	var ce *imapconn.ConnError
	if errors.As(err, &ce) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errConn)
}

var errConn = imapconn.ErrConnLost

func (w *worker) selectFolder(job *folderJob) error {
	if w.selected == job.rf.Remote {
		return nil
	}
	_, err := w.c.Select(job.rf.Remote, &imapSelectReadOnly).Wait()
	if err != nil {
		w.selected = ""
		return err
	}
	w.selected = job.rf.Remote
	return nil
}
