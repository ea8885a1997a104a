package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
)

func newSyncCmd(g *globals) *cobra.Command {
	var jsonOut, force, dryRun bool
	cmd := &cobra.Command{
		Use:   "sync [ACCOUNT...]",
		Short: "Sync the accounts (all, or the named ones) with the local store, both ways",
		Long: `Bring every selected folder of the accounts and the local Maildir in step:
IMAP accounts both ways (new messages, flags, deletions, moves, folders;
see direction and expunge in the config), POP3 accounts by downloading new
messages. --dry-run prints what would be done per folder and changes
nothing. A run that would delete more than max_delete_percent of a folder
stops unless --force. A progress bar is shown on a terminal; --json prints
progress and the result as JSON lines on stdout.

Exit status: 0 when every account and folder succeeded; 1 when an account
or folder failed; 3 when everything else succeeded but the server refused
to store some messages (over quota, too large for it: they stay here, are
tried again by every run, and status shows them per folder).

When an agent (postfach run) runs on the store, it does the sync, now,
and this prints the result (no progress bar).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if len(cfg.Accounts) == 0 {
				return fmt.Errorf("%s has no accounts to sync (%s)", cfg.File, addAccountHint)
			}
			// The servers are dialed while the store opens.
			ahead := agent.DialAhead(cmd.Context(), cfg, args, g.logger())
			defer ahead.Close()
			a, err := agent.Open(cfg, g.logger())
			if err != nil {
				return err
			}
			defer a.Close()
			a.UseDialed(ahead)
			a.Force, a.DryRun = force, dryRun
			var prog progressReporter = nopProgress{}
			out := cmd.OutOrStdout()
			switch {
			case jsonOut:
				prog = newJSONProgress(out)
			case isatty.IsTerminal(os.Stderr.Fd()) && !g.verbose:
				prog = newBarProgress(os.Stderr)
			}
			start := time.Now()
			// A running agent holds the store: it syncs, this prints.
			reports, err := a.SyncThroughAgent(cmd.Context(), args)
			if errors.Is(err, agent.ErrNoAgent) {
				reports, err = a.Sync(cmd.Context(), args, prog)
			}
			prog.Finish()
			printReports(out, reports, time.Since(start), jsonOut)
			if err != nil {
				if jsonOut {
					return exitError{1}
				}
				return err
			}
			if n := refusedCount(reports); n > 0 {
				if !jsonOut {
					fmt.Fprintf(cmd.ErrOrStderr(), "postfach: the server refused %d %s; they stay here and are tried again next run (postfach status says which folders, -v why)\n",
						n, plural(n, "message", "messages"))
				}
				return exitError{exitRefused}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print progress and results as JSON lines")
	cmd.Flags().BoolVar(&force, "force", false, "allow a run to delete more of a folder than max_delete_percent")
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "print what would be done per folder and change nothing")
	return cmd
}

// exitRefused is sync's exit status when all went well except that the
// server refused to store some messages.
const exitRefused = 3

// refusedCount adds up the uploads the IMAP servers would not store. (A
// POP3 server's refusal to send a message fails the account: exit 1.)
func refusedCount(reports []agent.AccountReport) int {
	n := 0
	for _, r := range reports {
		if r.Result != nil && !r.Result.DryRun {
			n += r.Result.Totals().Refused
		}
	}
	return n
}

// addAccountHint is what sync and status say of a config without accounts.
const addAccountHint = "add an [[accounts]] table: postfach init writes a commented example"

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func printReports(w io.Writer, reports []agent.AccountReport, took time.Duration, asJSON bool) {
	for _, r := range reports {
		switch {
		case asJSON:
			json.NewEncoder(w).Encode(reportEvent(r, took))
		case r.POP3 != nil:
			printPOP3Report(w, r, took)
		case r.Result != nil: // else the error is printed by main
			printIMAPReport(w, r, took)
		}
	}
}

// reportEvent is an account's result as the --json "result" event.
func reportEvent(r agent.AccountReport, took time.Duration) map[string]any {
	ev := map[string]any{"event": "result", "account": r.Name, "seconds": took.Seconds()}
	if r.Err != nil {
		ev["error"] = r.Err.Error()
	}
	if r.Result != nil {
		t := r.Result.Totals()
		ev["new"], ev["bytes"], ev["flags"], ev["expunged"], ev["rebuilt"] = t.New, t.Bytes, t.FlagsChanged, t.Expunged, t.Rebuilt
		ev["uploaded"], ev["flags_pushed"], ev["expunged_remote"] = t.Uploaded, t.FlagsPushed, t.ExpungedRemote
		ev["refused"], ev["too_large"], ev["too_large_bytes"] = t.Refused, t.TooLarge, t.TooLargeBytes
		ev["folders"] = len(r.Result.Folders)
		ev["moved"], ev["dry_run"] = r.Result.Moved, r.Result.DryRun
		if len(r.Result.Recovered) > 0 {
			var rec []map[string]any
			for _, x := range r.Result.Recovered {
				rec = append(rec, map[string]any{"from": x.From, "to": x.To, "messages": x.Messages})
			}
			ev["recovered"] = rec
		}
		if r.Result.DryRun || len(r.Result.FolderActions) > 0 {
			ev["folder_actions"] = r.Result.FolderActions
			var plan []map[string]any
			for _, f := range r.Result.Folders {
				plan = append(plan, map[string]any{"folder": f.Name, "new": f.New, "bytes": f.Bytes,
					"flags": f.FlagsChanged, "expunged": f.Expunged, "uploaded": f.Uploaded,
					"flags_pushed": f.FlagsPushed, "expunged_remote": f.ExpungedRemote,
					"refused": f.Refused, "too_large": f.TooLarge, "too_large_bytes": f.TooLargeBytes})
			}
			ev["plan"] = plan
		}
	}
	if p := r.POP3; p != nil {
		ev["new"], ev["bytes"], ev["deleted"] = p.New, p.Bytes, p.Deleted
		ev["reused"], ev["kept_unproven"] = p.Reused, p.Unproven
		ev["refused"], ev["dry_run"] = p.Failed, p.DryRun
		if p.DryRun {
			plan := []map[string]any{}
			for _, m := range p.Plan {
				plan = append(plan, map[string]any{"op": m.Op, "uidl": m.UIDL, "size": m.Size})
			}
			ev["plan"] = plan
		}
	}
	return ev
}

// printPOP3Report prints a POP3 account's run (or dry run) on one line.
func printPOP3Report(w io.Writer, r agent.AccountReport, took time.Duration) {
	p := r.POP3
	if p.DryRun {
		fmt.Fprintf(w, "%s: dry run, nothing changed. A real run would download %d %s (%s) and delete %d on the server",
			r.Name, p.New, plural(p.New, "message", "messages"), humanBytes(p.Bytes), p.Deleted)
		if p.Unproven > 0 {
			fmt.Fprintf(w, ", and leave %d due for deletion there (their local copy is gone or changed)", p.Unproven)
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "%s: %d new (%s), %d deleted on the server", r.Name, p.New, humanBytes(p.Bytes), p.Deleted)
	if p.Recovered > 0 {
		fmt.Fprintf(w, ", %d recovered from an interrupted run", p.Recovered)
	}
	if p.Failed > 0 {
		fmt.Fprintf(w, ", %d refused by the server", p.Failed)
	}
	if p.Reused > 0 {
		fmt.Fprintf(w, ", %d new under a reused UIDL", p.Reused)
	}
	if p.Unproven > 0 {
		fmt.Fprintf(w, ", %d left on the server (their local copy is gone or changed)", p.Unproven)
	}
	fmt.Fprintf(w, " in %s\n", took.Round(10*time.Millisecond))
}

// printIMAPReport prints an IMAP account's run: its folder actions and one
// summary line (a dry run prints its plan instead).
func printIMAPReport(w io.Writer, r agent.AccountReport, took time.Duration) {
	if r.Result.DryRun {
		printPlan(w, r)
		return
	}
	for _, a := range r.Result.FolderActions {
		fmt.Fprintf(w, "%s: %s\n", r.Name, safe(a))
	}
	t := r.Result.Totals()
	fmt.Fprintf(w, "%s: %d folders; down: %d new (%s), %d flag changes, %d expunged; up: %d new, %d flag changes, %d deleted",
		r.Name, len(r.Result.Folders), t.New, humanBytes(t.Bytes), t.FlagsChanged, t.Expunged,
		t.Uploaded, t.FlagsPushed, t.ExpungedRemote)
	if r.Result.Moved > 0 {
		fmt.Fprintf(w, ", %d moved between folders", r.Result.Moved)
	}
	if t.Rebuilt > 0 {
		fmt.Fprintf(w, ", %d re-indexed from disk", t.Rebuilt)
	}
	if t.Refused > 0 {
		fmt.Fprintf(w, ", %d refused by the server (kept here; -v says why)", t.Refused)
	}
	if t.TooLarge > 0 {
		fmt.Fprintf(w, ", %d larger than max_size not copied (%s)", t.TooLarge, humanBytes(t.TooLargeBytes))
	}
	fmt.Fprintf(w, " in %s\n", took.Round(10*time.Millisecond))
}

// jsonProgress prints at most a few progress lines a second.
type jsonProgress struct {
	mu          sync.Mutex
	enc         *json.Encoder
	total, done int
	bytes       int64
	last        time.Time
}

func newJSONProgress(w io.Writer) *jsonProgress { return &jsonProgress{enc: json.NewEncoder(w)} }

func (p *jsonProgress) Expect(msgs int, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += msgs
}

func (p *jsonProgress) Done(msgs int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += msgs
	p.bytes += bytes
	if time.Since(p.last) >= 500*time.Millisecond {
		p.emit()
	}
}

func (p *jsonProgress) emit() {
	p.last = time.Now()
	p.enc.Encode(map[string]any{"event": "progress", "messages": p.done, "total": p.total, "bytes": p.bytes})
}

func (p *jsonProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done > 0 {
		p.emit()
	}
}

// printPlan prints a dry run: per folder what would go down and up.
func printPlan(w io.Writer, r agent.AccountReport) {
	fmt.Fprintf(w, "%s: dry run, nothing changed. A real run would:\n", r.Name)
	for _, a := range r.Result.FolderActions {
		fmt.Fprintf(w, "  %s\n", safe(a))
	}
	if r.Result.Moved > 0 {
		fmt.Fprintf(w, "  move %d messages between folders upstream\n", r.Result.Moved)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  folder\tdown new\tdown flags\tdown deleted\tup new\tup flags\tup deleted\tover max_size\t")
	for _, f := range r.Result.Folders {
		if f.New+f.FlagsChanged+f.Expunged+f.Uploaded+f.FlagsPushed+f.ExpungedRemote+f.TooLarge == 0 {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d (%s)\t%d\t%d\t%d\t%d\t%d\t%d (%s)\t\n", safe(f.Name), f.New, humanBytes(f.Bytes), f.FlagsChanged,
			f.Expunged, f.Uploaded, f.FlagsPushed, f.ExpungedRemote, f.TooLarge, humanBytes(f.TooLargeBytes))
	}
	tw.Flush()
}
