package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Folder-level sync. Every folder the index knows is looked up on both
// sides: by name, else by UIDVALIDITY (the server keeps a folder's
// UIDVALIDITY across RENAME, and the local Maildir records it in
// .postfach-uidvalidity), so a rename on either side is recognized as one
// and followed without moving any message. Then:
//
//	server  local    what happens
//	same    same     nothing
//	renamed same     the local folder is renamed (Maildir directory and index)
//	same    renamed  RENAME upstream (push), else the local folder is renamed back
//	gone    there    remove_folders: removed locally; else with push and
//	                 create_folders: CREATEd again upstream and its messages
//	                 uploaded; else kept locally and left alone
//	there   gone     push and remove_folders: DELETEd upstream; else fetched again
//	gone    gone     forgotten
//
// A folder only one side has and the index does not know is new: created on
// the other side (CREATE upstream needs push and create_folders). Every step
// is idempotent, so a crash between a server command and the index update
// is resolved by the same comparison on the next run.

type localFolder struct {
	name string // '/'-separated
	path string
	uv   uint32 // recorded UIDVALIDITY, 0 if none
}

// syncFolders reconciles the folder lists and returns the folders to sync.
func (s *syncer) syncFolders(ctx context.Context, c *imapclient.Client, acct index.AccountID, remote []remoteFolder) ([]remoteFolder, error) {
	o := &s.opts
	accountDir := filepath.Join(o.Root, maildir.EncodeName(o.Account))
	var locals []localFolder
	err := maildir.WalkFolders(accountDir, func(name string, d *maildir.Dir) error {
		if !Match(o.Folders, name) {
			return nil
		}
		uv, err := d.UIDValidity()
		if err != nil {
			return err
		}
		locals = append(locals, localFolder{name: name, path: d.Path, uv: uv})
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var known []*index.Folder
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		known, err = tx.Folders(acct)
		return err
	}); err != nil {
		return nil, err
	}
	// Parents before children: renaming a parent moves its children.
	sort.Slice(known, func(i, j int) bool { return known[i].Name < known[j].Name })

	delim := '/'
	for _, rf := range remote {
		if rf.Delim != 0 {
			delim = rf.Delim
			break
		}
	}
	remoteBy := map[string]*remoteFolder{}
	for i := range remote {
		remoteBy[remote[i].Local] = &remote[i]
	}
	localBy := map[string]*localFolder{}
	for i := range locals {
		localBy[locals[i].name] = &locals[i]
	}
	claimedR, claimedL := map[string]bool{}, map[string]bool{}
	for _, f := range known {
		if _, ok := remoteBy[f.Name]; ok {
			claimedR[f.Name] = true
		}
		if _, ok := localBy[f.Name]; ok {
			claimedL[f.Name] = true
		}
	}
	findRemote := func(f *index.Folder) *remoteFolder {
		if r := remoteBy[f.Name]; r != nil {
			return r
		}
		if f.UIDValidity == 0 {
			return nil
		}
		for name, r := range remoteBy {
			if !claimedR[name] && r.Status != nil && r.Status.UIDValidity == f.UIDValidity {
				claimedR[name] = true
				return r
			}
		}
		return nil
	}
	findLocal := func(f *index.Folder) *localFolder {
		if l := localBy[f.Name]; l != nil {
			return l
		}
		if f.UIDValidity == 0 {
			return nil
		}
		for name, l := range localBy {
			if !claimedL[name] && l.uv == f.UIDValidity {
				claimedL[name] = true
				return l
			}
		}
		return nil
	}

	// moveTree updates the in-memory view after a folder and the folders
	// below it were renamed locally.
	moveTree := func(knownFrom, localFrom, to string) error {
		rename := func(name, from string) (string, bool) {
			if name == from || strings.HasPrefix(name, from+"/") {
				return to + strings.TrimPrefix(name, from), true
			}
			return name, false
		}
		for _, k := range known {
			k.Name, _ = rename(k.Name, knownFrom)
		}
		localBy = map[string]*localFolder{}
		for i := range locals {
			if n, ok := rename(locals[i].name, localFrom); ok {
				p, err := maildir.FolderDir(o.Root, o.Account, n)
				if err != nil {
					return err
				}
				locals[i].name, locals[i].path = n, p
				claimedL[n] = true
			}
			localBy[locals[i].name] = &locals[i]
		}
		return nil
	}

	skip := map[string]bool{} // remote folders not to sync this run
	// act records a folder-level action; in a dry run it only records it,
	// the folders involved are left out of the plan, and act returns false.
	act := func(skipRemote string, format string, args ...any) bool {
		line := fmt.Sprintf(format, args...)
		if o.DryRun {
			s.actions = append(s.actions, "would "+line)
			if skipRemote != "" {
				skip[skipRemote] = true
			}
			return false
		}
		s.actions = append(s.actions, line)
		s.log.Info(line)
		return true
	}
	for _, f := range known {
		if !Match(o.Folders, f.Name) {
			continue
		}
		r, l := findRemote(f), findLocal(f)
		switch {
		case r != nil && l != nil && r.Local == f.Name && l.name == f.Name:
			// unchanged
		case r != nil && l != nil && r.Local != f.Name:
			// Renamed upstream (and perhaps locally too: the server's name wins).
			if !act(r.Remote, "rename local folder %q to %q (renamed upstream)", f.Name, r.Local) {
				continue
			}
			if err := s.renameLocal(ctx, acct, f.Name, l.path, r.Local); err != nil {
				return nil, err
			}
			if err := moveTree(f.Name, l.name, r.Local); err != nil {
				return nil, err
			}
		case r != nil && l != nil: // renamed locally
			if o.push() {
				to := RemoteName(l.name, delim, o.FolderMap)
				if !act(r.Remote, "rename server folder %q to %q (renamed locally)", r.Remote, to) {
					continue
				}
				if err := c.Rename(r.Remote, to, nil).Wait(); err != nil {
					return nil, fmt.Errorf("RENAME %s: %w", r.Remote, err)
				}
				oldRemote := r.Remote
				for i := range remote {
					if rf := &remote[i]; rf.Remote == oldRemote || strings.HasPrefix(rf.Remote, oldRemote+string(delim)) {
						rf.Remote = to + strings.TrimPrefix(rf.Remote, oldRemote)
						rf.Local = l.name + strings.TrimPrefix(rf.Local, f.Name)
					}
				}
				if err := s.renameIndex(ctx, acct, f.Name, l.name); err != nil {
					return nil, err
				}
				for _, k := range known {
					if k.Name == f.Name || strings.HasPrefix(k.Name, f.Name+"/") {
						k.Name = l.name + strings.TrimPrefix(k.Name, f.Name)
					}
				}
			} else {
				if !act(r.Remote, "rename local folder %q back to %q (direction is pull)", l.name, f.Name) {
					continue
				}
				if err := s.renameLocal(ctx, acct, f.Name, l.path, f.Name); err != nil {
					return nil, err
				}
				if err := moveTree(f.Name, l.name, f.Name); err != nil {
					return nil, err
				}
			}
		case r == nil && l != nil: // gone upstream
			switch {
			case o.RemoveFolders && o.pull():
				if !act("", "remove local folder %q (deleted upstream)", f.Name) {
					continue
				}
				if err := removeMaildir(l.path); err != nil {
					return nil, err
				}
				if err := o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DeleteFolder(f.ID) }); err != nil {
					return nil, err
				}
			case o.push() && o.CreateFolders:
				if !act("", "create server folder %q again and upload its messages (deleted upstream, still here)", f.Name) {
					continue
				}
				rf, err := createRemote(c, f.Name, delim, o.FolderMap)
				if err != nil {
					return nil, err
				}
				if err := o.Index.Write(ctx, func(tx *index.Tx) error { return tx.ResetRemoteState(f.ID) }); err != nil {
					return nil, err
				}
				remote = append(remote, rf)
			default:
				act("", "keep local folder %q, deleted upstream, without syncing it", f.Name)
			}
		case r != nil && l == nil: // gone locally
			if o.push() && o.RemoveFolders {
				if !act(r.Remote, "delete server folder %q (deleted locally)", r.Remote) {
					continue
				}
				if err := c.Delete(r.Remote).Wait(); err != nil {
					return nil, fmt.Errorf("DELETE %s: %w", r.Remote, err)
				}
				skip[r.Remote] = true
			} else {
				act(r.Remote, "fetch folder %q again (deleted locally; remove_folders is off)", f.Name)
			}
			if err := o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DeleteFolder(f.ID) }); err != nil {
				return nil, err
			}
		default: // gone on both sides
			if err := o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DeleteFolder(f.ID) }); err != nil {
				return nil, err
			}
		}
	}
	// New local folders.
	if o.push() && o.CreateFolders {
		for _, l := range locals {
			if claimedL[l.name] || remoteBy[l.name] != nil {
				continue
			}
			if _, isKnown := knownByName(known, l.name); isKnown {
				continue
			}
			if !act("", "create server folder %q (new locally)", l.name) {
				continue
			}
			rf, err := createRemote(c, l.name, delim, o.FolderMap)
			if err != nil {
				return nil, err
			}
			remote = append(remote, rf)
		}
	}
	out := remote[:0]
	for _, rf := range remote {
		if !skip[rf.Remote] {
			out = append(out, rf)
		}
	}
	return out, nil
}

