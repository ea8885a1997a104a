package imapd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// subscriptions is the set of unsubscribed mailboxes: every folder is
// subscribed (LSUB and LIST (SUBSCRIBED) show it) unless a client
// unsubscribed it. The set is kept by mailbox name, one a line, in
// <store>/.postfach/imapd-unsubscribed (0600), rewritten whole on a
// change (it is small).
type subscriptions struct {
	path string
	mu   sync.Mutex
	off  map[string]bool
}

func loadSubscriptions(root string) *subscriptions {
	s := &subscriptions{path: filepath.Join(root, ".postfach", "imapd-unsubscribed"), off: map[string]bool{}}
	f, err := os.Open(s.path)
	if err != nil {
		return s // none yet (or unreadable: all subscribed)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := sc.Text(); name != "" {
			s.off[name] = true
		}
	}
	return s
}

func (s *subscriptions) subscribed(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.off[name]
}

// set subscribes (on) or unsubscribes name.
func (s *subscriptions) set(name string, on bool) error {
	if strings.ContainsAny(name, "\r\n") {
		return errNo("Mailbox names hold no line breaks")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off[name] == !on {
		return nil
	}
	if on {
		delete(s.off, name)
	} else {
		s.off[name] = true
	}
	return s.save()
}

// forget drops what is known of name and the names below it (deleted).
func (s *subscriptions) forget(name string) {
	s.rename(name, "")
}

// rename carries the state of name and the names below it to newName
// ("" drops it).
func (s *subscriptions) rename(name, newName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for n := range s.off {
		rest, ok := strings.CutPrefix(n, name)
		if !ok || (rest != "" && rest[0] != delim) {
			continue
		}
		delete(s.off, n)
		if newName != "" {
			s.off[newName+rest] = true
		}
		changed = true
	}
	if changed {
		_ = s.save() // a failed write leaves the old names, which are gone anyway
	}
}

// save writes the set durably enough (a new file renamed over the old).
// The caller holds mu.
func (s *subscriptions) save() error {
	names := make([]string, 0, len(s.off))
	for n := range s.off {
		names = append(names, n)
	}
	sort.Strings(names)
	tmp := s.path + ".tmp"
	data := strings.Join(names, "\n")
	if data != "" {
		data += "\n"
	}
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("imapd: saving subscriptions: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("imapd: saving subscriptions: %w", err)
	}
	return nil
}
