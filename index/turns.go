package index

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// Turns between a sync run and the local changes of one account. A run
// reads the Maildir and the rows of a folder once and acts on that reading
// across network round trips; a local endpoint's change (a MOVE, an
// EXPUNGE, an APPEND, a STORE) made in between would be half seen: the
// file in one folder, the row in another, a row the run holds already
// moved or gone. So they take turns, per account: a run holds its
// account's turn (SyncTurn) from the moment it has a connection to its
// end, and each local change waits for it and holds a shared turn while
// it runs (LocalChange and the door methods local.go gives the
// endpoints). Runs of different accounts, and local changes among
// themselves, do not wait for each other; reads never wait.
//
// A run reads the Maildir while it dials, before its turn: LocalChanges
// counts the local changes begun and ended, and a run whose count moved
// meanwhile (a change began, or one in flight ended) reads again.
type turns struct {
	mu    sync.Mutex
	locks map[AccountID]*sync.RWMutex
	local atomic.Uint64 // local changes begun, plus those ended
}

func (t *turns) lock(acct AccountID) *sync.RWMutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locks == nil {
		t.locks = map[AccountID]*sync.RWMutex{}
	}
	l := t.locks[acct]
	if l == nil {
		l = &sync.RWMutex{}
		t.locks[acct] = l
	}
	return l
}

// SyncTurn waits until no local change of acct is in flight and holds
// further ones back until release is called (once; later calls do
// nothing). The sync engines take it for a run.
func (s *Store) SyncTurn(acct AccountID) (release func()) {
	l := s.turns.lock(acct)
	l.Lock()
	return sync.OnceFunc(l.Unlock)
}

// LocalChanges counts the local changes begun and ended so far (see
// SyncTurn).
func (s *Store) LocalChanges() uint64 { return s.turns.local.Load() }

// LocalChange waits for the turn of a local change to the given folders
// (their accounts' runs, if any, to end) and returns its release. An
// endpoint holds it from before it reads the rows it changes until its
// door calls return (local.go's CopyTo, MoveTo, Expunge, and SetFlags
// and the folder methods); Append takes it itself. It must not be taken
// twice by one goroutine (a run waiting in between deadlocks both), nor
// by a sync run.
func (s *Store) LocalChange(ctx context.Context, folders ...FolderID) (release func(), err error) {
	var accts []AccountID
	err = s.Read(ctx, func(tx *ReadTx) error {
		for _, id := range folders {
			f, err := tx.Folder(id)
			if err != nil {
				return err
			}
			if !slices.Contains(accts, f.Account) {
				accts = append(accts, f.Account)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.LocalChangeOf(accts...), nil
}

// LocalChangeOf is LocalChange by account.
func (s *Store) LocalChangeOf(accts ...AccountID) (release func()) {
	release, _ = s.localChangeOf(accts, false)
	return release
}

// ErrTurnTaken is the error of a local change that would have to wait
// for a sync run of its account (TryLocalChangeOf's callers).
var ErrTurnTaken = errors.New("index: a sync run of the account holds its turn")

// TryLocalChangeOf is LocalChangeOf without waiting: ok is false (and
// nothing is held) when a sync run of one of accts holds its turn or
// waits for it.
func (s *Store) TryLocalChangeOf(accts ...AccountID) (release func(), ok bool) {
	return s.localChangeOf(accts, true)
}

// localChangeOf takes the turns of accts in ascending order (so that two
// takers never deadlock), waiting for each unless try.
func (s *Store) localChangeOf(accts []AccountID, try bool) (release func(), ok bool) {
	accts = slices.Clone(accts)
	slices.Sort(accts)
	accts = slices.Compact(accts)
	held := make([]*sync.RWMutex, 0, len(accts))
	for _, a := range accts {
		l := s.turns.lock(a)
		switch {
		case !try:
			l.RLock()
		case !l.TryRLock():
			for _, h := range held {
				h.RUnlock()
			}
			return nil, false
		}
		held = append(held, l)
	}
	s.turns.local.Add(1)
	return sync.OnceFunc(func() {
		s.turns.local.Add(1)
		for _, l := range held {
			l.RUnlock()
		}
	}), true
}
