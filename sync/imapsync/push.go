package imapsync

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// syncFlags merges each message's flags three ways (base: the last state
// both sides agreed on) and writes the result where the direction allows:
// locally by renaming the file, upstream by STORE. Upstream goes first, the
// new base is recorded last, so a crash in between only repeats idempotent
// work. A dry run plans the same changes (planFlags) and applies none.
func (w *worker) syncFlags(ctx context.Context, j *folderJob, rows *localRows, server map[uint32]*serverMsg) error {
	o := &w.s.opts
	var quiet []uint32
	for uid := range server {
		if rows.quiet.has(uid) {
			quiet = append(quiet, uid)
		}
	}
	if err := rows.load(ctx, o.Index, quiet); err != nil {
		return err
	}
	local := rows.m
	var changed []*index.Message
	for uid := range server {
		if m := local[uid]; m != nil {
			changed = append(changed, m)
		}
	}
	if err := fill(ctx, o.Index, changed); err != nil {
		return err
	}
	if err := w.recoverPushes(ctx, j, local, server); err != nil {
		return err
	}
	p := planFlags(o, local, server)
	if len(p.changes) == 0 {
		return nil
	}
	pushed := 0
	for _, uids := range p.stores {
		pushed += len(uids)
	}
	localN := 0
	for _, c := range p.changes {
		if c.localChanged {
			localN++
		}
	}
	if !o.DryRun {
		if err := w.applyFlags(ctx, j, p); err != nil {
			return err
		}
	}
	j.update(func(r *FolderResult) {
		r.FlagsChanged += localN
		r.FlagsPushed += pushed
	})
	j.record(p.acts...)
	return nil
}

// flagChange is one message's merged flags: the new local state, the new
// base, and whether the file is renamed.
type flagChange struct {
	m            *index.Message
	newLocal     maildir.Flags
	newLocalKw   []string
	newBase      maildir.Flags
	newBaseKw    []string
	localChanged bool
	gone         bool // the row was removed while the run pushed (changedSinceRead)
}

// flagPlan is what syncFlags does: the changes, the STOREs grouped by
// flagDiff key, and the actions for the Result.
type flagPlan struct {
	changes []*flagChange
	stores  map[string][]imap.UID // flagDiff key -> UIDs
	acts    []Action
}

// planFlags merges every message's flags and plans the writes, touching
// nothing.
func planFlags(o *Options, local map[uint32]*index.Message, server map[uint32]*serverMsg) *flagPlan {
	p := &flagPlan{stores: map[string][]imap.UID{}}
	for uid, m := range local {
		if m.Partial {
			continue // unchanged on both sides: the pending rows are whole
		}
		sm := server[uid]
		localDirty := m.Flags != m.SyncedFlags || !sameKeywords(m.Keywords, m.SyncedKeywords)
		if sm == nil && !localDirty {
			continue
		}
		remote, remoteKw := m.SyncedFlags, m.SyncedKeywords
		if sm != nil {
			remote, remoteKw = sm.flags, sm.keywords
		}
		var merged maildir.Flags
		var mergedKw []string
		switch {
		case !o.pull(): // push only: local wins
			merged, mergedKw = m.Flags, m.Keywords
		default:
			merged = mergeFlags(m.SyncedFlags, m.Flags, remote)
			mergedKw = mergeKeywords(m.SyncedKeywords, m.Keywords, remoteKw)
		}
		c := &flagChange{m: m, newLocal: m.Flags, newLocalKw: m.Keywords, newBase: remote, newBaseKw: remoteKw}
		if o.pull() {
			c.newLocal, c.newLocalKw = merged, mergedKw
		}
		if o.push() && (merged != remote || !sameKeywords(mergedKw, remoteKw)) {
			key := flagDiff(remote, remoteKw, merged, mergedKw)
			p.stores[key] = append(p.stores[key], imap.UID(uid))
			c.newBase, c.newBaseKw = merged, mergedKw
			p.acts = append(p.acts, Action{Op: OpFlagsServer, UID: uid, Key: m.Key, Flags: key})
		}
		c.localChanged = c.newLocal != m.Flags || !sameKeywords(c.newLocalKw, m.Keywords)
		if !c.localChanged && c.newBase == m.SyncedFlags && sameKeywords(c.newBaseKw, m.SyncedKeywords) {
			continue
		}
		p.changes = append(p.changes, c)
		if c.localChanged {
			p.acts = append(p.acts, Action{Op: OpFlagsLocal, UID: uid, Key: m.Key,
				Flags: strings.Join(append([]string{c.newLocal.Info()}, c.newLocalKw...), " ")})
		}
	}
	return p
}

