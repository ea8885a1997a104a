package imapd

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// ownWait bounds how long a session waits for the hub to apply its own
// change: the hub is never that far behind unless something is wrong,
// and then the session answers without the untagged responses (they
// follow with a later command).
const ownWait = 10 * time.Second

// feedBuffer is the hub's subscription buffer (0: the feed's default);
// tests make it small to see the hub catch up after a Resync.
var feedBuffer = 0

// hub follows the store's change feed and is the one writer of every
// mailbox's tracker (see the package doc).
type hub struct {
	st  *index.Store
	log *slog.Logger

	stopped atomic.Bool

	mu    sync.Mutex
	boxes map[index.FolderID]*mailbox // the folders some session has selected
	sub   *index.Subscription
}

// newHub subscribes to st's feed at once: a mailbox read from the index
// after that misses no change.
func newHub(st *index.Store, log *slog.Logger) *hub {
	return &hub{st: st, log: log, boxes: map[index.FolderID]*mailbox{}, sub: st.Subscribe(feedBuffer)}
}

// mailbox is a selected folder: its messages' local UIDs in the order of
// their sequence numbers (the tracker's server view), and the sessions
// that have it selected.
type mailbox struct {
	id      index.FolderID
	mu      sync.Mutex
	cond    *sync.Cond
	tracker *imapserver.MailboxTracker
	uids    []uint32 // ascending
	maxUID  uint32   // the greatest local UID the mailbox has held
	snap    uint64   // the state read from the index includes the changes up to this MODSEQ
	applied uint64   // the greatest MODSEQ applied
	gone    bool     // the folder was removed
	refs    int
	views   map[*view]struct{}
	// own holds, by local UID, the flag changes a session made itself:
	// the hub does not send them back to it (it answered them already).
	own map[uint32]*view
}

// run reads the feed until ctx ends or the store closes, catching up
// from the index whenever the feed says it fell behind.
func (h *hub) run(ctx context.Context) {
	defer h.close()
	h.mu.Lock()
	sub := h.sub
	h.mu.Unlock()
	for {
		resync := false
		for c := range sub.C() {
			if c.Kind == index.Resync {
				resync = true
				break
			}
			h.apply(c)
		}
		if !resync || ctx.Err() != nil || h.stopped.Load() {
			return // the store or the server closed
		}
		h.log.Debug("imapd: the change feed fell behind; reading the changes from the index")
		h.mu.Lock()
		if h.stopped.Load() {
			h.mu.Unlock()
			return
		}
		sub = h.st.Subscribe(feedBuffer)
		h.sub = sub
		boxes := make([]*mailbox, 0, len(h.boxes))
		for _, b := range h.boxes {
			boxes = append(boxes, b)
		}
		h.mu.Unlock()
		for _, b := range boxes {
			h.catchUp(ctx, b)
		}
	}
}

// close stops the hub and wakes every session that waits for it.
func (h *hub) close() {
	h.stopped.Store(true)
	h.mu.Lock()
	h.sub.Close()
	boxes := make([]*mailbox, 0, len(h.boxes))
	for _, b := range h.boxes {
		boxes = append(boxes, b)
	}
	h.mu.Unlock()
	for _, b := range boxes {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	}
}

// apply routes one change to its folder's mailbox, if selected.
func (h *hub) apply(c index.Change) {
	switch c.Kind {
	case index.MessageAdded, index.MessageRemoved, index.FlagsChanged, index.FolderRemoved:
	default:
		return
	}
	h.mu.Lock()
	b := h.boxes[c.Folder]
	h.mu.Unlock()
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.cond.Broadcast()
	if c.Kind == index.FolderRemoved {
		b.removeAll()
		return
	}
	if c.ModSeq <= b.snap || b.gone {
		return // read with the mailbox's state already
	}
	switch c.Kind {
	case index.MessageAdded:
		b.add(c.LocalUID)
	case index.MessageRemoved:
		b.remove(c.LocalUID)
	case index.FlagsChanged:
		b.flags(c.LocalUID, c.Flags, c.Keywords)
	}
	b.applied = max(b.applied, c.ModSeq)
}

// catchUp applies to b what changed in its folder since the last change
// it applied, from the index (after the feed fell behind).
func (h *hub) catchUp(ctx context.Context, b *mailbox) {
	var fc *index.FolderChanges
	b.mu.Lock()
	since := b.applied
	b.mu.Unlock()
	err := h.st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		fc, err = tx.ChangesSince(b.id, since)
		return err
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.cond.Broadcast()
	switch {
	case errors.Is(err, index.ErrNotFound):
		b.removeAll()
		return
	case err != nil:
		h.log.Warn("imapd: reading a folder's changes", "folder", b.id, "err", err)
		return
	}
	for _, uid := range fc.Removed {
		b.remove(uid)
	}
	for _, m := range fc.Changed {
		if m.LocalUID > b.maxUID {
			b.add(m.LocalUID)
		} else {
			b.flags(m.LocalUID, m.Flags, m.Keywords)
		}
	}
	b.snap, b.applied = fc.ModSeq, max(b.applied, fc.ModSeq)
}

