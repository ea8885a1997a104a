package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/postfach/postfach/agent/restore"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/migrate"
)

// RestoreToIMAP restores the snapshot's folders (nil: all) into the IMAP
// account to names, "ACCOUNT" or "ACCOUNT:FOLDER" (see package
// agent/restore for where the folders go). It needs no store: the
// destination is the server alone. dest is the destination's name, for
// messages.
func RestoreToIMAP(ctx context.Context, cfg *configs.Config, log *slog.Logger, snap *restore.Snapshot, to string, folders []restore.Folder, progress func(account string) migrate.Progress) (dest string, reps []*migrate.Report, err error) {
	a := &Agent{cfg: cfg, log: log}
	acct, folder, err := a.accountArg("--to", to)
	if err != nil {
		return "", nil, err
	}
	if acct.Kind != "imap" {
		return "", nil, fmt.Errorf("--to %s: the destination must be an IMAP account, not %s", acct.Name, acct.Kind)
	}
	opts, err := a.imapOptions(ctx, acct)
	if err != nil {
		return "", nil, err
	}
	reps, err = snap.ToIMAP(ctx, restore.IMAPOptions{
		Folders:             folders,
		Folder:              folder,
		Dest:                opts.Endpoint,
		DestAccount:         acct.Name,
		DestFolderMap:       acct.FolderMap,
		DestNamespacePrefix: acct.NamespacePrefix,
		Connections:         acct.Connections,
		Logger:              log,
		Progress:            progress,
	})
	var ce *imapconn.ConnError
	if errors.As(err, &ce) {
		err = fmt.Errorf("%s: %w", acct.Name, err)
	}
	return acct.Name, reps, err
}

// RestoreToStore restores the snapshot's folders (nil: all) into the same
// accounts and folders of the store, under the store's sync lock: it
// refuses while postfach run (or a sync) holds it, as the door of one
// process must not race another's sync. Every account restored must be in
// the config (its sync uploads what is restored).
func RestoreToStore(ctx context.Context, cfg *configs.Config, log *slog.Logger, snap *restore.Snapshot, folders []restore.Folder, progress migrate.Progress) ([]*migrate.Report, error) {
	if folders == nil {
		var err error
		if folders, err = snap.Folders(ctx); err != nil {
			return nil, err
		}
	}
	for _, f := range folders {
		if _, ok := cfg.Account(f.Account); !ok {
			return nil, fmt.Errorf("the snapshot's account %q is not in %s: add it, restore it straight into a server with --to ACCOUNT, or pick other folders with --folder", f.Account, cfg.File)
		}
	}
	a, err := Open(cfg, log)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	unlock, err := lockStore(cfg.Store.Path, "postfach restore")
	if err != nil {
		return nil, fmt.Errorf("%w: restoring into the store needs it to itself; stop postfach run first, or restore straight into a server with --to ACCOUNT", err)
	}
	defer unlock()
	reps, err := snap.ToStore(ctx, restore.StoreOptions{Store: a.store, Folders: folders, Logger: log, Progress: progress})
	return reps, storeFull(cfg.Store.Path, err)
}
