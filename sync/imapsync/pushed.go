package imapsync

import (
	"context"
	"slices"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Pushes killed before their base is recorded. applyFlags STOREs a
// message's merged flags upstream, then commits the new merge base; a kill
// in between leaves the server with this side's change and the row with
// the old base, and the next run takes the change for one made there. If
// the message was changed here again meanwhile (unflagged, say), the merge
// would bring the flag back on both sides (TestRunKill9: "flags 2,F, want
// 2,"). So the STOREs are written ahead as "pushed" intents (the base
// with what the STOREs change applied, no more: see storedOver; and the
// base before), and the next run, before it
// merges, takes as the base, flag by flag, what was pushed where the
// server shows it, and the old base where it does not (the STORE never
// ran).

// opPushed is the journal op of a push written ahead.
const opPushed = "pushed"

// journalPushes writes ahead the pushes of p: one intent per message that
// a STORE of p changes upstream.
func (w *worker) journalPushes(ctx context.Context, j *folderJob, p *flagPlan) ([]int64, error) {
	pushed := map[uint32]string{} // UID -> its flagDiff key
	for k, uids := range p.stores {
		for _, u := range uids {
			pushed[uint32(u)] = k
		}
	}
	if len(pushed) == 0 {
		return nil, nil
	}
	var ids []int64
	err := w.s.opts.Index.Write(ctx, func(tx *index.Tx) error {
		for _, c := range p.changes {
			k, ok := pushed[c.m.UID]
			if !ok {
				continue
			}
			f, kw := storedOver(c.m.SyncedFlags, c.m.SyncedKeywords, k)
			id, err := tx.AddIntent(index.Intent{Account: j.f.Account, Folder: j.f.ID, Message: c.m.ID, Op: opPushed,
				Arg: flagsArg(f, kw, c.m.SyncedFlags, c.m.SyncedKeywords)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// storedOver is the base (base, baseKw) with the STORE of the flagDiff key
// applied: what a push changes upstream, and no more. The merged flags
// also hold the server's own changes since the base, which the STORE does
// not carry and which reach this side only with the local commit that a
// kill may prevent: taken into the base by recoverPushes, a keyword added
// there and not yet here would read as removed here, and be removed
// upstream (TestPushedFlagsKeepServerChange).
func storedOver(base maildir.Flags, baseKw []string, key string) (maildir.Flags, []string) {
	add, del := parseDiff(key)
	addF, addKw := maildir.FlagsFromIMAP(add)
	delF, delKw := maildir.FlagsFromIMAP(del)
	f := (base | addF) &^ delF
	kw := slices.Clone(baseKw)
	for _, k := range addKw {
		if !slices.Contains(kw, k) {
			kw = append(kw, k)
		}
	}
	kw = slices.DeleteFunc(kw, func(k string) bool { return slices.Contains(delKw, k) })
	slices.Sort(kw)
	return f, kw
}

// recoverPushes resolves the folder's open "pushed" intents before a merge
// (see above): the base of each row the server shows changed is set flag
// by flag, recorded, and the intents are closed in the same transaction.
// local holds the rows (those with a server entry whole), server what the
// server has of the changed messages.
func (w *worker) recoverPushes(ctx context.Context, j *folderJob, local map[uint32]*index.Message, server map[uint32]*serverMsg) error {
	o := &w.s.opts
	intents, err := folderIntents(ctx, o.Index, j.f.ID, opPushed)
	if err != nil || len(intents) == 0 {
		return err
	}
	byID := make(map[index.MessageID]*index.Message, len(local))
	for _, m := range local {
		byID[m.ID] = m
	}
	var fixed []*index.Message
	for _, in := range intents {
		m := byID[in.Message]
		pushed, pushedKw, before, beforeKw, ok := parseFlagsArg(in.Arg)
		if m == nil || m.Partial || !ok {
			continue
		}
		sm := server[m.UID]
		if sm == nil {
			continue // unchanged there: the STORE never ran
		}
		base, baseKw := pushedBase(pushed, pushedKw, before, beforeKw, sm.flags, sm.keywords)
		if base != m.SyncedFlags || !sameKeywords(baseKw, m.SyncedKeywords) {
			m.SyncedFlags, m.SyncedKeywords = base, baseKw
			fixed = append(fixed, m)
		}
	}
	if o.DryRun {
		return nil
	}
	return o.Index.Write(ctx, func(tx *index.Tx) error {
		for _, m := range fixed {
			if err := tx.SetSyncedFlags(m.ID, m.SyncedFlags, m.SyncedKeywords); err != nil {
				return err
			}
		}
		for _, in := range intents {
			if err := tx.DoneIntent(in.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// pushedBase is the merge base after a push of (pushed, pushedKw) over the
// base (before, beforeKw) that may or may not have reached the server,
// which now has (server, serverKw): each flag and keyword the push changed
// takes its pushed value where the server has that value, its old one
// elsewhere.
func pushedBase(pushed maildir.Flags, pushedKw []string, before maildir.Flags, beforeKw []string,
	server maildir.Flags, serverKw []string) (maildir.Flags, []string) {
	base := before
	for f := maildir.Flags(1); f != 0; f <<= 1 {
		if (pushed^before)&f != 0 && server&f == pushed&f {
			base = base&^f | pushed&f
		}
	}
	kw := slices.Clone(beforeKw)
	for _, k := range pushedKw {
		if !slices.Contains(beforeKw, k) && slices.Contains(serverKw, k) {
			kw = append(kw, k) // added by the push, and there
		}
	}
	kw = slices.DeleteFunc(kw, func(k string) bool {
		return !slices.Contains(pushedKw, k) && !slices.Contains(serverKw, k) // removed by the push, and gone there
	})
	slices.Sort(kw)
	return base, kw
}
