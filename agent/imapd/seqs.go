package imapd

import (
	"slices"

	"github.com/emersion/go-imap/v2"
)

// item is a message of the selected mailbox that a command names: its
// sequence number in the client's view and its local UID.
type item struct {
	seq uint32
	uid uint32
}

// resolve returns the messages numSet names that the client knows
// (announced by EXISTS, not yet expunged to it), ascending. "*" is the
// client's last message (a sequence set) or the greatest UID (a UID set);
// "$" is the last SEARCH RETURN (SAVE) result.
func (v *view) resolve(numSet imap.NumSet) []item {
	if imap.IsSearchRes(numSet) {
		numSet = v.searchRes
	}
	b := v.box
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []item
	switch set := numSet.(type) {
	case imap.SeqSet:
		last := v.clientLast()
		for _, r := range set {
			start, stop := static(r.Start, r.Stop, last)
			stop = min(stop, last)
			for c := start; c <= stop && c != 0; c++ {
				if s := v.tracker.DecodeSeqNum(c); s != 0 {
					out = append(out, item{seq: c, uid: b.uids[s-1]})
				}
			}
		}
		slices.SortFunc(out, func(a, b item) int { return int(a.seq) - int(b.seq) })
		out = slices.Compact(out)
	case imap.UIDSet:
		var last uint32
		if n := len(b.uids); n > 0 {
			last = b.uids[n-1]
		}
		for _, r := range set {
			start, stop := static(uint32(r.Start), uint32(r.Stop), last)
			i, _ := slices.BinarySearch(b.uids, start)
			for ; i < len(b.uids) && b.uids[i] <= stop; i++ {
				if c := v.tracker.EncodeSeqNum(uint32(i + 1)); c != 0 {
					out = append(out, item{seq: c, uid: b.uids[i]})
				}
			}
		}
		if len(set) > 1 {
			slices.SortFunc(out, func(a, b item) int { return int(a.seq) - int(b.seq) })
			out = slices.Compact(out)
		}
	}
	return out
}

// checkSeqs refuses a sequence set that names a message beyond the
// client's view (RFC 3501 9 / RFC 9051 9, seq-number: "The server should
// respond with a tagged BAD response to a command that uses a message
// sequence number greater than the number of messages in the selected
// mailbox. This includes "*" if the selected mailbox is empty."). The
// client's count is taken generously: the mailbox's count plus the
// expunges not yet sent to it, so that a message it may still name is
// never refused.
func (v *view) checkSeqs(numSet imap.NumSet) error {
	set, ok := numSet.(imap.SeqSet)
	if !ok || imap.IsSearchRes(numSet) {
		return nil
	}
	b := v.box
	b.mu.Lock()
	bound := uint32(len(b.uids) + v.unsentExpunges)
	b.mu.Unlock()
	for _, r := range set {
		if r.Start > bound || r.Stop > bound || bound == 0 && (r.Start == 0 || r.Stop == 0) {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "No such message (sequence number beyond the mailbox)"}
		}
	}
	return nil
}

// static makes a range without "*" (0) in it, smallest first.
func static(start, stop, last uint32) (uint32, uint32) {
	if start == 0 {
		start = last
	}
	if stop == 0 {
		stop = last
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

// clientLast is the greatest sequence number of a message the client
// knows that still exists. The caller holds the mailbox's lock.
func (v *view) clientLast() uint32 {
	for s := len(v.box.uids); s > 0; s-- {
		if c := v.tracker.EncodeSeqNum(uint32(s)); c != 0 {
			return c
		}
	}
	return 0
}

// seqOf returns the client's sequence number of local UID uid, 0 when the
// client does not know it. The caller holds the mailbox's lock.
func (v *view) seqOf(uid uint32) uint32 {
	i := v.box.index(uid)
	if i < 0 {
		return 0
	}
	return v.tracker.EncodeSeqNum(uint32(i + 1))
}

// uids returns the local UIDs of items.
func uids(items []item) []uint32 {
	out := make([]uint32, len(items))
	for i, it := range items {
		out[i] = it.uid
	}
	return out
}

// uidsAfter returns up to n UIDs of the mailbox that follow uid.
func (v *view) uidsAfter(uid uint32, n int) []uint32 {
	b := v.box
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := slices.BinarySearch(b.uids, uid)
	if ok {
		i++
	}
	return slices.Clone(b.uids[i:min(len(b.uids), i+n)])
}
