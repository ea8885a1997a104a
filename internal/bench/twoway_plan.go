package main

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// The twoway scenario's changes: which messages change, what both sides
// must hold afterwards, and how the changes are made on the server and in
// a Maildir.

// changePlan is one run's changes, the same for every peer.
type changePlan struct {
	serverSeen map[string][]string // folder -> Message-IDs whose \Seen the server toggles
	localSeen  map[string][]string // folder -> Message-IDs whose S a mail client toggles
	serverNew  []corpus.Message    // APPENDed on the server
	localNew   []corpus.Message    // written into the Maildir's new/
}

// planSize is how many changes of each kind a plan makes.
type planSize struct {
	serverSeen, serverNew, localSeen, localNew int
}

func (c planSize) total() int { return c.serverSeen + c.serverNew + c.localSeen + c.localNew }

func (p changePlan) count(m map[string][]string) int {
	n := 0
	for _, ids := range m {
		n += len(ids)
	}
	return n
}

// makePlan chooses run r's changes: c.serverSeen messages of the seeded
// ones spread over the folders in proportion to their size get \Seen
// toggled on the server, c.localSeen others get S toggled locally (in each
// folder the chosen messages are evenly spaced by UID, alternating server
// and local while both have some left, shifted by r from run to run), and
// the next corpus messages (opts) from next on are new, the first
// c.serverNew on the server, the following c.localNew locally.
func makePlan(base mirror, seeded map[string]int, c planSize, r int, seed int64, next int, opts corpus.Options) (changePlan, error) {
	p := changePlan{serverSeen: map[string][]string{}, localSeen: map[string][]string{}}
	names := slices.Sorted(maps.Keys(seeded))
	sizes := make([]int, len(names))
	for i, name := range names {
		sizes[i] = seeded[name]
	}
	server, local := spread(c.serverSeen, sizes), spread(c.localSeen, sizes)
	for i, name := range names {
		ks, kl, n0 := server[i], local[i], sizes[i]
		if ks+kl == 0 {
			continue
		}
		if ks+kl > n0 {
			return p, fmt.Errorf("folder %s: %d messages are too few for %d server and %d local flag changes", name, n0, ks, kl)
		}
		// The seeded messages have the lowest UIDs.
		type byUID struct {
			id  string
			uid imap.UID
		}
		var msgs []byUID
		for id, m := range base[name] {
			if m.UID == 0 {
				return p, fmt.Errorf("folder %s: <%s> has no UID", name, id)
			}
			msgs = append(msgs, byUID{id, m.UID})
		}
		if len(msgs) < n0 {
			return p, fmt.Errorf("folder %s holds %d messages, fewer than the %d seeded", name, len(msgs), n0)
		}
		slices.SortFunc(msgs, func(a, b byUID) int { return cmp.Compare(a.uid, b.uid) })
		tot, si, li := ks+kl, 0, 0
		for j := range tot {
			id := msgs[(j*n0/tot+r)%n0].id
			if (j%2 == 0 && si < ks) || li >= kl {
				p.serverSeen[name] = append(p.serverSeen[name], id)
				si++
			} else {
				p.localSeen[name] = append(p.localSeen[name], id)
				li++
			}
		}
	}
	for i := range c.serverNew + c.localNew {
		m := corpus.At(seed, next+i, opts)
		if _, ok := base[folderName(m.Folder)]; !ok {
			return p, fmt.Errorf("corpus message %d is for folder %q, not on the server", next+i, m.Folder)
		}
		if i < c.serverNew {
			p.serverNew = append(p.serverNew, m)
		} else {
			p.localNew = append(p.localNew, m)
		}
	}
	return p, nil
}

// expect is base with the plan's server changes, its local changes, or
// both. Messages new on the server come with their flags and keywords,
// locally new ones with none.
func (p changePlan) expect(base mirror, server, local bool) mirror {
	m := base.clone()
	toggle := func(seen map[string][]string) {
		for f, ids := range seen {
			for _, id := range ids {
				msg := m[f][id]
				msg.Flags = toggleFlag(msg.Flags, 'S')
				m[f][id] = msg
			}
		}
	}
	add := func(msgs []corpus.Message, flags bool) {
		for _, c := range msgs {
			m[folderName(c.Folder)][c.MessageID] = expectMessage(c, flags)
		}
	}
	if server {
		toggle(p.serverSeen)
		add(p.serverNew, true)
	}
	if local {
		toggle(p.localSeen)
		add(p.localNew, false)
	}
	return m
}

