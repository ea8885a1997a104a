package pop3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postfach/postfach/index"
)

// list reads the server's listing and gives each message its identity: its
// UIDL, or a content hash when the server has no UIDL or repeats one. A
// message whose identity repeats an earlier one is skipped.
func (f *fetcher) list(ctx context.Context, c *Client) ([]entry, error) {
	uidls, err := c.UIDL()
	var perr *Error
	if errors.As(err, &perr) {
		f.res.NoUIDL = true
		f.log.Warn("pop3 server has no UIDL: recognizing messages by a hash of their header and their size; "+
			"messages with the same header and size are fetched once", "reply", perr.Reply)
	} else if err != nil {
		return nil, err
	}
	list, err := c.List()
	if err != nil {
		return nil, err
	}
	sizes := make(map[int]int64, len(list))
	for _, m := range list {
		sizes[m.Num] = m.Size
	}
	if f.res.NoUIDL {
		uidls = list
		for i := range uidls {
			uidls[i].UID = ""
		}
	}
	entries := make([]entry, 0, len(uidls))
	seen := make(map[string]bool, len(uidls))
	dupUIDs, dupContent := 0, 0
	for _, m := range uidls {
		e := entry{num: m.Num, size: sizes[m.Num], id: m.UID}
		if e.id == "" || seen[e.id] {
			if e.id != "" {
				dupUIDs++
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if e.id, e.hdr, err = contentID(c, e.num, e.size); err != nil {
				return nil, err
			}
			if seen[e.id] {
				dupContent++
				e.id = ""
			}
		}
		if e.id != "" {
			seen[e.id] = true
		} else {
			f.res.Skipped++
		}
		entries = append(entries, e)
	}
	if dupUIDs > 0 {
		f.log.Warn("pop3 server repeats UIDLs: the first message keeps the UIDL, the others are recognized by a hash of their header and size",
			"count", dupUIDs)
	}
	if dupContent > 0 {
		f.log.Warn("pop3 server has messages that cannot be told apart (same UIDL or none, same header and size): fetching only the first",
			"skipped", dupContent)
	}
	f.res.OnServer = len(entries)

	return entries, f.forget(ctx, seen)
}

// forget removes the known identities that the listing does not show: their
// messages left the server (deleted by us in a run whose QUIT reply was
// lost, or by someone else). The identity names nothing any more, and a
// message the server gives it later is a new one. The stored copies stay.
func (f *fetcher) forget(ctx context.Context, seen map[string]bool) error {
	var gone []string
	for id := range f.known {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	err := f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.ForgetPOP3UIDLs(f.acct, gone) })
	if err != nil {
		return err
	}
	for _, id := range gone {
		delete(f.known, id)
	}
	f.log.Debug("forgot the identities of stored messages no longer on the server", "count", len(gone))
	return nil
}

// contentID is the substitute identity of message num: a hash of its header
// (TOP num 0, as the server sends it) and its size. It also returns the
// hash of the header as it would be stored (headerHasher), for check.
func contentID(c *Client, num int, size int64) (string, *[32]byte, error) {
	r, err := c.Top(num, 0)
	if err != nil {
		return "", nil, err
	}
	LimitBody(r, num, size) // a header is not longer than its message
	h := sha256.New()
	hh := newHeaderHasher(true)
	_, err = io.Copy(io.MultiWriter(h, hh), r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, err
	}
	sum := hh.Sum()
	return hashIDPrefix + hex.EncodeToString(h.Sum(nil)) + " " + strconv.FormatInt(size, 10), &sum, nil
}

