package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// applyFolders carries out the planned folder actions in order and records
// them in the Result; a dry run only records them ("would ...").
//
// An action that fails (the server refuses a CREATE, RENAME or DELETE; a
// local rename fails) fails its folders only: they are reported, left out
// of this run, and tried again on the next, as a refused upload is. The
// later actions on those folders (or below a folder a rename failed for)
// are not carried out. It returns the local names left out, and an error
// only for a failure that ends the account's run: the connection is lost,
// or the run was cancelled.
func (s *syncer) applyFolders(ctx context.Context, c *imapclient.Client, acct index.AccountID, actions []folderAction) (failed []failedFolder, err error) {
	o := &s.opts
	for _, a := range actions {
		if f, ok := blockedBy(failed, a); ok {
			err := fmt.Errorf("not done, as %q failed: %s", f.name, a.line)
			s.folderErrs = append(s.folderErrs, FolderResult{Name: a.name(), Err: err})
			failed = append(failed, a.failed()...)
			continue
		}
		if a.line != "" {
			if o.DryRun {
				s.actions = append(s.actions, "would "+a.line)
			} else {
				s.actions = append(s.actions, a.line)
				s.log.Info(a.line)
			}
		}
		if o.DryRun {
			if a.kind == actCreateRemote || a.kind == actRecreateRemote {
				s.dryCreated[a.newRemote] = true // planned as an empty server folder
			}
			if a.recover > 0 {
				s.recovered = append(s.recovered, Recovery{From: a.from, To: a.recoverTo, Messages: a.recover})
			}
			continue
		}
		if err := s.applyFolder(ctx, c, acct, a); err != nil {
			if accountFatal(ctx, err) {
				return failed, err
			}
			s.log.Warn("a folder action failed; the folder is left out of this run", "folder", a.name(), "err", err)
			s.folderErrs = append(s.folderErrs, FolderResult{Name: a.name(), Err: err})
			failed = append(failed, a.failed()...)
		}
	}
	return failed, nil
}

// failedFolder is a local folder name an action failed for; below: the
// folders below it too.
type failedFolder struct {
	name  string
	below bool
}

// covers reports whether name is f's, or below it when that counts.
func (f failedFolder) covers(name string) bool {
	return name == f.name || f.below && strings.HasPrefix(name, f.name+"/")
}

// failed lists the folders a failure of a leaves out: those it touches,
// and for a rename whatever is below them (the plan moved it along).
func (a *folderAction) failed() []failedFolder {
	below := a.kind == actRenameLocal || a.kind == actRenameRemote
	out := make([]failedFolder, 0, len(a.touched))
	for _, t := range a.touched {
		if t != "" {
			out = append(out, failedFolder{name: t, below: below})
		}
	}
	return out
}

// blockedBy returns the failed folder that one of a's folders is.
func blockedBy(failed []failedFolder, a folderAction) (failedFolder, bool) {
	for _, f := range failed {
		for _, t := range a.touched {
			if f.covers(t) {
				return f, true
			}
		}
	}
	return failedFolder{}, false
}

// name is the local folder an action is reported under.
func (a *folderAction) name() string {
	switch {
	case a.to != "":
		return a.to
	case a.from != "":
		return a.from
	case a.folder != nil:
		return a.folder.Name
	case len(a.touched) > 0:
		return a.touched[0]
	}
	return a.newRemote
}

// accountFatal reports whether err, from a folder-level command, ends the
// account's run: the run was cancelled, or the connection is gone. A
// server's refusal (NO, BAD) and a local failure are the folder's.
func accountFatal(ctx context.Context, err error) bool {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return false
	}
	var netErr net.Error
	return ctx.Err() != nil || isConnErr(err) || errors.Is(err, net.ErrClosed) || errors.As(err, &netErr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (s *syncer) applyFolder(ctx context.Context, c *imapclient.Client, acct index.AccountID, a folderAction) error {
	o := &s.opts
	forget := func() error {
		return o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DeleteFolder(a.folder.ID) })
	}
	switch a.kind {
	case actNote:
	case actRenameLocal:
		return s.renameLocal(ctx, acct, a.from, a.path, a.to)
	case actRenameRemote:
		if err := c.Rename(a.remote, a.newRemote, nil).Wait(); err != nil {
			return fmt.Errorf("RENAME %s: %w", a.remote, err)
		}
		return s.renameIndex(ctx, acct, a.from, a.to)
	case actRemoveLocal:
		if err := s.removeLocal(a); err != nil {
			return err
		}
		return forget()
	case actDeleteRemote:
		if err := c.Delete(a.remote).Wait(); err != nil {
			return fmt.Errorf("DELETE %s: %w", a.remote, err)
		}
		return forget()
	case actRecreateRemote:
		if err := createRemote(c, a.newRemote); err != nil {
			return err
		}
		return o.Index.Write(ctx, func(tx *index.Tx) error { return tx.ResetRemoteState(a.folder.ID) })
	case actCreateRemote:
		return createRemote(c, a.newRemote)
	case actForget:
		return forget()
	}
	return nil
}

