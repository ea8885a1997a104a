package imapsync

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Partial runs (Options.Only). The agent syncs the folders a push named
// (an IDLE connection saw a change, the local watcher saw a file change)
// without the folder-level pass: no folder is created, renamed or deleted
// on either side, and only the named folders' Maildirs and rows are read.
// The LIST (one round trip, with LIST-STATUS the folders' states too) and
// the namespace check stay: they give the server names and tell a folder
// that is there from one that is not.
//
// A partial run never decides anything about a folder's existence: a
// folder the folder-level pass would have to look at turns the run into a
// full one (Result.Partial false). That is the case when a named folder
// that the patterns select is
//   - not in the LIST, or in a group of server folders that collide,
//   - not known to the index, or known without a UIDVALIDITY (never synced),
//   - listed with another UIDVALIDITY than the index recorded (renamed or
//     recreated upstream),
//   - without its Maildir (cur/) under its name (deleted or renamed locally),
//
// or when the namespace prefix changed. Named folders the patterns do not
// select are left out; a run left with none syncs nothing.
//
// Moves between folders are found as in a full run (moves.go), but the
// other folders' listings are read only when a named folder has files the
// index does not know or rows whose file is gone: a message moved from a
// named folder to another, or from another to a named one, is moved
// upstream with UID MOVE, never deleted and uploaded again. A folder a
// queued move of the local endpoints (intents.go) went into upstream is
// synced too, named or not (withMovedInto).

// partialFolders returns the folders a partial run syncs, or ok false
// (with why) when the run must be a full one. selected are the server
// folders the patterns select.
func (s *syncer) partialFolders(ctx context.Context, acct index.AccountID, selected []remoteFolder) (out []remoteFolder, ok bool, why string, err error) {
	o := &s.opts
	var known []*index.Folder
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		known, err = tx.Folders(acct)
		return err
	}); err != nil {
		return nil, false, "", err
	}
	byName := make(map[string]*index.Folder, len(known))
	for _, f := range known {
		byName[f.Name] = f
	}
	accountDir := filepath.Join(o.Root, maildir.EncodeName(o.Account))
	clean, groups := splitCollisions(selected, caseInsensitiveFS(accountDir))
	for _, name := range o.Only {
		if !Match(o.Folders, name) || containsFolder(out, name) {
			continue
		}
		for _, g := range groups {
			for _, rf := range g {
				if rf.Local == name {
					return nil, false, "folder " + name + " collides with another upstream", nil
				}
			}
		}
		var rf *remoteFolder
		for i := range clean {
			if clean[i].Local == name {
				rf = &clean[i]
			}
		}
		f := byName[name]
		switch {
		case rf == nil:
			return nil, false, "folder " + name + " is not listed upstream", nil
		case f == nil || f.UIDValidity == 0:
			return nil, false, "folder " + name + " was never synced", nil
		case rf.Status != nil && rf.Status.UIDValidity != f.UIDValidity:
			return nil, false, "folder " + name + " has a new UIDVALIDITY upstream", nil
		}
		dir, err := maildir.FolderDir(o.Root, o.Account, name)
		if err != nil {
			return nil, false, "", err
		}
		if st, err := os.Stat(filepath.Join(dir, "cur")); err != nil || !st.IsDir() {
			return nil, false, "local folder " + name + " is gone", nil
		}
		out = append(out, *rf)
	}
	return out, true, "", nil
}

func containsFolder(fs []remoteFolder, local string) bool {
	for _, rf := range fs {
		if rf.Local == local {
			return true
		}
	}
	return false
}

// onlyFolders is the index folders a partial run names (all of them in a
// full run).
func (s *syncer) onlyFolders(known []*index.Folder) []*index.Folder {
	if len(s.opts.Only) == 0 {
		return known
	}
	var out []*index.Folder
	for _, f := range known {
		if slices.Contains(s.opts.Only, f.Name) {
			out = append(out, f)
		}
	}
	return out
}

// partialOrFull returns the folders to sync and those moves may go
// between: of a partial run when Options.Only names folders and
// partialFolders allows it (setting s.partial), else of the folder-level
// pass (syncFolders). prefixChanged: the namespace prefix changed in this
// run, which only a full run handles.
func (s *syncer) partialOrFull(ctx context.Context, c *imapclient.Client, acct index.AccountID, selected, all []remoteFolder, prefixChanged bool) (run, moves []remoteFolder, err error) {
	if len(s.opts.Only) > 0 {
		why := "the namespace prefix changed"
		if !prefixChanged {
			var ok bool
			run, ok, why, err = s.partialFolders(ctx, acct, selected)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				s.partial = true
				accountDir := filepath.Join(s.opts.Root, maildir.EncodeName(s.opts.Account))
				moves, _ = splitCollisions(selected, caseInsensitiveFS(accountDir))
				s.log.Debug("partial run", "folders", len(run))
				return run, moves, nil
			}
		}
		s.log.Debug("a full run instead of a partial one", "why", why)
	}
	run, err = s.syncFolders(ctx, c, acct, selected, all)
	return run, run, err
}

// onlyRemote is the server folders a partial run names (all of them in a
// full run).
func (s *syncer) onlyRemote(folders []remoteFolder) []remoteFolder {
	if len(s.opts.Only) == 0 {
		return folders
	}
	var out []remoteFolder
	for _, rf := range folders {
		if slices.Contains(s.opts.Only, rf.Local) {
			out = append(out, rf)
		}
	}
	return out
}