// plan decides what to do with each listed message whose identity is known,
// and returns the messages to download: those with an unknown identity, and
// those whose identity named another, earlier message (the server reused
// it): the listed size differs from the one recorded, or the header does
// (check). The header is read (TOP n 0, pipelined) for the known messages
// due for deletion, and for all known messages once one of them has changed
// its size: the server is reusing identities then, as after a move to
// another backend that numbers its messages from 1 again. A known message
// due for deletion is marked deletable only when check proves its stored
// copy is its own.
func (f *fetcher) plan(ctx context.Context, c *Client, entries []entry) ([]entry, error) {
	now := timeNow()
	resized := false
	for _, e := range entries {
		if u, ok := f.known[e.id]; ok && e.id != "" && u.RFC822Size != 0 && u.RFC822Size != e.size {
			resized = true
		}
	}
	type toCheck struct {
		e    entry
		u    index.POP3UIDL
		dele bool
	}
	var todo []entry
	var checks []toCheck
	var tops []int // messages whose header check needs read
	for _, e := range entries {
		if e.id == "" {
			continue
		}
		u, ok := f.known[e.id]
		if !ok {
			todo = append(todo, e)
			continue
		}
		if u.RFC822Size != 0 && u.RFC822Size != e.size {
			f.reused(e, "its size differs")
			todo = append(todo, e)
			continue
		}
		dele := f.due(u.StoredAt, now)
		content := strings.HasPrefix(e.id, hashIDPrefix)
		if !dele && (!resized || content) {
			continue
		}
		checks = append(checks, toCheck{e, u, dele})
		if e.hdr == nil && !content {
			tops = append(tops, e.num)
		}
	}
	hdrs, err := f.headers(ctx, c, tops)
	if err != nil {
		return nil, err
	}
	for _, k := range checks {
		hdr := k.e.hdr
		if h, ok := hdrs[k.e.num]; ok {
			hdr = &h
		}
		v, why, err := f.check(ctx, k.e, k.u, k.dele, hdr)
		if err != nil {
			return nil, err
		}
		switch {
		case v == reused:
			f.reused(k.e, why)
			todo = append(todo, k.e)
		case !k.dele:
		case v == proven:
			f.proven[k.e.num] = true
		case v == byContent:
			todo = append(todo, k.e)
		case v == unproven:
			f.res.Unproven++
			f.log.Debug("not deleting a message on the server: "+why, "num", k.e.num, "uidl", k.e.id)
		}
	}
	if f.res.Unproven > 0 {
		f.log.Warn("leaving messages on the server that are due for deletion: their local copy is gone or changed, "+
			"or the server refused TOP, so it cannot be shown that they are stored", "count", f.res.Unproven)
	}
	slices.SortFunc(todo, func(a, b entry) int { return a.num - b.num })
	return todo, nil
}

// maxTopRefusals is how many TOP commands in a row the server may refuse
// before headers stops asking: it does not have TOP.
const maxTopRefusals = 3

// headers reads the header hashes (headerHasher) of the messages nums with
// pipelined TOP n 0. A message whose TOP the server refuses has none.
func (f *fetcher) headers(ctx context.Context, c *Client, nums []int) (map[int][32]byte, error) {
	out := make(map[int][32]byte, len(nums))
	refused := 0
	for len(nums) > 0 {
		got := 0 // messages of nums handed to the callback
		err := c.TopMany(ctx, nums, 0, func(num int, r io.Reader) error {
			got++
			hh := newHeaderHasher(true)
			if _, err := io.Copy(hh, r); err != nil {
				return err
			}
			out[num] = hh.Sum()
			return nil
		})
		var perr *Error
		if !errors.As(err, &perr) || got >= len(nums) {
			return out, err
		}
		// TOP of nums[got] was refused; the session is still usable.
		f.log.Debug("pop3 server refused TOP", "num", nums[got], "err", err)
		if got > 0 {
			refused = 0
		}
		if refused++; refused >= maxTopRefusals {
			f.log.Warn("pop3 server refuses TOP: messages that an earlier run stored cannot be compared with their local copy")
			return out, nil
		}
		nums = nums[got+1:]
	}
	return out, nil
}

// due reports whether a message stored at storedAt is to be deleted on the
// server now.
func (f *fetcher) due(storedAt, now time.Time) bool {
	return !f.o.Keep || (f.o.DeleteAfterDays > 0 && !now.Before(storedAt.AddDate(0, 0, f.o.DeleteAfterDays)))
}

