package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Folder-level sync, in two steps: plan (this file, with the confirmations
// in folderconfirm.go) decides every folder action on an in-memory view of
// both sides, which it updates as it goes (renaming a folder renames the
// folders below it); apply (folderapply.go) carries the actions out in
// order, or in a dry run only lists them. Both runs plan alike, so the dry
// run lists exactly what the real run does.
//
// Server folders that would land in one local folder (a folder_map target
// that exists upstream too; "a/b" under a '.' delimiter, whose '/' becomes
// the look-alike U+2215, beside a real "a∕b"; INBOX and "inbox"; names
// differing in case only on a case-insensitive filesystem) are not synced
// at all: each run would copy each one's messages into the other. Their
// local folder is left alone and the Result has one error line naming them.
//
// Every folder the index knows is then looked up on both sides: by name,
// else as renamed. A server folder keeps its UIDVALIDITY across RENAME (seen
// in the LIST with LIST-STATUS, else asked with STATUS of the folders no
// known folder has the name of), and
// the local Maildir records it in .postfach-uidvalidity, but two folders
// may share one (Dovecot gives out UIDVALIDITY by the clock; another server
// may use the same numbers): a candidate with the folder's UIDVALIDITY is
// taken as the renamed folder only if its content agrees too (a sample of
// the folder's messages, by UID, Message-ID and size upstream; the Maildir
// keys of its files locally). A folder missing from the server's LIST is
// gone only when the server confirms it: STATUS of its name answers NO, a
// LIST of just that name agrees, and no server folder holds it under
// another name (folder_map changed, or the patterns exclude what it
// became). Then:
//
//	server  local    what happens
//	same    same     nothing
//	renamed same     the local folder is renamed (Maildir directory and index)
//	same    renamed  RENAME upstream (push), else the local folder is renamed back
//	gone    there    archive: kept locally and left alone; else with
//	                 remove_folders and pulled deletions (expunge both/local): removed
//	                 locally, below; else with push and create_folders: CREATEd
//	                 again upstream and its messages uploaded; else kept locally
//	                 and left alone
//	there   gone     remove_folders and pushed deletions (expunge both/remote):
//	                 DELETEd upstream if the server folder is as the last sync
//	                 left it, else synced message by message (what changed
//	                 upstream since comes down, the rest is deleted upstream);
//	                 archive: fetched again, unless it is empty and as the last
//	                 sync left it (then DELETEd upstream); otherwise fetched again
//	gone    gone     forgotten
//	unsure  there    (not listed, and not confirmed gone: under a name that is
//	                 not synced, or STATUS answered otherwise) kept locally, not
//	                 synced; a folder STATUS finds under its name is synced
//
// Removing a folder is deleting its messages: with 5 or more, a removal
// needs Options.Force (its deletion share is 100%), like a run that would
// delete more than MaxDeletePercent of a folder. Before a local folder is
// removed, each file without a confirmed copy upstream (never uploaded, a
// UID the folder never confirmed, or changed here since the last sync) is
// moved into the local folder Recovered/<folder> (see recoveryName), which
// the next run syncs like any new local folder (uploaded with push and
// create_folders, if the patterns select it; otherwise it stays here); the
// Result lists it (Result.Recovered) and the log warns.
//
// A folder only one side has and the index does not know is new: created on
// the other side (CREATE upstream needs push and create_folders, and a name
// that comes back as itself: not "a.b" under a '.' delimiter). Every step is
// idempotent, so a crash between a server command and the index update is
// resolved by the same comparison on the next run.

type localFolder struct {
	name string // '/'-separated
	path string
	uv   uint32 // recorded UIDVALIDITY, 0 if none
}

// actionKind is what a folder action does.
type actionKind int

const (
	actNote           actionKind = iota // nothing but the line
	actRenameLocal                      // rename local folder from (at path) to to, and the index
	actRenameRemote                     // RENAME remote to newRemote; rename the index folder from to to
	actRemoveLocal                      // recover, then remove the Maildir at path; forget the folder
	actDeleteRemote                     // DELETE remote; forget the folder
	actRecreateRemote                   // CREATE newRemote; forget the folder's upstream state
	actCreateRemote                     // CREATE newRemote
	actForget                           // forget the folder (index only)
)

// folderAction is one step of the folder-level plan.
type folderAction struct {
	kind      actionKind
	line      string // what it does, for the Result and the log ("" for none)
	folder    *index.Folder
	from, to  string // local names
	path      string // the local folder's Maildir
	remote    string // the server folder
	newRemote string
	// actRemoveLocal: the files that may be deleted (names, as planned);
	// every other file is moved to the local folder recoverTo.
	deletable map[string]bool
	recoverTo string
	recover   int
	touched   []string // the local folders it changes (see folderPlan.touched)
}

// folderPlan is the outcome of planning.
type folderPlan struct {
	actions []folderAction
	remote  []remoteFolder // the folders to sync once the actions are done
	// touched holds the local names of folders an action changes: a dry
	// run does not plan their messages (its view of them would be wrong).
	touched map[string]bool
	errs    []FolderResult // folders left out, and why
}

// folderPlanner holds the view of both sides while planning.
type folderPlanner struct {
	s        *syncer
	c        *imapclient.Client
	names    FolderNames
	known    []*index.Folder
	locals   []localFolder
	remote   []remoteFolder // selected, without the colliding ones
	all      []remoteFolder // every selectable server folder
	blocked  map[string]bool
	foldCase bool
	claimedR map[string]bool             // remote local names taken by a known folder
	claimedL map[string]bool             // local folder names taken by a known folder
	selected bool                        // a confirmation selected a folder on c
	statuses map[string]*imap.StatusData // STATUS asked of server folders without LIST-STATUS (statusOf)
	plan     folderPlan
}

// syncFolders reconciles the folder lists and returns the folders to sync.
// Folders it leaves out with an error (collisions, the deletion valve) are
// added to s.folderErrs.
func (s *syncer) syncFolders(ctx context.Context, c *imapclient.Client, acct index.AccountID, remote, all []remoteFolder) ([]remoteFolder, error) {
	p, err := s.newFolderPlanner(ctx, c, acct, remote, all)
	if err != nil {
		return nil, err
	}
	if err := p.planAll(ctx); err != nil {
		return nil, err
	}
	s.folderErrs = append(s.folderErrs, p.plan.errs...)
	if err := p.recordErrors(ctx); err != nil {
		return nil, err
	}
	if p.selected { // examined only: CLOSE expunges nothing
		unselect := c.UnselectAndExpunge
		if c.Caps().Has(imap.CapUnselect) || c.Caps().Has(imap.CapIMAP4rev2) {
			unselect = c.Unselect
		}
		if err := unselect().Wait(); err != nil {
			return nil, fmt.Errorf("UNSELECT: %w", err)
		}
	}
	before := len(s.folderErrs)
	failed, err := s.applyFolders(ctx, c, acct, p.plan.actions)
	if err != nil {
		return nil, err
	}
	// The folders an action failed for that the index knows keep the
	// error as their last one, for status, until they sync again.
	p.plan.errs = s.folderErrs[before:]
	if err := p.recordErrors(ctx); err != nil {
		return nil, err
	}
	out := p.plan.remote[:0]
	for _, rf := range p.plan.remote {
		if s.opts.DryRun && p.plan.touched[rf.Local] && !s.dryCreated[rf.Remote] ||
			slices.ContainsFunc(failed, func(f failedFolder) bool { return f.covers(rf.Local) }) {
			continue
		}
		out = append(out, rf)
	}
	return out, nil
}

// recordErrors records the errors of the folders left out that the index
// knows as their last error, for status.
func (p *folderPlanner) recordErrors(ctx context.Context) error {
	if len(p.plan.errs) == 0 {
		return nil
	}
	now := time.Now()
	return p.s.opts.Index.Write(ctx, func(tx *index.Tx) error {
		for _, fr := range p.plan.errs {
			for _, f := range p.known {
				if collisionKey(f.Name, p.foldCase) == collisionKey(fr.Name, p.foldCase) {
					if err := tx.SetSyncResult(f.ID, now, fr.Err.Error()); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

func (s *syncer) newFolderPlanner(ctx context.Context, c *imapclient.Client, acct index.AccountID, remote, all []remoteFolder) (*folderPlanner, error) {
	o := &s.opts
	p := &folderPlanner{s: s, c: c, names: s.names, all: all,
		blocked: map[string]bool{}, claimedR: map[string]bool{}, claimedL: map[string]bool{}}
	p.plan.touched = map[string]bool{}
	accountDir := filepath.Join(o.Root, maildir.EncodeName(o.Account))
	p.foldCase = caseInsensitiveFS(accountDir)
	err := maildir.WalkFolders(accountDir, func(name string, d *maildir.Dir) error {
		if !Match(o.Folders, name) {
			return nil
		}
		uv, err := d.UIDValidity()
		if err != nil {
			return err
		}
		p.locals = append(p.locals, localFolder{name: name, path: d.Path, uv: uv})
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		p.known, err = tx.Folders(acct)
		return err
	}); err != nil {
		return nil, err
	}
	// Parents before children: renaming a parent moves its children.
	slices.SortFunc(p.known, func(a, b *index.Folder) int { return strings.Compare(a.Name, b.Name) })
	var groups [][]remoteFolder
	p.remote, groups = splitCollisions(remote, p.foldCase)
	for _, g := range groups {
		p.blocked[collisionKey(g[0].Local, p.foldCase)] = true
		p.plan.errs = append(p.plan.errs, FolderResult{Name: groupLocal(g, p.names), Err: collisionError(g, p.names)})
	}
	for _, f := range p.known {
		if p.remoteByName(f.Name) != nil {
			p.claimedR[f.Name] = true
		}
		if p.localByName(f.Name) != nil {
			p.claimedL[f.Name] = true
		}
	}
	return p, nil
}

func (p *folderPlanner) isBlocked(name string) bool {
	return p.blocked[collisionKey(name, p.foldCase)]
}

func (p *folderPlanner) remoteByName(local string) *remoteFolder {
	for i := range p.remote {
		if p.remote[i].Local == local {
			return &p.remote[i]
		}
	}
	return nil
}

func (p *folderPlanner) localByName(name string) *localFolder {
	for i := range p.locals {
		if p.locals[i].name == name {
			return &p.locals[i]
		}
	}
	return nil
}

// add appends an action to the plan; touched are the local names of the
// folders it changes.
func (p *folderPlanner) add(a folderAction, touched ...string) {
	a.touched = touched
	p.plan.actions = append(p.plan.actions, a)
	for _, t := range touched {
		p.plan.touched[t] = true
	}
}

// fail leaves a folder out of this run with err.
func (p *folderPlanner) fail(name string, err error) {
	p.plan.errs = append(p.plan.errs, FolderResult{Name: name, Err: err})
}

// drop takes the server folder synced as local out of this run.
func (p *folderPlanner) drop(local string) {
	p.remote = slices.DeleteFunc(p.remote, func(rf remoteFolder) bool { return rf.Local == local })
}

// planAll plans the known folders, then the new local ones.
func (p *folderPlanner) planAll(ctx context.Context) error {
	for _, f := range p.known {
		if !Match(p.s.opts.Folders, f.Name) || p.isBlocked(f.Name) {
			continue
		}
		if err := p.planKnown(ctx, f); err != nil {
			// A server's refusal (a STATUS or EXAMINE answered NO)
			// is the folder's: left out of this run, tried again on
			// the next. Anything else ends the account's run.
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) {
				return err
			}
			p.fail(f.Name, err)
			p.drop(f.Name)
		}
	}
	p.planNewLocal()
	p.plan.remote = p.remote
	return nil
}

// planKnown plans one folder the index knows.
func (p *folderPlanner) planKnown(ctx context.Context, f *index.Folder) error {
	o := &p.s.opts
	r, err := p.findRemote(ctx, f)
	if err != nil {
		return err
	}
	l, err := p.findLocal(ctx, f)
	if err != nil {
		return err
	}
	switch {
	case r != nil && l != nil && r.Local == f.Name && l.name == f.Name:
		// unchanged
	case r != nil && l != nil && r.Local != f.Name:
		// Renamed upstream (and perhaps locally too: the server's name wins).
		return p.renameLocal(f, l, r.Local, fmt.Sprintf("rename local folder %q to %q (renamed upstream)", f.Name, r.Local))
	case r != nil && l != nil: // renamed locally
		if o.push() {
			p.renameRemote(f, r, l)
			return nil
		}
		return p.renameLocal(f, l, f.Name, fmt.Sprintf("rename local folder %q back to %q (direction is pull)", l.name, f.Name))
	case r == nil && l != nil:
		return p.goneUpstream(ctx, f, l)
	case r != nil && l == nil:
		return p.goneLocally(ctx, f, r)
	default: // gone on both sides
		p.add(folderAction{kind: actForget, folder: f})
	}
	return nil
}

// renameLocal plans renaming the local folder l (known as f) to to, and
// updates the view: the known folders and local folders below it follow.
func (p *folderPlanner) renameLocal(f *index.Folder, l *localFolder, to, line string) error {
	o := &p.s.opts
	p.add(folderAction{kind: actRenameLocal, line: line, from: f.Name, path: l.path, to: to}, to, f.Name, l.name)
	knownFrom, localFrom := f.Name, l.name
	for _, k := range p.known {
		k.Name, _ = renamedBelow(k.Name, knownFrom, to)
	}
	for i := range p.locals {
		if n, ok := renamedBelow(p.locals[i].name, localFrom, to); ok {
			path, err := maildir.FolderDir(o.Root, o.Account, n)
			if err != nil {
				return err
			}
			p.locals[i].name, p.locals[i].path = n, path
			p.claimedL[n] = true
		}
	}
	for _, rf := range p.remote {
		if _, below := renamedBelow(rf.Local, to, to); below {
			p.plan.touched[rf.Local] = true
		}
	}
	return nil
}

// renamedBelow renames name if it is from or below it.
func renamedBelow(name, from, to string) (string, bool) {
	if name == from || strings.HasPrefix(name, from+"/") {
		return to + strings.TrimPrefix(name, from), true
	}
	return name, false
}

// renameRemote plans a RENAME upstream of r (known as f) after the local
// folder l, and updates the view.
func (p *folderPlanner) renameRemote(f *index.Folder, r *remoteFolder, l *localFolder) {
	to := p.names.Remote(l.name)
	if !p.names.RoundTrips(l.name) || p.remoteNamed(to) != nil {
		p.fail(l.name, fmt.Errorf("local folder %q (renamed from %q) cannot be renamed upstream: as %q it would be "+
			"another folder's or come back under another name; neither is synced until one is renamed", l.name, f.Name, to))
		p.drop(r.Local)
		return
	}
	p.add(folderAction{kind: actRenameRemote, line: fmt.Sprintf("rename server folder %q to %q (renamed locally)", r.Remote, to),
		remote: r.Remote, newRemote: to, from: f.Name, to: l.name}, r.Local, l.name, f.Name)
	oldRemote, oldLocal := r.Remote, f.Name
	for i := range p.remote {
		if rf := &p.remote[i]; rf.Remote == oldRemote || strings.HasPrefix(rf.Remote, oldRemote+string(p.names.Delim)) {
			rf.Remote = to + strings.TrimPrefix(rf.Remote, oldRemote)
			rf.Local = l.name + strings.TrimPrefix(rf.Local, oldLocal)
			p.plan.touched[rf.Local] = true
		}
	}
	for _, k := range p.known {
		k.Name, _ = renamedBelow(k.Name, oldLocal, l.name)
	}
}

// remoteNamed returns the server folder with the given server name.
func (p *folderPlanner) remoteNamed(name string) *remoteFolder {
	for i := range p.all {
		if p.all[i].Remote == name || strings.EqualFold(name, "INBOX") && strings.EqualFold(p.all[i].Remote, "INBOX") {
			return &p.all[i]
		}
	}
	return nil
}

// goneUpstream plans a known folder the server did not list.
func (p *folderPlanner) goneUpstream(ctx context.Context, f *index.Folder, l *localFolder) error {
	o := &p.s.opts
	g, err := p.confirmGone(ctx, f)
	if err != nil {
		return err
	}
	switch {
	case g.listed != nil: // the LIST left it out, the server has it
		p.s.log.Warn("the server did not list a folder it has; syncing it", "folder", f.Name, "server", g.listed.Remote)
		p.remote = append(p.remote, *g.listed)
		p.claimedR[f.Name] = true
	case !g.gone:
		p.add(folderAction{kind: actNote, line: fmt.Sprintf("keep local folder %q without syncing it: %s", f.Name, g.why)}, f.Name)
	case o.Archive:
		// An archive keeps every message: the folder stays here, as it is.
		p.add(folderAction{kind: actNote, line: fmt.Sprintf("keep local folder %q, deleted upstream, without syncing it (archive)", f.Name)}, f.Name)
	case o.RemoveFolders && o.pullDeletes():
		return p.removeLocal(ctx, f, l)
	case o.push() && o.CreateFolders:
		name := p.names.Remote(f.Name)
		p.add(folderAction{kind: actRecreateRemote, folder: f, newRemote: name,
			line: fmt.Sprintf("create server folder %q again and upload its messages (deleted upstream, still here)", f.Name)}, f.Name)
		p.remote = append(p.remote, remoteFolder{Remote: name, Local: f.Name, Delim: p.names.Delim})
	default:
		p.add(folderAction{kind: actNote, line: fmt.Sprintf("keep local folder %q, deleted upstream, without syncing it", f.Name)}, f.Name)
	}
	return nil
}

// removeLocal plans removing the local folder l (known as f), deleted
// upstream: past the deletion valve, and keeping what has no copy upstream.
func (p *folderPlanner) removeLocal(ctx context.Context, f *index.Folder, l *localFolder) error {
	o := &p.s.opts
	deletable, keep, err := p.sortForRemoval(ctx, f, l)
	if err != nil {
		return err
	}
	if err := o.checkFolderRemoval(len(deletable), fmt.Sprintf("local folder %q (deleted upstream) with its %d messages", f.Name, len(deletable))); err != nil {
		p.fail(f.Name, err)
		return nil
	}
	a := folderAction{kind: actRemoveLocal, folder: f, from: f.Name, path: l.path, deletable: deletable, recover: keep}
	a.line = fmt.Sprintf("remove local folder %q (deleted upstream) with its %d messages", f.Name, len(deletable))
	if keep > 0 {
		a.recoverTo = recoveryName(f.Name)
		a.line += fmt.Sprintf(", after moving the %d without a copy upstream to local folder %q", keep, a.recoverTo)
	}
	p.add(a, f.Name, a.recoverTo)
	return nil
}

// recoveryName is the local folder that receives the files of a removed
// folder that have no copy upstream: Recovered/<folder>, so that the
// original place is plain to see and one folder holds all recoveries.
func recoveryName(folder string) string { return "Recovered/" + folder }

// goneLocally plans a known folder whose Maildir is gone.
func (p *folderPlanner) goneLocally(ctx context.Context, f *index.Folder, r *remoteFolder) error {
	o := &p.s.opts
	if !(o.push() && o.RemoveFolders && o.pushDeletes()) {
		why := "remove_folders is off"
		if o.RemoveFolders {
			why = "local deletions are not carried upstream"
		}
		p.add(folderAction{kind: actForget, folder: f,
			line: fmt.Sprintf("fetch folder %q again (deleted locally; %s)", f.Name, why)}, r.Local)
		return nil
	}
	unchanged, n, err := p.unchangedUpstream(ctx, f, r)
	if err != nil {
		return err
	}
	if o.Archive && !(unchanged && n == 0) {
		// An archive keeps every message: the server's copies are all
		// there is of them now, so the deletion is not carried upstream
		// (neither the folder nor, one by one, its messages); the folder
		// is fetched again. An empty one goes: nothing is lost.
		p.add(folderAction{kind: actForget, folder: f,
			line: fmt.Sprintf("fetch folder %q again (deleted locally; the archive keeps its messages, "+
				"so a folder with messages is not deleted upstream)", f.Name)}, r.Local)
		return nil
	}
	if !unchanged {
		// It holds messages that never came here, or changes made since:
		// synced message by message (local deletions of what came here go
		// up, past the deletion valve; the rest comes down).
		p.add(folderAction{kind: actNote, line: fmt.Sprintf("keep server folder %q, deleted locally: it changed upstream "+
			"since the last sync, so it is synced message by message (what was here is deleted there, what is new comes down)", r.Remote)})
		return nil
	}
	if err := o.checkFolderRemoval(n, fmt.Sprintf("server folder %q (deleted locally) with its %d messages", r.Remote, n)); err != nil {
		p.fail(f.Name, err)
		p.drop(r.Local)
		return nil
	}
	p.add(folderAction{kind: actDeleteRemote, folder: f, remote: r.Remote,
		line: fmt.Sprintf("delete server folder %q with its %d messages (deleted locally)", r.Remote, n)}, r.Local)
	p.drop(r.Local)
	return nil
}

// planNewLocal plans the local folders the index does not know.
func (p *folderPlanner) planNewLocal() {
	o := &p.s.opts
	if !o.push() || !o.CreateFolders {
		return
	}
	for _, l := range p.locals {
		if p.claimedL[l.name] || p.remoteByName(l.name) != nil || p.isBlocked(l.name) {
			continue
		}
		if slices.ContainsFunc(p.known, func(f *index.Folder) bool { return f.Name == l.name }) {
			continue
		}
		name := p.names.Remote(l.name)
		if !p.names.RoundTrips(l.name) || p.remoteNamed(name) != nil {
			p.fail(l.name, fmt.Errorf("local folder %q is not created upstream: as %q it would be another folder's "+
				"or come back under another name; rename it", l.name, name))
			continue
		}
		p.add(folderAction{kind: actCreateRemote, newRemote: name, line: fmt.Sprintf("create server folder %q (new locally)", l.name)}, l.name)
		p.remote = append(p.remote, remoteFolder{Remote: name, Local: l.name, Delim: p.names.Delim})
	}
}

// checkFolderRemoval is checkDeletes for removing a whole folder of n
// messages: all of them are deleted.
func (o *Options) checkFolderRemoval(n int, what string) error {
	if o.checkDeletes("", n, n, "") == nil {
		return nil
	}
	return fmt.Errorf("%w: this run would delete %s; check what happened, then run with --force", ErrTooManyDeletes, what)
}
