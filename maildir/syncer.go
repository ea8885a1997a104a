package maildir

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Syncer makes batches of deliveries durable for the runs over one store:
// one fsync per file, several at once. Each file's writeback began when
// its delivery was closed (startWriteback), so by the time a batch is
// synced most of its bytes are on the disk or on their way, and the fsyncs
// mostly wait for that and write the inodes.
//
// Why not one syncfs(2) per batch, as this package did before: syncfs
// writes back every dirty page of the file system, other programs' too.
// With a mail server, a browser or a build writing to the same disk, a
// commit of ten messages waited for all of it (on the bench machine, 95 ms
// for 100 messages, where their own fsyncs take 15 ms).
//
// Writeback errors. Linux reports a file's writeback error to each
// descriptor of that file that was open when it happened, and to the next
// one opened if none has reported it yet. A closed delivery's file is
// opened again for its fsync; only this package opens files in tmp/, so
// no one else has seen an error that happened meanwhile, and the fsync
// reports it. (Another run's sync of its own files hears nothing of ours:
// TestSyncerWritebackError.)
//
// A Syncer is safe for concurrent use: the runs of several accounts over
// one store share it, and together keep at most syncParallel fsyncs in
// flight.
type Syncer struct {
	root  string
	slots chan struct{} // one per fsync in flight
}

// syncParallel is how many fsyncs a store's Syncer keeps in flight. A few
// let the disk merge their cache flushes; more only queue.
const syncParallel = 8

// OpenSyncer returns the Syncer of the store at root, creating root if
// needed; Close it when the run is over.
func OpenSyncer(root string) (*Syncer, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	return &Syncer{root: root, slots: make(chan struct{}, syncParallel)}, nil
}

// Close ends the Syncer's run. A nil Syncer is closed already.
func (s *Syncer) Close() error { return nil }

// Sync makes the contents of the deliveries ds durable, before they are
// committed (Commit for each, then SyncDir for each folder). Those made
// durable by DeliverSync already are skipped. It returns the first error
// (naming the file); the others are synced all the same.
func (s *Syncer) Sync(ds []*Delivery) error {
	var todo []*Delivery
	for _, w := range ds {
		if w.done {
			return errors.New("maildir: sync: delivery already committed or aborted")
		}
		if !w.synced {
			todo = append(todo, w)
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, w := range todo {
		s.slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.syncFile()
			<-s.slots
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
