package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/sync/migrate"
)

func newMigrateCmd(g *globals) *cobra.Command {
	var (
		from, to        string
		maps            []string
		dryRun, jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "migrate --from ACCOUNT[:FOLDER] --to ACCOUNT[:FOLDER]",
		Short: "Copy an IMAP or POP3 account into an IMAP account, verified",
		Long: `Copy every message of the source account (or of one of its folders) into
the destination IMAP account, through the local store: the source is first
synced into the store (read-only: IMAP in the pull direction, POP3 with
keep), then each message the destination lacks is APPENDed with its flags
and internal date. Messages are recognized by content (Message-ID and
size; internal date and size without Message-ID), so a second run, or a
run after an interrupted one, copies nothing twice.

Folders keep their names; --map SRC=DST (repeatable) renames one, and
--to ACCOUNT:FOLDER puts everything into one folder.

At the end the destination is read again and compared with the source,
folder by folder: the exit status is 1 if any source message is missing
there. --dry-run shows what would be copied, per folder, and changes
nothing on the destination (it still syncs the source into the local
store); its exit status does not depend on what is missing. A progress
bar is shown on a terminal; --json prints progress and the report as JSON
lines on stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return errors.New("migrate needs --from ACCOUNT[:FOLDER] and --to ACCOUNT[:FOLDER]")
			}
			mapping := map[string]string{}
			for _, m := range maps {
				src, dst, ok := strings.Cut(m, "=")
				if !ok || src == "" || dst == "" {
					return fmt.Errorf("--map %q: want SRC=DST", m)
				}
				mapping[src] = dst
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			a, err := agent.Open(cfg, g.logger())
			if err != nil {
				return err
			}
			defer a.Close()

			out := cmd.OutOrStdout()
			var enc *json.Encoder
			if jsonOut {
				enc = json.NewEncoder(out)
			}
			bar := !jsonOut && isatty.IsTerminal(os.Stderr.Fd()) && !g.verbose
			// The fetch phase is a sync of the source: its total grows
			// folder by folder (an indeterminate bar); the copy phase
			// knows its total before it starts.
			fetch := newMigrateProgress("fetching", enc, bar, false)
			copying := newMigrateProgress("copying", enc, bar, true)
			start := time.Now()
			res, err := a.Migrate(cmd.Context(), agent.MigrateOptions{
				From: from, To: to, Map: mapping, DryRun: dryRun,
				SyncProgress: fetch, Progress: phaseStart{copying, fetch},
			})
			fetch.Finish()
			copying.Finish()
			if res != nil {
				printMigration(out, enc, res, err, time.Since(start), cmd.Context().Err() != nil)
			}
			switch {
			case err != nil && jsonOut:
				return exitError{1}
			case err != nil:
				return err
			case res.Report != nil && !res.Report.DryRun && !res.Report.Complete():
				if jsonOut {
					return exitError{1}
				}
				return fmt.Errorf("%d source messages are missing on the destination; run the migration again", res.Report.Totals().Missing)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "source account, or ACCOUNT:FOLDER for one folder")
	cmd.Flags().StringVar(&to, "to", "", "destination IMAP account, or ACCOUNT:FOLDER to put everything into one folder")
	cmd.Flags().StringArrayVar(&maps, "map", nil, "copy source folder SRC into destination folder DST (SRC=DST, repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be copied; change nothing on the destination")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print progress and the report as JSON lines")
	return cmd
}

// phaseStart is the copy phase's progress: its first call ends the fetch
// phase's bar.
type phaseStart struct {
	*migrateProgress
	prev *migrateProgress
}

func (p phaseStart) Expect(msgs int, bytes int64) {
	p.prev.Finish()
	p.migrateProgress.Expect(msgs, bytes)
}

// migrateProgress reports one phase: on a terminal a progress bar in bytes
// (with MB/s and ETA) when the phase's total is known at its first Expect
// (fixed), else a spinner; the description counts messages and, once
// meaningful, their rate. With JSON, progress lines a few times a second.
type migrateProgress struct {
	phase string
	enc   *json.Encoder // JSON lines, or nil
	bar   bool          // draw a bar on stderr
	fixed bool          // the first Expect gives the whole total

	mu          sync.Mutex
	b           *progressbar.ProgressBar
	start, last time.Time
	total, done int
	totalBytes  int64
	bytes       int64
	finished    bool
}

func newMigrateProgress(phase string, enc *json.Encoder, bar, fixed bool) *migrateProgress {
	return &migrateProgress{phase: phase, enc: enc, bar: bar, fixed: fixed}
}

func (p *migrateProgress) Expect(msgs int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.total += msgs
	p.totalBytes += bytes
	if p.bar && p.total > 0 && p.b == nil {
		p.newBar()
	}
}

// newBar starts the bar: with a fixed total, the bytes of the phase; else
// a spinner. Its end never moves during the phase.
func (p *migrateProgress) newBar() {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		widthOption(os.Stderr),
	}
	total := int64(-1)
	if p.fixed {
		total = p.totalBytes
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true))
	}
	p.b = progressbar.NewOptions64(total, opts...)
	p.describe()
}

func (p *migrateProgress) Done(msgs int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.done += msgs
	p.bytes += bytes
	if p.bar && p.b == nil && !p.fixed {
		p.newBar()
	}
	if p.b != nil {
		p.describe()
		p.b.Add64(bytes)
	}
	if p.enc != nil && time.Since(p.last) >= 500*time.Millisecond {
		p.emit()
	}
}

func (p *migrateProgress) rates() (msgsPerSec, bytesPerSec, eta float64) {
	secs := time.Since(p.start).Seconds()
	if secs <= 0 {
		return 0, 0, 0
	}
	msgsPerSec, bytesPerSec = float64(p.done)/secs, float64(p.bytes)/secs
	switch {
	case bytesPerSec > 0 && p.totalBytes > p.bytes:
		eta = float64(p.totalBytes-p.bytes) / bytesPerSec
	case msgsPerSec > 0 && p.total > p.done:
		eta = float64(p.total-p.done) / msgsPerSec
	}
	return msgsPerSec, bytesPerSec, eta
}

func (p *migrateProgress) describe() {
	d := fmt.Sprintf("%s %d msg (%s)", p.phase, p.done, humanBytes(p.bytes))
	if p.fixed {
		d = fmt.Sprintf("%s %d/%d msg", p.phase, p.done, p.total)
	}
	if r := rate(p.done, p.bytes, time.Since(p.start), false); r != "" {
		d += ", " + r
	}
	p.b.Describe(d)
}

func (p *migrateProgress) emit() {
	p.last = time.Now()
	mps, bps, eta := p.rates()
	p.enc.Encode(map[string]any{
		"event": "progress", "phase": p.phase,
		"messages": p.done, "total": p.total, "bytes": p.bytes, "total_bytes": p.totalBytes,
		"msgs_per_sec": round2(mps), "mb_per_sec": round2(bps / 1e6), "eta_seconds": round2(eta),
	})
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// Finish ends the phase: the bar is cleared, the last JSON line printed.
func (p *migrateProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.b != nil {
		p.b.Finish()
	}
	if p.enc != nil && p.done > 0 {
		p.emit()
	}
}

// printMigration prints the source sync, the verification table and the
// verdict (or their JSON events); after an interrupt, what was copied and
// that nothing was verified.
func printMigration(w io.Writer, enc *json.Encoder, res *agent.MigrateResult, runErr error, took time.Duration, interrupted bool) {
	src := res.Source
	var newMsgs int
	var newBytes int64
	if r := src.Result; r != nil {
		t := r.Totals()
		newMsgs, newBytes = t.New, t.Bytes
	}
	if p := src.POP3; p != nil {
		newMsgs, newBytes = p.New, p.Bytes
	}
	rep := res.Report
	if enc != nil {
		printMigrationJSON(enc, res, newMsgs, newBytes, runErr, took, interrupted)
		return
	}

	if src.Result != nil || src.POP3 != nil {
		fmt.Fprintf(w, "source %s: %d new messages (%s) fetched into the store\n", safe(src.Name), newMsgs, humanBytes(newBytes))
	}
	if rep == nil {
		return
	}
	t := rep.Totals()
	if interrupted {
		// The destination was not read again: the table's missing
		// column would count every message not yet verified.
		fmt.Fprintf(w, "%s -> %s: interrupted after copying %d messages (%s) in %s; the destination was not verified: run the migration again to finish and verify it\n",
			safe(rep.Source), safe(rep.Dest), t.Copied, humanBytes(t.CopiedBytes), took.Round(10*time.Millisecond))
		return
	}
	if rep.DryRun {
		fmt.Fprintf(w, "dry run: %s -> %s would copy %d messages (%s); nothing was changed on the destination\n\n",
			rep.Source, rep.Dest, t.Copied, humanBytes(t.CopiedBytes))
	} else {
		fmt.Fprintf(w, "%s -> %s: %d messages copied (%s) in %s\n\n",
			rep.Source, rep.Dest, t.Copied, humanBytes(t.CopiedBytes), took.Round(10*time.Millisecond))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	copied := "copied"
	if rep.DryRun {
		copied = "to copy"
	}
	fmt.Fprintf(tw, "folder\tsource\tdestination\t%s\tmissing\textra\t\n", copied)
	row := func(f migrate.FolderReport, name string) {
		fmt.Fprintf(tw, "%s\t%d (%s)\t%d (%s)\t%d (%s)\t%d\t%d\t", safe(name), f.SourceCount, humanBytes(f.SourceBytes),
			f.DestCount, humanBytes(f.DestBytes), f.Copied, humanBytes(f.CopiedBytes), f.Missing, f.Extra)
		var notes []string
		if f.Remote != "" && f.Remote != f.Dest {
			notes = append(notes, "server folder "+safe(f.Remote))
		}
		if f.Created {
			notes = append(notes, map[bool]string{false: "created", true: "to create"}[rep.DryRun])
		}
		if f.Failed > 0 {
			notes = append(notes, fmt.Sprintf("%d failed", f.Failed))
		}
		if f.Differ > 0 {
			notes = append(notes, fmt.Sprintf("%d with other flags or date", f.Differ))
		}
		if f.Err != nil {
			notes = append(notes, "error: "+safe(f.Err.Error()))
		}
		fmt.Fprintf(tw, "%s\n", strings.Join(notes, "; "))
	}
	for _, f := range rep.Folders {
		name := f.Dest
		if len(f.Sources) != 1 || f.Sources[0] != f.Dest {
			name = strings.Join(f.Sources, " + ") + " -> " + f.Dest
		}
		row(f, name)
	}
	if len(rep.Folders) > 1 {
		row(t, "total")
	}
	tw.Flush()
	switch {
	case rep.DryRun:
	case rep.Complete():
		fmt.Fprintf(w, "\nverified: all %d source messages are on the destination\n", t.SourceCount)
	default:
		fmt.Fprintf(w, "\nNOT COMPLETE: %d of %d source messages are missing on the destination\n", t.Missing, t.SourceCount)
	}
}

// printMigrationJSON is printMigration's JSON events: the source sync, one
// per destination folder, the result.
func printMigrationJSON(enc *json.Encoder, res *agent.MigrateResult, newMsgs int, newBytes int64, runErr error, took time.Duration, interrupted bool) {
	src, rep := res.Source, res.Report
	ev := map[string]any{"event": "source", "account": src.Name, "new": newMsgs, "bytes": newBytes}
	if src.Err != nil {
		ev["error"] = src.Err.Error()
	}
	enc.Encode(ev)
	if rep != nil {
		for _, f := range rep.Folders {
			ev := map[string]any{"event": "folder", "folder": f.Dest, "server_folder": f.Remote, "sources": f.Sources, "created": f.Created,
				"source_messages": f.SourceCount, "source_bytes": f.SourceBytes,
				"dest_messages": f.DestCount, "dest_bytes": f.DestBytes,
				"copied": f.Copied, "copied_bytes": f.CopiedBytes, "failed": f.Failed,
				"missing": f.Missing, "extra": f.Extra, "differ": f.Differ}
			if f.Err != nil {
				ev["error"] = f.Err.Error()
			}
			enc.Encode(ev)
		}
	}
	ev = map[string]any{"event": "result", "seconds": took.Seconds()}
	if rep != nil {
		t := rep.Totals()
		ev["source"], ev["dest"], ev["dry_run"] = rep.Source, rep.Dest, rep.DryRun
		ev["copied"], ev["copied_bytes"], ev["missing"], ev["extra"] = t.Copied, t.CopiedBytes, t.Missing, t.Extra
		ev["complete"] = rep.Complete() && !interrupted
		if interrupted {
			// Not verified: missing and extra are not known.
			ev["interrupted"] = true
			delete(ev, "missing")
			delete(ev, "extra")
		}
	}
	if runErr != nil {
		ev["error"] = runErr.Error()
	}
	enc.Encode(ev)
}
