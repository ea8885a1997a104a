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

func (p changePlan) count(m map[string][]string) int {
	n := 0
	for _, ids := range m {
		n += len(ids)
	}
	return n
}

// makePlan chooses run r's changes: k messages of the seeded ones spread
// over the folders in proportion to their size get \Seen toggled on the
// server, k others get S toggled locally (in each folder the 2k' chosen
// messages are evenly spaced by UID, alternating server and local, shifted
// by r from run to run), and corpus messages next..next+k-1 are new on the
// server, next+k..next+2k-1 new locally.
func makePlan(base mirror, seeded map[string]int, k, r int, seed int64, next int) (changePlan, error) {
	p := changePlan{serverSeen: map[string][]string{}, localSeen: map[string][]string{}}
	names := slices.Sorted(maps.Keys(seeded))
	sizes := make([]int, len(names))
	for i, name := range names {
		sizes[i] = seeded[name]
	}
	for i, kf := range spread(k, sizes) {
		if kf == 0 {
			continue
		}
		name, n0 := names[i], sizes[i]
		if 2*kf > n0 {
			return p, fmt.Errorf("folder %s: %d messages are too few for %d server and %d local flag changes", name, n0, kf, kf)
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
		for j := range 2 * kf {
			id := msgs[(j*n0/(2*kf)+r)%n0].id
			if j%2 == 0 {
				p.serverSeen[name] = append(p.serverSeen[name], id)
			} else {
				p.localSeen[name] = append(p.localSeen[name], id)
			}
		}
	}
	for i := range 2 * k {
		m := corpus.At(seed, next+i, corpus.Options{})
		if _, ok := base[folderName(m.Folder)]; !ok {
			return p, fmt.Errorf("corpus message %d is for folder %q, not on the server", next+i, m.Folder)
		}
		if i < k {
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
