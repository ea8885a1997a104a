package agenttest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// UpstreamStep makes one random change on the server to a message the
// upstream side owns: a new message (40%, also whenever it owns fewer
// than 5), new flags (30%), a move to another folder (15%) or a deletion
// (15%). It returns what it did; a message not (yet) where the model has
// it is skipped ("" and no error).
func UpstreamStep(s *Server) (string, error) {
	m := s.model
	live := 0
	for _, msg := range m.Messages() {
		if msg.Owner == Upstream && !msg.Gone {
			live++
		}
	}
	r := m.IntN(100)
	if live < 5 || r < 40 {
		folder := m.Folders[m.IntN(len(m.Folders))]
		msg, err := s.Deliver(folder, Upstream)
		return "upstream: new " + msg.ID + " in " + folder, err
	}
	msg, ok := m.Pick(Upstream, nil)
	if !ok {
		return "", nil
	}
	var what string
	var err error
	switch {
	case r < 70:
		f := m.RandomFlags(msg.Flags)
		what, err = fmt.Sprintf("upstream: flags of %s to %q", msg.ID, f.Info()), s.SetFlags(msg, f)
	case r < 85:
		dst := m.OtherFolder(msg.Folder)
		what, err = fmt.Sprintf("upstream: move %s from %s to %s", msg.ID, msg.Folder, dst), s.Move(msg, dst)
	default:
		what, err = "upstream: delete "+msg.ID, s.Delete(msg)
	}
	if errors.Is(err, ErrNotThere) {
		return "", nil
	}
	return what, err
}

// LocalStep makes one random change in the Maildir to a message the local
// side owns, as UpstreamStep does upstream: a new file (40%, or whenever
// it owns fewer than 5), new flags by a rename, a move to another folder
// or a deletion. Messages not (yet) in the Maildir are skipped.
func LocalStep(l *Maildir) (string, error) {
	m := l.model
	live := 0
	for _, msg := range m.Messages() {
		if msg.Owner == Local && !msg.Gone {
			live++
		}
	}
	r := m.IntN(100)
	if live < 5 || r < 40 {
		folder := m.Folders[m.IntN(len(m.Folders))]
		f := m.RandomFlags(255) // any set, none included
		msg, err := l.Add(folder, f, Local)
		return fmt.Sprintf("local: new %s in %s (%q)", msg.ID, folder, f.Info()), err
	}
	msg, ok := m.Pick(Local, nil)
	if !ok {
		return "", nil
	}
	var what string
	var err error
	switch {
	case r < 70:
		f := m.RandomFlags(msg.Flags)
		what, err = fmt.Sprintf("local: flags of %s to %q", msg.ID, f.Info()), l.SetFlags(msg, f)
	case r < 85:
		dst := m.OtherFolder(msg.Folder)
		what, err = fmt.Sprintf("local: move %s from %s to %s", msg.ID, msg.Folder, dst), l.Move(msg, dst)
	default:
		what, err = "local: delete "+msg.ID, l.Delete(msg)
	}
	if errors.Is(err, ErrNotThere) {
		return "", nil
	}
	return what, err
}

// RunSteps calls step every interval until ctx is done or step fails, and
// returns how many changes it made.
func RunSteps(ctx context.Context, interval time.Duration, step func() (string, error)) (int, error) {
	n := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return n, nil
		case <-t.C:
		}
		what, err := step()
		if err != nil {
			return n, fmt.Errorf("%s: %w", what, err)
		}
		if what != "" {
			n++
		}
	}
}

// Poll calls check every interval until it reports true, fails, or
// timeout passes; it returns when check first held, measured from start.
func Poll(timeout, interval time.Duration, check func() (bool, error)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := check()
		now := time.Now()
		if err != nil {
			return now, err
		}
		if ok {
			return now, nil
		}
		if now.After(deadline) {
			return now, fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(interval)
	}
}
