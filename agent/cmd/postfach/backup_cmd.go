package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/agent/backup"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

func newBackupCmd(g *globals) *cobra.Command {
	var to, format string
	cmd := &cobra.Command{
		Use:   "backup [--to DIR] [--format dir|tar.zst|mbox]",
		Short: "Take a snapshot of the store (index and message files), sharing unchanged files with the previous one",
		Long: `Takes a consistent snapshot of the whole store, also while postfach run
is writing: the index as of one instant and every message file its rows
name, in a new directory below the backup directory ([backup] path, or
--to), named by the time (UTC). Message files the previous snapshot holds
are hard-linked from it, the others copied. The snapshot's MANIFEST
(path, size, SHA-256 of every file) is written last: a directory without
one is incomplete and is removed by the next backup. Only the [backup]
keep newest snapshots are kept (0: all), of every format together. Check
one with postfach verify.

--format tar.zst writes the same content into one compressed file,
<time>.tar.zst (written under a temporary name and renamed when whole).
--format mbox writes an export for other mail tools, <time>.mbox/, with
one mbox per folder (<account>/<Folder>.mbox, mboxrd, flags in
Status/X-Status/X-Keywords) and a MANIFEST. postfach restore takes either.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case backup.FormatDir, backup.FormatTarZst, backup.FormatMbox:
			default:
				return fmt.Errorf("backup: --format %q: not dir, tar.zst or mbox", format)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			dir := cfg.Backup.Path
			if dir == "" && to == "" {
				return errors.New("backup: no place for snapshots: [backup] path is not set and its default, ~/MailBackups, needs a home directory ($HOME is not set); set it or give --to DIR")
			}
			if to != "" {
				if dir, err = filepath.Abs(to); err != nil {
					return fmt.Errorf("backup: --to: %w", err)
				}
				if within(dir, cfg.Store.Path) {
					return fmt.Errorf("backup: --to %s: must not be inside the store (%s)", dir, cfg.Store.Path)
				}
			}
			a, err := openExisting(cfg, g)
			if err != nil {
				return err
			}
			defer a.Close()
			line := newStatusLine(cmd.ErrOrStderr(), isatty.IsTerminal(os.Stderr.Fd()) && !g.verbose)
			res, err := backup.Backup(cmd.Context(), backup.Options{
				Store: a.Index(), To: dir, Keep: cfg.Backup.Keep, Format: format,
				Progress: func(done, total int, copied int64) {
					line.show(fmt.Sprintf("backup: %d of %d files (%s copied)", done, total, humanBytes(copied)))
				},
			})
			line.clear()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case backup.FormatDir:
				fmt.Fprintf(out, "snapshot %s: %d files, %d shared with the previous snapshot, %d copied (%s), %.1f s\n",
					safe(res.Snapshot), res.Files, res.Linked, res.Copied, humanBytes(res.CopiedBytes), res.Duration.Seconds())
			default:
				what := "files" // a tar.zst holds the outbox's too
				if format == backup.FormatMbox {
					what = "messages"
				}
				fmt.Fprintf(out, "snapshot %s: %d %s (%s), %s written, %.1f s\n",
					safe(res.Snapshot), res.Files, what, humanBytes(res.CopiedBytes), humanBytes(diskSize(res.Snapshot)), res.Duration.Seconds())
			}
			if n := len(res.Dropped); n > 0 {
				fmt.Fprintf(out, "%d messages removed from the store while the backup ran are not in it\n", n)
			}
			for _, r := range res.Removed {
				fmt.Fprintf(out, "removed the old snapshot %s\n", safe(r))
			}
			for _, m := range res.Mismatched {
				fmt.Fprintf(cmd.ErrOrStderr(), "postfach: backup: %s: the file differs from its index row (stored as found; see postfach verify)\n", safe(m))
			}
			if len(res.Mismatched) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "backup `directory` (default: [backup] path)")
	cmd.Flags().StringVar(&format, "format", "dir", "snapshot format: dir, tar.zst or mbox")
	return cmd
}

func newVerifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [SNAPSHOT]",
		Short: "Check the store, or a snapshot, and name every difference",
		Long: `Without an argument, checks the live store: every index row has its
message file, every message file its row, and each file's size and
SHA-256 are its row's. With SNAPSHOT (a snapshot's directory or .tar.zst
file, an mbox export's directory, or its name in the backup directory),
checks the snapshot: every file its MANIFEST lists is there with its size
and SHA-256, no other file is, and the snapshot's index and message files
agree (an mbox export: each message is what its X-Postfach-Export header
says). Prints one line per difference and exits 1 if there is any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			line := newStatusLine(cmd.ErrOrStderr(), isatty.IsTerminal(os.Stderr.Fd()) && !g.verbose)
			progress := func(done, total int) {
				if total == 0 { // a tar.zst: read through once, its size unknown
					line.show(fmt.Sprintf("verify: %d files", done))
					return
				}
				line.show(fmt.Sprintf("verify: %d of %d files", done, total))
			}
			var rep *backup.Report
			var what string
			if len(args) == 1 {
				p, isDir, err := snapshotPath(g, args[0])
				if err != nil {
					return err
				}
				what = "snapshot " + p
				if isDir {
					rep, err = backup.VerifySnapshot(cmd.Context(), p, progress)
				} else {
					rep, err = backup.VerifyArchive(cmd.Context(), p, progress)
				}
				line.clear()
				if err != nil {
					return err
				}
			} else {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				a, err := openExisting(cfg, g)
				if err != nil {
					return err
				}
				defer a.Close()
				what = "store " + cfg.Store.Path
				rep, err = backup.VerifyStore(cmd.Context(), a.Index(), progress)
				line.clear()
				if err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			for _, d := range rep.Differences {
				fmt.Fprintln(out, safe(d.String()))
			}
			if n := len(rep.Differences); n > 0 {
				fmt.Fprintf(out, "%s: %d differences (%d files, %s read)\n", safe(what), n, rep.Files, humanBytes(rep.Bytes))
				return exitError{1}
			}
			fmt.Fprintf(out, "%s: no differences (%d files, %s read)\n", safe(what), rep.Files, humanBytes(rep.Bytes))
			return nil
		},
	}
	return cmd
}