// open returns folder id's mailbox, reading its state from the index if
// no session has it selected, with one more reference.
func (h *hub) open(ctx context.Context, id index.FolderID) (*mailbox, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.boxes[id]; b != nil {
		b.mu.Lock()
		b.refs++
		b.mu.Unlock()
		return b, nil
	}
	b := &mailbox{id: id, refs: 1, views: map[*view]struct{}{}, own: map[uint32]*view{}}
	b.cond = sync.NewCond(&b.mu)
	err := h.st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		b.uids, b.snap, err = tx.LocalUIDs(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	b.applied = b.snap
	if n := len(b.uids); n > 0 {
		b.maxUID = b.uids[n-1]
	}
	b.tracker = imapserver.NewMailboxTracker(uint32(len(b.uids)))
	h.boxes[id] = b
	return b, nil
}

// lookup returns folder id's mailbox if some session has it selected.
func (h *hub) lookup(id index.FolderID) *mailbox {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.boxes[id]
}

// release drops a reference to b; the last one forgets it.
func (h *hub) release(b *mailbox) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b.mu.Lock()
	b.refs--
	last := b.refs == 0
	b.mu.Unlock()
	if last && h.boxes[b.id] == b {
		delete(h.boxes, b.id)
	}
}

// index returns the position of uid in b.uids, or -1. The caller holds
// b.mu.
func (b *mailbox) index(uid uint32) int {
	i, ok := slices.BinarySearch(b.uids, uid)
	if !ok {
		return -1
	}
	return i
}

// add appends a message: one EXISTS each, so that the tracker's sequence
// number translation holds (it handles one message at a time). Local
// UIDs only grow: a message added always comes last.
func (b *mailbox) add(uid uint32) {
	if uid <= b.maxUID {
		return // seen already (or a UID the store reused, which it never does)
	}
	b.uids = append(b.uids, uid)
	b.maxUID = uid
	b.tracker.QueueNumMessages(uint32(len(b.uids)))
	b.notify()
}

func (b *mailbox) remove(uid uint32) {
	i := b.index(uid)
	if i < 0 {
		return
	}
	b.tracker.QueueExpunge(uint32(i + 1))
	for v := range b.views {
		v.unsentExpunges++
	}
	b.uids = slices.Delete(b.uids, i, i+1)
	delete(b.own, uid)
	b.notify()
}

func (b *mailbox) flags(uid uint32, f maildir.Flags, kw []string) {
	var source *imapserver.SessionTracker
	if v := b.own[uid]; v != nil {
		delete(b.own, uid)
		source = v.tracker
	}
	i := b.index(uid)
	if i < 0 {
		return
	}
	b.tracker.QueueMessageFlags(uint32(i+1), imap.UID(uid), imapFlags(f, kw), source)
	b.notify()
}

// removeAll expunges every message: the folder is gone.
func (b *mailbox) removeAll() {
	for i := len(b.uids); i > 0; i-- {
		b.tracker.QueueExpunge(uint32(i))
	}
	for v := range b.views {
		v.unsentExpunges += len(b.uids)
	}
	b.uids = nil
	b.gone = true
	b.notify()
}

// notify wakes the sessions idling on b. The caller holds b.mu.
func (b *mailbox) notify() {
	for v := range b.views {
		select {
		case v.notify <- struct{}{}:
		default:
		}
	}
}

// waitFor waits until done (called with b.mu held) holds, the hub has
// stopped, or ownWait has passed.
func (b *mailbox) waitFor(h *hub, done func() bool) {
	timedOut := false
	t := time.AfterFunc(ownWait, func() {
		b.mu.Lock()
		timedOut = true
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer t.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for !done() && !timedOut && !b.gone {
		if h.stopped.Load() {
			return
		}
		b.cond.Wait()
	}
}

// imapFlags returns a message's flags as IMAP has them. A keyword that
// is no IMAP atom (another program's, in the Maildir) is left out: sent,
// it would break the response.
func imapFlags(f maildir.Flags, kw []string) []imap.Flag {
	out := f.IMAP()
	for _, k := range kw {
		if atom(k) {
			out = append(out, imap.Flag(k))
		}
	}
	return out
}

// atom reports whether s is an IMAP atom (RFC 3501's atom-char only).
func atom(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return s != ""
}