// applyChanges makes the plan's server changes on the account, whose state
// is cur: \Seen toggled (UID STORE), new messages APPENDed with their flags
// and dates.
func (s *dovecotServer) applyChanges(cur mirror, p changePlan) error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer logout(c)
	for _, name := range slices.Sorted(maps.Keys(p.serverSeen)) {
		if _, err := c.Select(name, nil).Wait(); err != nil {
			return fmt.Errorf("SELECT %s: %w", name, err)
		}
		var add, del imap.UIDSet
		for _, id := range p.serverSeen[name] {
			m, ok := cur[name][id]
			if !ok {
				return fmt.Errorf("%s: <%s> is not on the server", name, id)
			}
			if strings.Contains(m.Flags, "S") {
				del.AddNum(m.UID)
			} else {
				add.AddNum(m.UID)
			}
		}
		if err := storeSeen(c, add, del); err != nil {
			return fmt.Errorf("STORE %s: %w", name, err)
		}
	}
	a, err := s.d.Appender(s.user)
	if err != nil {
		return err
	}
	for _, m := range p.serverNew {
		if err := a.Append(m); err != nil {
			a.Close()
			return fmt.Errorf("APPEND: %w", err)
		}
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	return nil
}

// localSeq numbers the files applyLocal writes.
var localSeq atomic.Int64

// applyLocal makes the plan's local changes in a Maildir, as a mail client
// and a delivery agent do: a flag change renames the message file into
// cur/ with the S letter toggled in its info (the rest of the name as the
// sync program made it); a new message is written into tmp/ under a unique
// name and renamed into new/ (no info, no U= field). cur is the Maildir's
// state (paths), dirOf maps IMAP folder names to their directories.
func applyLocal(cur mirror, dirOf map[string]string, p changePlan) error {
	for _, name := range slices.Sorted(maps.Keys(p.localSeen)) {
		for _, id := range p.localSeen[name] {
			m, ok := cur[name][id]
			if !ok {
				return fmt.Errorf("%s: <%s> is not in the Maildir", name, id)
			}
			folderDir := filepath.Dir(filepath.Dir(m.Path))
			to := filepath.Join(folderDir, "cur", toggleLetter(filepath.Base(m.Path), 'S'))
			if err := os.Rename(m.Path, to); err != nil {
				return err
			}
		}
	}
	pid := os.Getpid()
	for _, m := range p.localNew {
		dir, ok := dirOf[folderName(m.Folder)]
		if !ok {
			return fmt.Errorf("no Maildir directory for folder %s", folderName(m.Folder))
		}
		now := time.Now()
		q := localSeq.Add(1)
		name := fmt.Sprintf("%d.M%dP%dQ%d.bench-client", now.Unix(), now.Nanosecond()/1000, pid, q)
		tmp := filepath.Join(dir, "tmp", name)
		body := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		if err := os.WriteFile(tmp, body, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			return err
		}
	}
	return nil
}

// toggleLetter is the file name a mail client gives a message file when it
// toggles a flag: the info after ":2," gets or loses the letter, the info's
// letters stay sorted, the rest of the name is kept. A name without info
// (a file in new/) gets ":2," and the letter.
func toggleLetter(name string, letter byte) string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return name + ":2," + string(letter)
	}
	info := []byte(name[i+3:])
	if j := bytes.IndexByte(info, letter); j >= 0 {
		info = slices.Delete(info, j, j+1)
	} else {
		info = append(info, letter)
		slices.Sort(info)
	}
	return name[:i+3] + string(info)
}

// toggleFlag toggles a letter in flags (letters among D F P R S T, sorted).
func toggleFlag(flags string, letter byte) string {
	return nameLetters(toggleLetter(":2,"+flags, letter))
}
