package index

import (
	"sync"
)

// DefaultFeedBuffer is the buffer of a subscription made with a size of
// 0 or less: the changes it holds before its reader must have caught up.
const DefaultFeedBuffer = 4096

// feed delivers committed changes to subscribers (see Subscribe).
type feed struct {
	// commit is held from just before a transaction with changes
	// commits until its changes are published: all commits go through
	// the one write connection, so publication order is commit order.
	commit sync.Mutex

	mu     sync.Mutex // guards what follows; publishing holds it
	subs   map[*Subscription]struct{}
	seq    uint64 // commits published
	closed bool
}

func newFeed() *feed {
	return &feed{subs: map[*Subscription]struct{}{}}
}

// Subscription is one subscriber's view of the change feed.
type Subscription struct {
	f    *feed
	ch   chan Change
	size int
	done bool // guarded by f.mu: ch is closed
}

// Subscribe starts a subscription to the store's committed changes: every
// transaction a Write commits after Subscribe returns delivers its changes
// on C, in commit order, a commit's changes together and in the order its
// transaction made them (each carries the commit's number, Change.Commit).
// A rolled-back Write and a dry-run view (DryRun) publish nothing.
//
// The subscription holds at most buffer changes (DefaultFeedBuffer when
// buffer <= 0) that its reader has not taken yet. Writers never wait for
// a reader: a commit that does not fit is not delivered; instead the
// subscription ends with one Change of kind Resync (its Commit is the
// first commit lost) and C is closed. The subscriber has lost changes: it
// subscribes again and then re-reads the state it follows (for a folder,
// ChangesSince from the last MODSEQ it saw). A commit larger than buffer
// always ends the subscription so.
//
// Close ends a subscription (C is closed); closing the store ends them all.
func (s *Store) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultFeedBuffer
	}
	// One place more than buffer: the Resync item always fits.
	sub := &Subscription{f: s.feed, ch: make(chan Change, buffer+1), size: buffer}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	if s.feed.closed {
		sub.done = true
		close(sub.ch)
		return sub
	}
	s.feed.subs[sub] = struct{}{}
	return sub
}

// C is the channel the subscription's changes arrive on; it is closed
// when the subscription ends (Close, a Resync, or the store's Close).
func (sub *Subscription) C() <-chan Change { return sub.ch }

// Close ends the subscription. It may be called more than once, and
// concurrently with writes.
func (sub *Subscription) Close() {
	sub.f.mu.Lock()
	defer sub.f.mu.Unlock()
	sub.end()
}

// end closes the subscription's channel; the caller holds f.mu.
func (sub *Subscription) end() {
	if sub.done {
		return
	}
	sub.done = true
	delete(sub.f.subs, sub)
	close(sub.ch)
}

// publish delivers one commit's changes to every subscription, never
// waiting: a subscription they do not fit ends with a Resync. The caller
// holds f.commit.
func (f *feed) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	for i := range changes {
		changes[i].Commit = f.seq
	}
	for sub := range f.subs {
		// Only publish sends on ch, under f.mu: its length only falls
		// between this check and the sends.
		if len(sub.ch)+len(changes) > sub.size {
			sub.ch <- Change{Kind: Resync, Commit: f.seq}
			sub.end()
			continue
		}
		for _, c := range changes {
			sub.ch <- c
		}
	}
}

// close ends every subscription (the store is closing).
func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for sub := range f.subs {
		sub.end()
	}
}