// createRemote CREATEs a server folder; one that exists already is fine.
func createRemote(c *imapclient.Client, name string) error {
	if err := c.Create(name, nil).Wait(); err != nil {
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeAlreadyExists {
			return fmt.Errorf("CREATE %s: %w", name, err)
		}
	}
	return nil
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
			name, ok := renamedBelow(f.Name, from, to)
			if !ok {
				continue
			}
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

// removeLocal removes a local folder deleted upstream: first every file
// that was not planned as deletable (see sortForRemoval; a file another
// program renamed or added since is not) is moved to the recovery folder
// and made durable there; then the others go, and the Maildir with them
// (its directory stays if it holds subfolders). A crash on the way leaves
// each file in one of the two folders, and the next run goes on.
func (s *syncer) removeLocal(a folderAction) error {
	o := &s.opts
	src := &maildir.Dir{Path: a.path}
	var dst *maildir.Dir
	moved := 0
	// Twice: a file may arrive while the first pass runs.
	for range 2 {
		entries, err := src.Scan()
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return err
		}
		for _, e := range entries {
			if a.deletable[e.Sub+"/"+e.Name] {
				continue
			}
			if dst == nil {
				to := a.recoverTo
				if to == "" {
					to = recoveryName(a.from)
				}
				p, err := maildir.FolderDir(o.Root, o.Account, to)
				if err != nil {
					return err
				}
				if dst, err = maildir.Open(p); err != nil {
					return err
				}
				a.recoverTo = to
			}
			if err := moveFile(src, dst, e); err != nil {
				return fmt.Errorf("folder %q: keeping a message without a copy upstream: %w", a.from, err)
			}
			moved++
		}
		if dst != nil {
			if err := dst.SyncDir(); err != nil {
				return err
			}
		}
		for name := range a.deletable {
			if err := os.Remove(filepath.Join(a.path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if moved > 0 {
		s.recovered = append(s.recovered, Recovery{From: a.from, To: a.recoverTo, Messages: moved})
		s.log.Warn("kept the messages of a folder deleted upstream that have no copy there",
			"folder", a.from, "messages", moved, "moved_to", a.recoverTo)
	}
	return maildir.RemoveFolder(a.path)
}

// moveFile moves e from one Maildir to another (same sub directory),
// without its ,U= tag: that UID was the old folder's. It links the file
// into dst before it unlinks it from src, so a crash leaves it in src (and
// perhaps in dst too: the next run finds the same file there and only
// unlinks). It never replaces a file: a name dst has for another file
// makes it pick a new key.
func moveFile(src, dst *maildir.Dir, e maildir.Entry) error {
	from := src.FilePath(e)
	name := withoutUID(e.Name)
	for try := 0; ; try++ {
		to := filepath.Join(dst.Path, e.Sub, name)
		err := os.Link(from, to)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || try == 3 {
			return err
		}
		if a, err1 := os.Stat(from); err1 == nil {
			if b, err2 := os.Stat(to); err2 == nil && os.SameFile(a, b) {
				break
			}
		}
		name = e.Key + ".r" + strconv.FormatInt(time.Now().UnixNano(), 36) + strings.TrimPrefix(withoutUID(e.Name), e.Key)
	}
	return os.Remove(from)
}

// withoutUID returns a Maildir file name without its U= field.
func withoutUID(name string) string {
	base, info, hasInfo := strings.Cut(name, ":")
	fields := strings.Split(base, ",")
	kept := fields[:1]
	for _, f := range fields[1:] {
		if !strings.HasPrefix(f, "U=") {
			kept = append(kept, f)
		}
	}
	out := strings.Join(kept, ",")
	if hasInfo {
		out += ":" + info
	}
	return out
}
