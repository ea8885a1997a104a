package index

import "sync"

// keySet is the Maildir keys of the files Deliver is storing: renamed
// into their folder (or about to be) and not committed yet. A sync that
// scans the folder meanwhile (the local endpoints deliver while the
// agent syncs) must not take such a file for one another program put
// there: it would index it itself, and one of the two commits would fail
// on the folder's unique key.
type keySet struct {
	mu   sync.Mutex
	keys map[string]int
}

func (k *keySet) add(keys []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]int{}
	}
	for _, key := range keys {
		k.keys[key]++
	}
}

func (k *keySet) remove(keys []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range keys {
		if k.keys[key]--; k.keys[key] <= 0 {
			delete(k.keys, key)
		}
	}
}

// Delivering reports whether Deliver is storing a file with this Maildir
// key right now: the file may be in its folder already, its row not
// committed yet. Scans leave such a file alone; once Deliver returns, the
// row is there (or, on failure, the next scan indexes the file).
func (s *Store) Delivering(key string) bool {
	s.delivering.mu.Lock()
	defer s.delivering.mu.Unlock()
	return s.delivering.keys[key] > 0
}