// applyFlags carries out a flag plan: the STOREs upstream first, then the
// local changes through the store's door (file renames, the directory
// sync, the rows) with the new merge bases in the same transaction.
func (w *worker) applyFlags(ctx context.Context, j *folderJob, p *flagPlan) error {
	pushes, err := w.journalPushes(ctx, j, p)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(p.stores))
	for k := range p.stores {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Every STORE goes out before the first answer is read, not a round
	// trip each: the server carries them out in the order sent, and the
	// journal (journalPushes) covers any of them, done or not. Each is
	// read to its end, also after one failed: a command left unread would
	// hold the connection's reader. They are read side by side: Dovecot
	// sends the first one's tagged answer only after the FETCH responses
	// of all, and go-imap holds a command's responses (one per message)
	// in a buffer of 128 until they are read; with the commands read one
	// after the other, a later STORE of more messages stopped the reader
	// before the first one's answer (TestManyStoresInARow).
	var stores []*imapclient.FetchCommand
	for _, k := range keys {
		add, del := parseDiff(k)
		set := imap.UIDSetNum(p.stores[k]...)
		if len(add) > 0 {
			stores = append(stores, w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: add}, nil))
		}
		if len(del) > 0 {
			stores = append(stores, w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: del}, nil))
		}
	}
	if err := closeAll(stores); err != nil {
		return fmt.Errorf("STORE: %w", err)
	}
	if flagsStoredHook != nil {
		flagsStoredHook()
	}
	if err := w.changedSinceRead(ctx, p); err != nil {
		return err
	}
	var local []index.FlagChange
	var baseOnly []*flagChange
	for _, c := range p.changes {
		switch {
		case c.gone:
			continue
		case c.localChanged:
			local = append(local, index.FlagChange{Message: c.m, Flags: c.newLocal, Keywords: c.newLocalKw,
				Synced: &index.SyncedState{Flags: c.newBase, Keywords: c.newBaseKw}})
		default:
			baseOnly = append(baseOnly, c)
		}
	}
	intents, err := w.journalFlags(ctx, j, local)
	if err != nil {
		return err
	}
	// The door updates the local changes' rows in place.
	return w.s.opts.Index.SetFlags(ctx, local, func(tx *index.Tx) error {
		for _, c := range baseOnly {
			if err := tx.SetSyncedFlags(c.m.ID, c.newBase, c.newBaseKw); err != nil {
				return err
			}
			c.m.SyncedFlags, c.m.SyncedKeywords = c.newBase, c.newBaseKw
		}
		if flagsCommitHook != nil {
			if err := flagsCommitHook(); err != nil {
				return err
			}
		}
		for _, id := range append(intents, pushes...) {
			if err := tx.DoneIntent(id); err != nil {
				return err
			}
		}
		return nil
	})
}

// flagsCommitHook, if set (by tests), runs in the transaction that commits
// the local flag changes; an error stops the commit there, as a kill after
// the renames would.
var flagsCommitHook func() error

