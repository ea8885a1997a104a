package restore

import (
	"context"
	"log/slog"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/migrate"
)

// ArchiveView is the first level of the folders in which an `archive =
// true` account keeps the messages deleted upstream
// (".Archive-Deleted/<Folder>"); on an IMAP destination they restore
// without the dot (see the package documentation).
const ArchiveView = index.ArchivePrefix

// IMAPOptions say where ToIMAP restores to.
type IMAPOptions struct {
	// Folders are the snapshot's folders to restore (Select); nil: all.
	Folders []Folder
	// Folder is the destination folder (--to ACCOUNT:FOLDER), "" for none:
	// a whole snapshot (Folders nil) restores below it, picked folders
	// into it.
	Folder string

	Dest                imapconn.Endpoint
	DestAccount         string
	DestFolderMap       map[string]string
	DestNamespacePrefix *string
	Connections         int

	Logger *slog.Logger
	// Progress, if set, returns the progress of one account's copy (one
	// migrate.Run each).
	Progress func(account string) migrate.Progress
}

// DestName is the destination folder of the snapshot's folder name: see
// the package documentation. whole: the whole snapshot is restored.
func DestName(name, into string, whole bool) string {
	if rest, ok := strings.CutPrefix(name, ArchiveView); ok && (rest == "" || rest[0] == '/') {
		name = ArchiveView[1:] + rest
	}
	switch {
	case into == "":
		return name
	case whole:
		return into + "/" + name
	default:
		return into
	}
}

// ToIMAP restores the snapshot's folders into an IMAP account: one
// migrate.Run per account of the snapshot (see the package
// documentation). It returns each run's report, in the order of the
// accounts; the error is the first run's failure (a failed folder: its
// report says which; the other accounts are still restored, unless ctx is
// done).
func (s *Snapshot) ToIMAP(ctx context.Context, o IMAPOptions) ([]*migrate.Report, error) {
	whole := o.Folders == nil
	folders := o.Folders
	if whole {
		var err error
		if folders, err = s.Folders(ctx); err != nil {
			return nil, err
		}
	}
	accounts, names := byAccount(folders)
	var reps []*migrate.Report
	var first error
	for _, acct := range accounts {
		if err := ctx.Err(); err != nil {
			return reps, err
		}
		mapping := map[string]string{}
		for _, n := range names[acct] {
			if d := DestName(n, o.Folder, whole); d != n {
				mapping[n] = d
			}
		}
		var progress migrate.Progress
		if o.Progress != nil {
			progress = o.Progress(acct)
		}
		log := o.Logger
		if log != nil {
			log = log.With("restore", acct+" -> "+o.DestAccount)
		}
		rep, err := migrate.Run(ctx, migrate.Options{
			Index:               s.Index,
			Root:                s.Root,
			Source:              acct,
			Folders:             names[acct],
			Map:                 mapping,
			Dest:                o.Dest,
			DestAccount:         o.DestAccount,
			DestFolderMap:       o.DestFolderMap,
			DestNamespacePrefix: o.DestNamespacePrefix,
			Connections:         o.Connections,
			Logger:              log,
			Progress:            progress,
		})
		if rep != nil {
			reps = append(reps, rep)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return reps, first
}
