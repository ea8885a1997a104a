package maildir

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Syncer makes batches of deliveries durable for one run over one store,
// in one of two ways by the size of the batch:
//
//   - A batch of fewer than SyncfsMin files: one fsync per file, up to
//     syncParallel at once. A closed delivery's file is opened again for
//     its fsync; only this package opens files in tmp/, so no one has
//     heard of a writeback error of it meanwhile, and the fsync reports
//     it.
//   - A larger batch: one syncfs(2) on Linux, through a descriptor of the
//     store's root opened when the run starts and kept until it ends.
//
// Why both. syncfs writes back every dirty page of the file system, other
// programs' too: next to a busy mail server, 100 messages waited 95 ms for
// it, where their own fsyncs take 15 ms. But for a stream of full batches
// (a first sync) one syncfs per batch is the cheaper (a first sync of
// 10,000 messages on a journaled ext4 took 20% longer with an fsync per
// file). (Starting each file's writeback as it is closed, with
// sync_file_range, made the fsyncs quicker but the first sync slower
// still: 15%, on the fetching goroutines.)
//
// Why a large batch leaves the page cache once it is on disk: a batch of
// SyncfsMin or more is a stream (a first sync, a long catch-up), gigabytes
// that no one reads soon (a mail client opens one message at a time), and
// kept cached they push out what the machine does read again (the index,
// the Maildir's directories, a local mail server's files), and every new
// page the stream writes is one more the kernel must find. Dropped
// (posix_fadvise DONTNEED: clean pages, dropped at once), the stream's
// pages are reused by its next files. A first sync of 100,000 messages
// (8.7 GB) from a Dovecot on the same machine, four alternating runs
// each: 28 to 35 s, 16 to 25 s of it system time, instead of 36 to 46 s
// with 28 to 46 s. Smaller batches (an incremental run's few messages,
// which a mail client may open at once) stay cached.
//
// Why one descriptor for the whole run: Linux reports a file system's
// writeback error to each open descriptor once, and a descriptor opened
// after the error may not see it, when another caller (another account's
// run on the same file system) has seen it already. A descriptor opened
// before the run's first write sees every error that happens after it, so
// an I/O error always fails the batch it belongs to (and, on a shared file
// system, perhaps another run's batch as well: failing too often is safe).
//
// Deliveries on another file system than the root's (a folder that is a
// mount point or a symbolic link elsewhere) are fsynced one by one; so are
// all of them where syncfs is unavailable (not Linux, old kernels). A
// Syncer is safe for concurrent use.
type Syncer struct {
	root string

	mu   sync.Mutex
	fs   syncHandle      // the root's file system, opened by OpenSyncer; nil without syncfs
	devs map[string]bool // folder path -> on the root's file system
}

// OpenSyncer opens the store root (creating it if needed) for syncing;
// call it before the run writes anything, and Close when the run is over.
func OpenSyncer(root string) (*Syncer, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	h, err := openSyncHandle(root)
	if err != nil {
		return nil, fmt.Errorf("maildir: open %s for syncing: %w", root, err)
	}
	return &Syncer{root: root, fs: h, devs: map[string]bool{}}, nil
}

// Close releases the root's descriptor. A nil Syncer is closed already.
func (s *Syncer) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fs == nil {
		return nil
	}
	err := s.fs.close()
	s.fs = nil
	return err
}

// Sync makes the contents of the deliveries ds durable, before they are
// committed (Commit for each, then SyncDir for each folder). Those made
// durable by DeliverSync already are skipped.
func (s *Syncer) Sync(ds []*Delivery) error {
	var todo []*Delivery
	for _, w := range ds {
		if w.done {
			return errors.New("maildir: sync: delivery already committed or aborted")
		}
		if err := w.awaitAhead(); err != nil {
			return fileError("sync", w.path, err)
		}
		if !w.synced {
			todo = append(todo, w)
		}
	}
	if len(todo) < SyncfsMin {
		return syncEach(todo)
	}
	var own bool // some delivery is on the root's file system
	var others []*Delivery
	for _, w := range todo {
		if !w.closed {
			if err := w.bw.Flush(); err != nil {
				return fmt.Errorf("maildir: sync %s: %w", w.path, err)
			}
		}
		same, err := s.sameFS(w.dir.Path)
		if err != nil {
			return err
		}
		if same {
			own = true
		} else {
			others = append(others, w)
		}
	}
	if own {
		if err := s.syncfs(); errors.Is(err, errNoSyncfs) {
			others = todo
		} else if err != nil {
			return fmt.Errorf("maildir: sync %s: %w", s.root, err)
		}
	}
	if err := syncEach(others); err != nil {
		return err
	}
	for _, w := range todo { // on disk now: see "Why a large batch leaves the page cache"
		dropCached(w.path)
	}
	return nil
}

// SyncfsMin is the smallest batch Syncer.Sync makes durable with one
// syncfs: a smaller one is synced file by file, so its files are worth
// SyncAhead as they are closed.
const SyncfsMin = 128

// syncParallel is how many fsyncs syncEach keeps in flight: a few let
// the disk merge their cache flushes.
const syncParallel = 8

// syncEach fsyncs each delivery's file, up to syncParallel at once. It
// returns the first error (naming the file); the others are synced all
// the same.
func syncEach(ds []*Delivery) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, syncParallel)
	)
	for _, w := range ds {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.syncFile()
			<-slots
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fileError("sync", w.path, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// syncHandle is a descriptor of a directory kept open for syncfs(2)
// (openSyncHandle, per system).
type syncHandle interface {
	syncfs() error                      // errNoSyncfs where the kernel lacks it
	contains(path string) (bool, error) // path is on the same file system
	close() error
}

// errNoSyncfs: the kernel lacks syncfs(2).
var errNoSyncfs = errors.New("syncfs not available")

// syncfs syncs the root's file system; where the kernel lacks syncfs, it
// returns errNoSyncfs and makes every later Sync fsync each file.
func (s *Syncer) syncfs() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fs == nil {
		return errNoSyncfs
	}
	err := s.fs.syncfs()
	if errors.Is(err, errNoSyncfs) {
		s.fs.close()
		s.fs = nil
	}
	return err
}

// sameFS reports whether folder path is on the root's file system (and
// syncfs is there to sync it).
func (s *Syncer) sameFS(path string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fs == nil {
		return false, nil
	}
	if same, ok := s.devs[path]; ok {
		return same, nil
	}
	same, err := s.fs.contains(path)
	if err != nil {
		return false, fmt.Errorf("maildir: sync: %w", err)
	}
	s.devs[path] = same
	return same, nil
}
