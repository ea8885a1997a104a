package imapsync

import (
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// withinLimits drops the UIDs of messages outside MaxAgeDays and MaxSize,
// fetching their size and date first where the plan does not know them.
// The UIDs it drops go into p.limited (not looked at again this run); the
// messages left on the server for their size are counted in the folder's
// TooLarge and TooLargeBytes.
func (w *worker) withinLimits(p *msgPlan, uids []uint32) ([]uint32, error) {
	o, server := &w.s.opts, p.server
	if (o.MaxAgeDays <= 0 && o.MaxSize <= 0) || len(uids) == 0 {
		return uids, nil
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	bufs, err := w.c.Fetch(imap.UIDSetNum(set...), &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		return nil, abort(w.c, err)
	}
	cutoff := time.Now().AddDate(0, 0, -o.MaxAgeDays)
	ok := map[uint32]bool{}
	var large int
	var largeBytes int64
	for _, b := range bufs {
		if o.MaxAgeDays > 0 && !b.InternalDate.IsZero() && b.InternalDate.Before(cutoff) {
			p.limited[uint32(b.UID)] = true
			continue
		}
		if o.MaxSize > 0 && b.RFC822Size > o.MaxSize {
			p.limited[uint32(b.UID)] = true
			large++
			largeBytes += b.RFC822Size
			continue
		}
		ok[uint32(b.UID)] = true
		if sm := server[uint32(b.UID)]; sm != nil {
			sm.size = b.RFC822Size
		}
	}
	if large > 0 {
		p.j.update(func(r *FolderResult) { r.TooLarge += large; r.TooLargeBytes += largeBytes })
	}
	return slices.DeleteFunc(uids, func(u uint32) bool { return !ok[u] }), nil
}
