package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/agent/backup"
	"github.com/postfach/postfach/agent/restore"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/sync/migrate"
)

func newRestoreCmd(g *globals) *cobra.Command {
	var to string
	var folders []string
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT [--to ACCOUNT[:FOLDER]] [--folder F]",
		Short: "Put a snapshot's messages back: into the store, or straight into an IMAP account",
		Long: `Restores the messages of a snapshot (postfach backup): SNAPSHOT is a
snapshot's directory, or its name in the backup directory ([backup] path),
such as 2026-12-05T020000Z. The snapshot is only read: its index is
copied to a temporary directory ($TMPDIR) and opened there.

A tar.zst or an mbox export is first unpacked whole into that temporary
directory; its free space is checked before. When $TMPDIR (or /tmp) is
a small tmpfs, point TMPDIR at a filesystem with room, e.g.
TMPDIR=/var/tmp postfach restore ...

Without --to, every folder goes back into the same account and folder of
the local store (made if missing), as new local messages with their flags
and internal dates, which the account's next sync uploads. A message the
folder holds already (the same bytes) is not delivered again. This needs
the store to itself: stop postfach run first. The snapshot's accounts
must be in the config.

With --to ACCOUNT, the messages go straight into that IMAP account (as
postfach migrate copies: MULTIAPPEND where offered, flags, internal
dates), each folder into the folder of the same name; the folders of
several accounts of the snapshot with the same name restore into one.
With --to ACCOUNT:FOLDER, a whole snapshot restores below FOLDER
(FOLDER/INBOX, FOLDER/Sent, ...), and folders picked with --folder restore
into FOLDER itself. On the server a message is recognized by Message-ID
and size (internal date and size without Message-ID).

--folder F (repeatable) restores only some folders: ACCOUNT:FOLDER for one
account's folder, FOLDER for that folder of every account of the
snapshot. The deleted-upstream messages an archive = true account keeps
(folders .Archive-Deleted/FOLDER) restore like any folder: into the store
under that name, on a server as Archive-Deleted/FOLDER, apart from
FOLDER; --folder work:.Archive-Deleted/INBOX --to mail:INBOX puts them
back into INBOX.

A rerun copies nothing twice, also after an interrupted run (even one
killed): it copies what the destination still lacks. At the end the
destination is compared with the snapshot, folder by folder; the exit
status is 1 if any snapshot message is missing there. A restore into the
store checks each file against its SHA-256; --to does not (postfach
verify SNAPSHOT does).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), g, cmd.OutOrStdout(), args[0], to, folders)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "restore straight into this IMAP account, or ACCOUNT:FOLDER (below or into FOLDER: see above)")
	cmd.Flags().StringArrayVar(&folders, "folder", nil, "restore only this folder: ACCOUNT:FOLDER, or FOLDER of every account (repeatable)")
	return cmd
}

// runRestore is postfach restore of the snapshot arg names (restorePath),
// into the store or, with to, into an IMAP account; folders picks some.
func runRestore(ctx context.Context, g *globals, out io.Writer, arg, to string, folders []string) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	path, err := restorePath(cfg, arg)
	if err != nil {
		return err
	}
	tmp, err := restoreTemp()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(tmp)
	dir, err := backup.Materialize(ctx, path, tmp)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	snap, err := restore.Open(ctx, dir, tmp, dir == path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer snap.Close()
	var sel []restore.Folder
	if len(folders) > 0 {
		if sel, err = snap.Select(ctx, folders); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}

	bar := isatty.IsTerminal(os.Stderr.Fd()) && !g.verbose
	var cur *migrateProgress
	finish := func() {
		if cur != nil {
			cur.Finish()
		}
	}
	progress := func(acct string) migrate.Progress {
		finish()
		cur = newMigrateProgress("restoring "+acct, nil, bar, true)
		return cur
	}
	start := time.Now()
	var reps []*migrate.Report
	if to != "" {
		_, reps, err = agent.RestoreToIMAP(ctx, cfg, g.logger(), snap, to, sel, progress)
	} else {
		reps, err = agent.RestoreToStore(ctx, cfg, g.logger(), snap, sel, progress("into the store"))
	}
	finish()
	missing := 0
	for i, rep := range reps {
		if i > 0 {
			fmt.Fprintln(out)
		}
		rep.Source = "snapshot " + rep.Source
		printMigration(out, nil, &agent.MigrateResult{Report: rep}, err, time.Since(start), ctx.Err() != nil)
		missing += rep.Totals().Missing
	}
	switch {
	case err != nil:
		return err
	case missing > 0:
		return fmt.Errorf("restore: %d snapshot messages are missing on the destination; run the restore again", missing)
	}
	for _, rep := range reps {
		if !rep.Complete() {
			return exitError{1}
		}
	}
	return nil
}

// restorePath finds the snapshot arg names: a path (a snapshot directory
// or an export), else a snapshot's name in the backup directory.
func restorePath(cfg *configs.Config, arg string) (string, error) {
	if _, err := os.Stat(arg); err == nil {
		return filepath.Abs(arg)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("restore: %w", err)
	}
	if !strings.ContainsRune(arg, filepath.Separator) && cfg.Backup.Path != "" {
		p := filepath.Join(cfg.Backup.Path, arg)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("restore: %s: no such snapshot (neither a path nor a snapshot in %s)", arg, cfg.Backup.Path)
}

// restoreTemp makes the run's temporary directory,
// $TMPDIR/postfach-restore-PID-*, named with this process's id from the
// moment it exists, after removing those of earlier runs whose process is
// gone (killed before they could remove theirs: each holds a copy of a
// snapshot's index, or an unpacked export). A run killed at any point,
// even right after making the directory, leaves one the next run removes.
func restoreTemp() (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), restoreTempPrefix+"*"))
	for _, d := range old {
		pid, ok := restoreTempPID(filepath.Base(d))
		if !ok {
			continue // not made by restore
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", restoreTempPrefix, os.Getpid()))
}

const restoreTempPrefix = "postfach-restore-"

// restoreTempPID is the process id in a temporary directory's name,
// postfach-restore-PID-RANDOM.
func restoreTempPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, restoreTempPrefix)
	if !ok {
		return 0, false
	}
	p, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	return pid, err == nil && pid > 0
}