// snapshotPath finds the snapshot arg names: a directory or a .tar.zst
// file, or a snapshot's name in the configured backup directory.
func snapshotPath(g *globals, arg string) (p string, isDir bool, err error) {
	ok := func(p string) (bool, bool) {
		st, err := os.Stat(p)
		if err != nil {
			return false, false
		}
		return st.IsDir() || st.Mode().IsRegular() && strings.HasSuffix(p, ".tar.zst"), st.IsDir()
	}
	if found, dir := ok(arg); found {
		p, err := filepath.Abs(arg)
		return p, dir, err
	}
	if !strings.ContainsRune(arg, filepath.Separator) {
		if cfg, err := configs.Load(g.configPath); err == nil {
			p := filepath.Join(cfg.Backup.Path, arg)
			if found, dir := ok(p); found {
				return p, dir, nil
			}
		}
	}
	return "", false, fmt.Errorf("verify: %s: no such snapshot (a directory or a .tar.zst file)", arg)
}

// diskSize is the bytes of the file at p, or of the files below it.
func diskSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// openExisting opens the store of cfg, which must exist: backup and
// verify never make one.
func openExisting(cfg *configs.Config, g *globals) (*agent.Agent, error) {
	if _, err := os.Stat(index.DefaultPath(cfg.Store.Path)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no store at %s (postfach sync or postfach run makes it)", cfg.Store.Path)
	}
	return agent.Open(cfg, g.logger())
}

// within reports whether path p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && (rel == "." || rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}

// statusLine is one line of progress on a terminal, redrawn at most ten
// times a second and cleared at the end; on anything else it prints
// nothing.
type statusLine struct {
	mu   sync.Mutex
	w    io.Writer
	on   bool
	last time.Time
	n    int // width of the line drawn
}

func newStatusLine(w io.Writer, on bool) *statusLine { return &statusLine{w: w, on: on} }

func (l *statusLine) show(s string) {
	if !l.on {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.last) < 100*time.Millisecond {
		return
	}
	l.last = time.Now()
	pad := ""
	if len(s) < l.n {
		pad = strings.Repeat(" ", l.n-len(s))
	}
	fmt.Fprint(l.w, "\r"+s+pad)
	l.n = len(s)
}

func (l *statusLine) clear() {
	if !l.on {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		fmt.Fprint(l.w, "\r"+strings.Repeat(" ", l.n)+"\r")
		l.n = 0
	}
}
