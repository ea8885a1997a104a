package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
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
	for _, k := range keys {
		add, del := parseDiff(k)
		set := imap.UIDSetNum(p.stores[k]...)
		if len(add) > 0 {
			if err := w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: add}, nil).Close(); err != nil {
				return fmt.Errorf("STORE: %w", err)
			}
		}
		if len(del) > 0 {
			if err := w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: del}, nil).Close(); err != nil {
				return fmt.Errorf("STORE: %w", err)
			}
		}
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

// appendNew uploads local messages the server does not have. Each APPEND is
// written ahead into the journal (with the folder's UIDNEXT before it), so
// that after a crash recoverAppends can find the copy on the server instead
// of uploading it twice.
func (w *worker) appendNew(ctx context.Context, j *folderJob, rows []*index.Message) error {
	if len(rows) == 0 {
		return nil
	}
	o := &w.s.opts
	if o.DryRun {
		j.update(func(r *FolderResult) { r.Uploaded += len(rows) })
		for _, m := range rows {
			j.record(Action{Op: OpUpload, Key: m.Key})
		}
		return nil
	}
	intents := make([]int64, len(rows))
	err := o.Index.Write(ctx, func(tx *index.Tx) error {
		for i, m := range rows {
			id, err := tx.AddIntent(index.Intent{Account: j.f.Account, Folder: j.f.ID, Message: m.ID,
				Op: "append", Arg: strconv.FormatUint(uint64(j.uidNext), 10)})
			if err != nil {
				return err
			}
			intents[i] = id
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The uploads: the messages still on disk, with their size as sent.
	var ups []*upload
	for i, m := range rows {
		e, ok := entryOf(m)
		if !ok {
			continue
		}
		size, err := crlfSize(o.Index, j.f, m)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted meanwhile; the next run sees it gone
			}
			return err
		}
		flags := m.Flags.IMAP()
		for _, k := range m.Keywords {
			flags = append(flags, imap.Flag(k))
		}
		ups = append(ups, &upload{store: o.Index, f: j.f, m: m, e: e, size: size, flags: flags, intent: intents[i]})
	}
	// Results are recorded in one transaction at the end; a crash before it
	// leaves intents that the next run resolves by content (recoverAppends).
	var done, refused []*upload
	if up := w.s.up.Get(ctx, w.c); up != nil {
		done, refused, err = w.multiAppend(ctx, j, up, ups)
	} else {
		done, refused, err = w.appendEach(j, ups)
	}
	if err != nil {
		return err
	}
	for _, p := range done {
		ne, err := j.dir.SetUID(p.e, p.uid)
		if err != nil {
			return err
		}
		p.m.UID, p.m.File, p.m.RFC822Size = p.uid, ne.Sub+"/"+ne.Name, p.size
	}
	err = o.Index.Write(ctx, func(tx *index.Tx) error {
		for _, p := range done {
			m := p.m
			if err := tx.SetUploaded(m.ID, m.UID, p.size, m.File, m.Flags, m.Keywords); err != nil {
				return err
			}
			if err := tx.DoneIntent(p.intent); err != nil {
				return err
			}
		}
		for _, p := range refused { // not stored: nothing to find next time
			if err := tx.DoneIntent(p.intent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	j.update(func(r *FolderResult) {
		r.Uploaded += len(done)
		r.Refused += len(refused)
		for _, p := range refused {
			if r.RefusedWhy == "" && p.refusal != nil {
				r.RefusedWhy = p.refusal.Error()
			}
		}
	})
	for _, p := range done {
		j.record(Action{Op: OpUpload, Key: p.m.Key})
	}
	return nil
}

// appendWindow bounds the APPENDs in flight on one connection.
const appendWindow = 16

// upload is one local message on its way up.
type upload struct {
	store *index.Store
	f     *index.Folder
	m     *index.Message
	e     maildir.Entry
	size  int64 // bytes as sent: CRLF line ends
	// refusal is the server's answer when it refused the message.
	refusal error
	flags   []imap.Flag
	intent  int64
	uid     uint32 // given by the server (UIDPLUS); 0: unknown
}

// send writes the message file with CRLF line ends: exactly u.size bytes,
// or an error.
func (u *upload) send(w io.Writer) error {
	b, err := u.store.OpenMessage(u.f, u.m)
	if err != nil {
		return err
	}
	defer b.Close()
	br := getReader(b)
	defer putReader(br)
	if err := maildir.CopyCRLF(w, br, u.size); err != nil {
		return fmt.Errorf("%s/%s: %w", u.f.Name, u.m.File, err)
	}
	return nil
}

// crlfSize returns the size of message m of folder f with CRLF line ends:
// the size of its APPEND literal.
func crlfSize(st *index.Store, f *index.Folder, m *index.Message) (int64, error) {
	b, err := st.OpenMessage(f, m)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	return maildir.CRLFSize(b)
}

// appendEach uploads with one APPEND each, pipelined on the worker's
// connection: up to appendWindow in flight (one larger than 4 KiB still
// waits for the server's continuation, but no longer for the previous
// message's answer). It returns the uploads whose UID the server told,
// and those it refused (a NO or BAD: not stored; say, a message too large
// for it): a refusal is the message's own, the others go on, and the next
// run tries it again. (go-imap closes the connection when the server
// refuses a literal it had to announce first, above 4 KiB: that fails the
// folder's run instead. The MULTIAPPEND path, with LITERAL+, has no such
// case; appendEach is only for servers without it.)
func (w *worker) appendEach(j *folderJob, ups []*upload) (done, refused []*upload, err error) {
	type sent struct {
		u   *upload
		cmd *imapclient.AppendCommand
	}
	var inflight []sent
	wait := func(p sent) error {
		data, err := p.cmd.Wait()
		var no *imap.Error
		if errors.As(err, &no) {
			w.s.log.Warn("the server refused a message", "folder", j.rf.Local, "file", p.u.m.File, "err", err)
			p.u.refusal = err
			refused = append(refused, p.u)
			return nil
		}
		if err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		if data.UID != 0 { // else no UIDPLUS: the intent stays; the next run matches the copy
			p.u.uid = uint32(data.UID)
			done = append(done, p.u)
		}
		return nil
	}
	for _, u := range ups {
		cmd := w.c.Append(j.rf.Remote, u.size, &imap.AppendOptions{Flags: u.flags, Time: u.m.InternalDate})
		if err := errors.Join(u.send(cmd), cmd.Close()); err != nil {
			return done, refused, abort(w.c, fmt.Errorf("APPEND %s: %w", u.m.Key, err))
		}
		inflight = append(inflight, sent{u, cmd})
		if len(inflight) >= appendWindow {
			if err := wait(inflight[0]); err != nil {
				return done, refused, err
			}
			inflight = inflight[1:]
		}
	}
	for _, p := range inflight {
		if err := wait(p); err != nil {
			return done, refused, err
		}
	}
	return done, refused, nil
}

// multiAppend uploads with MULTIAPPEND on the run's uploader (see
// Uploader.AppendAll). It returns the uploads whose UID the server told,
// and those it refused.
func (w *worker) multiAppend(ctx context.Context, j *folderJob, up *imapconn.Uploader, ups []*upload) (done, refused []*upload, err error) {
	msgs := make([]imapconn.UploadMsg, len(ups))
	for i, u := range ups {
		msgs[i] = imapconn.UploadMsg{Flags: u.flags, Date: u.m.InternalDate, Size: u.size, Write: u.send}
	}
	err = up.AppendAll(ctx, j.rf.Remote, msgs, func(i int, uid uint32, no error) {
		u := ups[i]
		switch {
		case no != nil:
			w.s.log.Warn("the server refused a message", "folder", j.rf.Local, "file", u.m.File, "err", no)
			u.refusal = no
			refused = append(refused, u)
		case uid != 0: // else no UIDPLUS: the intent stays; the next run matches the copy
			u.uid = uid
			done = append(done, u)
		}
	})
	if err != nil {
		err = fmt.Errorf("APPEND: %w", err)
	}
	return done, refused, err
}
