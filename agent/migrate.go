package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/migrate"
	"github.com/postfach/postfach/sync/pop3"
)

// MigrateOptions are the arguments of a migration (`postfach migrate`).
type MigrateOptions struct {
	// From and To are "ACCOUNT" or "ACCOUNT:FOLDER" (folder names the
	// postfach way: '/'-separated, after the account's folder_map). A
	// source folder restricts the migration to that folder; a destination
	// folder receives every migrated source folder.
	From, To string
	// Map gives source folders another destination folder (SRC -> DST);
	// it overrides To's folder.
	Map    map[string]string
	DryRun bool

	// SyncProgress reports the download of the source into the store;
	// Progress the copy to the destination. Either may be nil.
	SyncProgress imapsync.Progress
	Progress     migrate.Progress
}

// MigrateResult is what a migration did.
type MigrateResult struct {
	// Source is the sync of the source account into the store (pull only).
	Source AccountReport
	// Report is the copy and its verification; nil when the migration
	// failed before it.
	Report *migrate.Report
}

// Migrate copies an account (or one folder of it) into an IMAP account
// through the local store. It takes the store's sync lock; syncs the
// source into the store without ever changing the source (IMAP: direction
// pull, so no STORE, APPEND, EXPUNGE or folder change upstream and SELECT
// read-only; POP3: keep, so no DELE); then runs migrate.Run against the
// destination. The result keeps the source sync's counts, not its list
// of every message downloaded, and the index's write cache, filled by
// the pull, is given back before the copy (Store.ReleaseMemory): the
// copy only reads the index. A dry run still syncs the source into the store (the plan
// is made from the store) but changes nothing on the destination.
//
// The error reports a failure (of the source sync, of a folder, of the
// connection); messages still missing after a run without failure are
// not an error: the report's Missing counts them.
func (a *Agent) Migrate(ctx context.Context, o MigrateOptions) (*MigrateResult, error) {
	res, err := a.migrate(ctx, o)
	return res, storeFull(a.cfg.Store.Path, err)
}

func (a *Agent) migrate(ctx context.Context, o MigrateOptions) (*MigrateResult, error) {
	src, srcFolder, err := a.accountArg("--from", o.From)
	if err != nil {
		return nil, err
	}
	dst, dstFolder, err := a.accountArg("--to", o.To)
	if err != nil {
		return nil, err
	}
	if dst.Kind != "imap" {
		return nil, fmt.Errorf("--to %s: the destination must be an IMAP account, not %s", dst.Name, dst.Kind)
	}
	unlock, err := lockStore(a.cfg.Store.Path, "postfach migrate")
	if err != nil {
		return nil, err
	}
	defer unlock()

	res := &MigrateResult{Source: AccountReport{Name: src.Name}}
	folders, err := a.pullSource(ctx, src, srcFolder, o, res)
	if err != nil {
		return res, err
	}
	// The copy only reads the index: the write connection's page cache,
	// filled by the pull (some 30 MiB at 100,000 messages), is of no use
	// to it (issue 14: the copy's memory came on top of it).
	if err := a.store.ReleaseMemory(ctx); err != nil {
		return res, err
	}

	mapping := map[string]string{}
	if dstFolder != "" {
		for _, f := range folders {
			mapping[f] = dstFolder
		}
	}
	for k, v := range o.Map {
		mapping[k] = v
	}
	dopts, err := a.imapOptions(ctx, dst)
	if err != nil {
		return res, err
	}
	res.Report, err = migrate.Run(ctx, migrate.Options{
		Index:               a.store,
		Root:                a.cfg.Store.Path,
		Source:              src.Name,
		Folders:             folders,
		Map:                 mapping,
		Dest:                dopts.Endpoint,
		DestAccount:         dst.Name,
		DestFolderMap:       dst.FolderMap,
		DestNamespacePrefix: dst.NamespacePrefix,
		DryRun:              o.DryRun,
		Connections:         dst.Connections,
		Logger:              a.log.With("migrate", src.Name+" -> "+dst.Name),
		Progress:            o.Progress,
	})
	if err != nil {
		var ce *imapconn.ConnError
		if errors.As(err, &ce) {
			return res, fmt.Errorf("%s: %w", dst.Name, err)
		}
		return res, err
	}
	return res, nil
}

// pullSource brings the migration's source into the store (an IMAP pull
// that never changes the source, or a POP3 fetch that never deletes) and
// returns the local folders to migrate; res.Source gets the run's result.
func (a *Agent) pullSource(ctx context.Context, src *configs.Account, srcFolder string, o MigrateOptions, res *MigrateResult) ([]string, error) {
	log := a.log.With("account", src.Name, "migrate", true)
	var folders []string
	switch src.Kind {
	case "imap":
		opts, err := a.imapOptions(ctx, src)
		if err != nil {
			return nil, err
		}
		opts.Direction = "pull" // never change the source
		opts.Logger, opts.Progress = log, o.SyncProgress
		if srcFolder != "" {
			opts.Folders = []string{srcFolder}
		}
		// A migration reports the pull's counts alone: no Action per
		// message downloaded (8 MB at 100,000 messages, kept to the end).
		opts.NoActions = true
		res.Source.Result, err = imapsync.Sync(ctx, opts)
		res.Source.Err = err
		a.recordAccount(src.Name, err != nil && res.Source.Result == nil, err)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Name, err)
		}
		for _, f := range res.Source.Result.Folders {
			folders = append(folders, f.Name)
		}
		if srcFolder != "" && !slices.Contains(folders, srcFolder) {
			return nil, fmt.Errorf("--from %s: account %q has no folder %q", o.From, src.Name, srcFolder)
		}
	case "pop3":
		opts, err := a.pop3Options(ctx, src)
		if err != nil {
			return nil, err
		}
		opts.Keep, opts.DeleteAfterDays = true, 0 // never delete from the source
		opts.Logger = log
		if o.SyncProgress != nil {
			opts.Progress = o.SyncProgress
		}
		folder := opts.Folder
		if folder == "" {
			folder = "INBOX"
		}
		if srcFolder != "" && srcFolder != folder {
			return nil, fmt.Errorf("--from %s: POP3 account %q fills only the folder %q", o.From, src.Name, folder)
		}
		res.Source.POP3, err = pop3.Fetch(ctx, opts)
		res.Source.Err = err
		a.recordAccount(src.Name, err != nil && res.Source.POP3 == nil, err)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Name, err)
		}
		folders = []string{folder}
	default:
		return nil, fmt.Errorf("--from %s: %s accounts cannot be migrated", src.Name, src.Kind)
	}
	return folders, nil
}

// accountArg resolves "ACCOUNT" or "ACCOUNT:FOLDER". Account names may hold
// ':' themselves: the whole argument is tried as a name first, then each
// prefix before a ':'.
func (a *Agent) accountArg(flag, arg string) (*configs.Account, string, error) {
	if arg == "" {
		return nil, "", fmt.Errorf("%s: an account name is required", flag)
	}
	if acct, ok := a.cfg.Account(arg); ok {
		return acct, "", nil
	}
	for i := range len(arg) {
		if arg[i] != ':' {
			continue
		}
		if acct, ok := a.cfg.Account(arg[:i]); ok {
			folder := arg[i+1:]
			if folder == "" {
				return nil, "", fmt.Errorf("%s %s: empty folder name", flag, arg)
			}
			if strings.EqualFold(folder, "INBOX") {
				folder = "INBOX"
			}
			return acct, folder, nil
		}
	}
	return nil, "", fmt.Errorf("%s: no account %q in %s", flag, strings.SplitN(arg, ":", 2)[0], a.cfg.File)
}
