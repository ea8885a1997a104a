package imapsync

import (
	"context"

	"github.com/postfach/postfach/index"
)

// Local changes made while a run pushes. The local endpoints change flags
// through the store's door at any time, also between the moment a folder's
// plan read a row and the moment its merged flags are written. Writing the
// merged flags then would undo that change (the door finds the file by its
// key), and the merge base would say it never happened.
//
// So after its STOREs, applyFlags reads the rows it is about to rename
// again (changedSinceRead). A row whose flags or keywords are no longer
// those the plan merged is left as the endpoint made it: only its merge
// base is recorded, as the local flags the plan read (what this side had
// when its changes were pushed). The next merge then sees exactly the
// endpoint's change on this side (its flags against that base) and the
// server's own changes on the other (the server's flags against it), and
// the refresh of this run (refreshAfterPush) or the next run carries both
// over. A row removed meanwhile is left alone (the removal is the next
// run's business). A change in the instant between this read and the
// door's rename is not seen: the window is the door call's, not the run's.

// flagsStoredHook, if set (by tests), runs after applyFlags' STOREs and
// before it reads the rows again: a local change made there is one made
// while the run pushed.
var flagsStoredHook func()

// changedSinceRead marks the local changes of p whose rows changed or went
// since the plan read them (see above).
func (w *worker) changedSinceRead(ctx context.Context, p *flagPlan) error {
	var cur []*index.Message
	for _, c := range p.changes {
		if c.localChanged {
			cur = append(cur, &index.Message{ID: c.m.ID, Partial: true})
		}
	}
	if len(cur) == 0 {
		return nil
	}
	if err := w.s.opts.Index.Read(ctx, func(tx *index.ReadTx) error { return tx.Fill(cur) }); err != nil {
		return err
	}
	byID := make(map[index.MessageID]*index.Message, len(cur))
	for _, m := range cur {
		byID[m.ID] = m
	}
	for _, c := range p.changes {
		now := byID[c.m.ID]
		switch {
		case !c.localChanged:
		case now.Partial: // removed meanwhile
			c.gone = true
		case now.Flags != c.m.Flags || !sameKeywords(now.Keywords, c.m.Keywords):
			w.s.log.Debug("flags changed here while the run pushed; merged again", "key", c.m.Key)
			c.localChanged = false
			c.newBase, c.newBaseKw = c.m.Flags, c.m.Keywords
			c.m.Flags, c.m.Keywords, c.m.File = now.Flags, now.Keywords, now.File
		}
	}
	return nil
}