// journalFlags writes ahead, for each local change that renames a file,
// the flags and merge base the door is about to commit ("flags" intents,
// see recoverFlags): a kill between the door's renames and its commit
// would otherwise leave files carrying the server's flags under rows
// without them, read by the next run as a local change (and a message
// expunged upstream meanwhile would be uploaded again).
func (w *worker) journalFlags(ctx context.Context, j *folderJob, local []index.FlagChange) ([]int64, error) {
	var ids []int64
	if !slices.ContainsFunc(local, func(c index.FlagChange) bool { return c.Flags != c.Message.Flags }) {
		return nil, nil
	}
	err := w.s.opts.Index.Write(ctx, func(tx *index.Tx) error {
		for _, c := range local {
			if c.Flags == c.Message.Flags {
				continue // no rename: nothing to resolve after a kill
			}
			id, err := tx.AddIntent(index.Intent{Account: j.f.Account, Folder: j.f.ID, Message: c.Message.ID,
				Op: "flags", Arg: flagsArg(c.Flags, c.Keywords, c.Synced.Flags, c.Synced.Keywords)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// flagsArg encodes a "flags" intent: the new local flags and keywords and
// the new base, as "<info> <info> <n> <keywords...> <base keywords...>"
// (keywords are IMAP atoms: no spaces).
func flagsArg(f maildir.Flags, kw []string, base maildir.Flags, baseKw []string) string {
	words := []string{f.Info(), base.Info(), strconv.Itoa(len(kw))}
	words = append(words, kw...)
	return strings.Join(append(words, baseKw...), " ")
}

// parseFlagsArg decodes flagsArg.
func parseFlagsArg(arg string) (f maildir.Flags, kw []string, base maildir.Flags, baseKw []string, ok bool) {
	words := strings.Fields(arg)
	if len(words) < 3 {
		return 0, nil, 0, nil, false
	}
	n, err := strconv.Atoi(words[2])
	if err != nil || n < 0 || 3+n > len(words) {
		return 0, nil, 0, nil, false
	}
	return maildir.ParseInfo(words[0]), words[3 : 3+n], maildir.ParseInfo(words[1]), words[3+n:], true
}

// flagDiff encodes what turns (from, fromKw) into (to, toKw) as a group key:
// the flags to add, each with a '+', then those to remove, each with a
// '-', space-separated ("+\Seen +$Label1 -\Flagged"). A flag is an IMAP
// atom, which holds no space but may hold any of "+-|".
func flagDiff(from maildir.Flags, fromKw []string, to maildir.Flags, toKw []string) string {
	var add, del []string
	for _, f := range (to &^ from).IMAP() {
		add = append(add, string(f))
	}
	for _, f := range (from &^ to).IMAP() {
		del = append(del, string(f))
	}
	for _, k := range toKw {
		if !contains(fromKw, k) {
			add = append(add, k)
		}
	}
	for _, k := range fromKw {
		if !contains(toKw, k) {
			del = append(del, k)
		}
	}
	sort.Strings(add)
	sort.Strings(del)
	words := make([]string, 0, len(add)+len(del))
	for _, f := range add {
		words = append(words, "+"+f)
	}
	for _, f := range del {
		words = append(words, "-"+f)
	}
	return strings.Join(words, " ")
}

// parseDiff splits a flagDiff key into the flags to add and to remove.
func parseDiff(key string) (add, del []imap.Flag) {
	for _, w := range strings.Fields(key) {
		switch w[0] {
		case '+':
			add = append(add, imap.Flag(w[1:]))
		case '-':
			del = append(del, imap.Flag(w[1:]))
		}
	}
	return add, del
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// expungeRemote deletes upstream the messages deleted locally: flag them
// \Deleted, UID EXPUNGE exactly those (UIDPLUS), then drop their rows.
func (w *worker) expungeRemote(ctx context.Context, j *folderJob, rows []*index.Message) error {
	if len(rows) == 0 {
		return nil
	}
	if w.s.opts.DryRun {
		j.update(func(r *FolderResult) { r.ExpungedRemote += len(rows) })
		j.recordRows(OpDeleteServer, rows)
		w.recordArchived(j, rows)
		return nil
	}
	// The folder is read once more before anything is deleted upstream: a
	// file that is there after all (renamed while the folder was read) is
	// no deletion; the next run sees it as it is.
	entries, err := j.dir.Scan()
	if err != nil {
		return err
	}
	onDisk := make(map[string]bool, len(entries))
	for _, e := range entries {
		onDisk[e.Key] = true
	}
	rows = slices.DeleteFunc(slices.Clone(rows), func(m *index.Message) bool { return onDisk[m.Key] })
	if len(rows) == 0 {
		return nil
	}
	if w.s.opts.Archive { // kept here: the server's copy, before it goes
		if rows, err = w.archiveCopies(ctx, j, rows); err != nil {
			return err
		}
		w.recordArchived(j, rows)
		if len(rows) == 0 {
			return nil
		}
	}
	uids := make([]imap.UID, len(rows))
	for i, m := range rows {
		uids[i] = imap.UID(m.UID)
	}
	set := imap.UIDSetNum(uids...)
	if err := w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("STORE \\Deleted: %w", err)
	}
	if w.c.Caps().Has(imap.CapUIDPlus) || w.c.Caps().Has(imap.CapIMAP4rev2) {
		if err := w.c.UIDExpunge(set).Close(); err != nil {
			return fmt.Errorf("UID EXPUNGE: %w", err)
		}
	} else {
		w.s.log.Warn("server lacks UIDPLUS: locally deleted messages are only flagged \\Deleted upstream",
			"folder", j.rf.Local, "count", len(rows))
	}
	if err := dropRows(ctx, w.s.opts.Index, rows); err != nil {
		return err
	}
	j.update(func(r *FolderResult) { r.ExpungedRemote += len(rows) })
	j.recordRows(OpDeleteServer, rows)
	return nil
}

// dropRows removes rows whose files are already gone.
func dropRows(ctx context.Context, store *index.Store, rows []*index.Message) error {
	if len(rows) == 0 {
		return nil
	}
	return store.Write(ctx, func(tx *index.Tx) error {
		for _, m := range rows {
			if err := tx.DeleteMessage(m.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// closeAll reads the commands to their ends side by side (see
// applyFlags) and returns the first one's error, in their order.
func closeAll(cmds []*imapclient.FetchCommand) error {
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cmd.Close()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
