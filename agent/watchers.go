package agent

import (
	"context"
	"errors"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// The watchers `postfach run` uses (RunOptions.Upstream and Local): IMAP
// IDLE on the account's idle folders, and fsnotify on its Maildir. Each
// turns a change into a nudge naming the folder; the service then syncs
// that folder alone (imapsync.Options.Only), and the whole account on
// every poll.

// IdleUpstream is the Upstream watcher: IMAP IDLE on the account's
// idle_folders (imapsync.IdleWatcher), one connection each; the sync
// itself uses the rest of the account's connections (syncConnections).
// A POP3 account has no push: it is polled.
func IdleUpstream(ctx context.Context, t WatchTarget) error {
	if t.Account.Kind != "imap" || len(t.Account.IdleFolders) == 0 {
		<-ctx.Done()
		return nil
	}
	w := &imapsync.IdleWatcher{
		Account:         t.Account.Name,
		Root:            t.Root,
		Endpoint:        t.Endpoint,
		Folders:         t.Account.IdleFolders,
		FolderMap:       t.Account.FolderMap,
		NamespacePrefix: t.Account.NamespacePrefix,
		Connections:     len(t.Account.IdleFolders),
		Notify:          func(folder string) { t.Nudge(folder) },
		Logger:          t.Log,
	}
	return w.Run(ctx)
}

// MaildirLocal is the Local watcher: fsnotify on the account's folders
// (LocalWatcher). A file the index already knows in its present state
// (the store's own delivery, flag rename, move or removal: index.Store.Knows)
// nudges nothing.
func MaildirLocal(ctx context.Context, t WatchTarget) error {
	if t.Index == nil {
		return errors.New("local watcher: no store")
	}
	// A new account's directory is made by its first sync, which the
	// watcher would miss: it is made (and marked ours) here, as the sync
	// would.
	if err := maildir.MarkAccount(t.Root, t.Account.Name); err != nil {
		return err
	}
	lw := &LocalWatcher{
		Root:    t.Root,
		Account: t.Account.Name,
		Notify:  func(folder string) { t.Nudge(folder) },
		Own:     knownFiles{ctx: ctx, t: t},
		Logger:  t.Log,
	}
	return lw.Run(ctx)
}

// knownFiles is OwnWrites by the index: a path whose state the index
// already records is no news (see index.Store.Knows).
type knownFiles struct {
	ctx context.Context
	t   WatchTarget
}

func (k knownFiles) Own(path string) bool { return k.t.Index.Knows(k.ctx, path) }

// syncConnections is how many connections a sync of acct may use inside
// the agent: the account's connections less those its IDLE watcher holds
// (configs keeps one at least for the sync).
func syncConnections(acct *configs.Account) int {
	return max(1, acct.Connections-len(acct.IdleFolders))
}