// dueStored reports whether e, whose content is stored, is to be deleted
// on the server now: stored by this session (thisSession: downloaded and
// committed, or to be in a dry run) it counts as stored now (such a
// message is not in f.known); else as its known identity says (none: not
// due).
func (f *fetcher) dueStored(e entry, thisSession bool, now time.Time) bool {
	if thisSession {
		return f.due(now, now)
	}
	u, ok := f.known[e.id]
	return ok && f.due(u.StoredAt, now)
}

func (f *fetcher) reused(e entry, why string) {
	f.res.Reused++
	f.log.Info("pop3 server gave a stored message's identity to a new message ("+why+"): downloading it",
		"num", e.num, "uidl", e.id)
}

// verdict is what check found out about a known message.
type verdict int

const (
	proven    verdict = iota // it is the message its stored copy holds
	reused                   // it is a new message: download it
	byContent                // only its body can tell: download it and compare (fetcher.verify)
	unproven                 // leave it on the server, do not download it
)

// check tells whether a known message e is the one an earlier run stored
// under its identity; hdr is the hash of its header (TOP n 0, CRLF read as
// LF; nil if the server refused TOP). Before a DELE (dele) it must prove
// it: the stored copy (row and file) exists, the listed size is the copy's,
// and the header is the copy's header. A content identity is
// made of the header and the size already, so only the body can tell: the
// message is downloaded again and compared with the copy (byContent).
//
// A header that differs from the one recorded with the identity (or, for an
// identity recorded without one, from the copy's) makes the message a new
// one. A copy that is gone or differs while the header matches the record
// leaves the message on the server (the user deleted or changed the local
// copy), and so does a server that refuses TOP.
func (f *fetcher) check(ctx context.Context, e entry, u index.POP3UIDL, dele bool, hdr *[32]byte) (verdict, string, error) {
	content := strings.HasPrefix(e.id, hashIDPrefix)
	if content && !dele {
		return unproven, "", nil
	}
	if hdr == nil && !content {
		return unproven, "the server refused TOP, so the message cannot be compared with the local copy", nil
	}
	recorded := u.HeaderSHA256 != nil
	if !content && recorded && !bytes.Equal(u.HeaderSHA256, hdr[:]) {
		return reused, "its header differs", nil
	}
	if !dele && recorded {
		return proven, "", nil
	}
	m, folder, err := f.storedCopy(ctx, u)
	if err != nil {
		return 0, "", err
	}
	if m == nil {
		return unproven, "its local copy is gone", nil
	}
	if content {
		sum, err := fileSHA256(f.o.Index, folder, m)
		if errors.Is(err, fs.ErrNotExist) {
			return unproven, "its local copy is gone", nil
		}
		if err != nil {
			return 0, "", err
		}
		f.verify[e.num] = sum
		return byContent, "", nil
	}
	if m.RFC822Size != 0 && m.RFC822Size != e.size {
		if recorded {
			return unproven, "its local copy differs", nil
		}
		return reused, "its size differs", nil
	}
	fh, err := fileHeader(f.o.Index, folder, m)
	if errors.Is(err, fs.ErrNotExist) {
		return unproven, "its local copy is gone", nil
	}
	if err != nil {
		return 0, "", err
	}
	if fh != *hdr {
		if recorded {
			return unproven, "its local copy's header differs", nil
		}
		return reused, "its header differs", nil
	}
	return proven, "", nil
}

// storedCopy returns the row a known identity names and its folder, or
// nil when the row is gone. (Whether its file is there, the caller finds
// out opening it.)
func (f *fetcher) storedCopy(ctx context.Context, u index.POP3UIDL) (*index.Message, *index.Folder, error) {
	if u.MessageID == 0 {
		return nil, nil, nil
	}
	var m *index.Message
	var folder *index.Folder
	err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		m, folder, err = tx.POP3Copy(f.acct, u.MessageID)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return nil, nil, nil
	}
	return m, folder, err
}

var errSomeFailed = errors.New("pop3: the server refused to send some messages")