func knownByName(known []*index.Folder, name string) (*index.Folder, bool) {
	for _, f := range known {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

func createRemote(c *imapclient.Client, local string, delim rune, fmap map[string]string) (remoteFolder, error) {
	name := RemoteName(local, delim, fmap)
	if err := c.Create(name, nil).Wait(); err != nil {
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeAlreadyExists {
			return remoteFolder{}, fmt.Errorf("CREATE %s: %w", name, err)
		}
	}
	return remoteFolder{Remote: name, Local: local, Delim: delim}, nil
}

// renameLocal moves a folder's Maildir (and the folders below it) from
// fromPath to the folder name to, and renames the index folder from (and
// those below it) to match.
func (s *syncer) renameLocal(ctx context.Context, acct index.AccountID, from, fromPath, to string) error {
	o := &s.opts
	toPath, err := maildir.FolderDir(o.Root, o.Account, to)
	if err != nil {
		return err
	}
	if fromPath != toPath {
		if _, err := os.Stat(filepath.Join(toPath, "cur")); err == nil {
			return fmt.Errorf("cannot rename folder %q to %q: the target exists locally", from, to)
		}
		if err := os.MkdirAll(filepath.Dir(toPath), 0o700); err != nil {
			return err
		}
		if err := os.Rename(fromPath, toPath); err != nil {
			return err
		}
	}
	return s.renameIndex(ctx, acct, from, to)
}

// renameIndex renames a folder and the folders below it in the index.
func (s *syncer) renameIndex(ctx context.Context, acct index.AccountID, from, to string) error {
	o := &s.opts
	return o.Index.Write(ctx, func(tx *index.Tx) error {
		folders, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for _, f := range folders {
			if f.Name != from && !strings.HasPrefix(f.Name, from+"/") {
				continue
			}
			name := to + strings.TrimPrefix(f.Name, from)
			path, err := maildir.FolderDir(o.Root, o.Account, name)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(o.Root, path)
			if err != nil {
				return err
			}
			if err := tx.RenameFolder(f.ID, name, rel); err != nil {
				return err
			}
		}
		return nil
	})
}

// removeMaildir removes a folder's Maildir: its cur/, new/, tmp/ and state
// file, and the directory itself unless it holds subfolders.
func removeMaildir(path string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.RemoveAll(filepath.Join(path, sub)); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(path, maildir.UIDValidityFile))
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Subfolders remain: leave the directory.
		return nil
	}
	return nil
}
