package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
)

func newStatusCmd(g *globals) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each account and folder: messages, last sync, last error, and what a running agent does",
		Long: `Show each account and folder from the index: messages, last successful
sync, last error, and per IMAP account the local changes queued upstream
(expunges and moves made through the local endpoints, messages to upload,
flag changes to push: "queued" in --json), and the outgoing messages
waiting to be sent and those that failed ("outbox" and "outbox_failed";
postfach queue lists them). When an agent (postfach run)
runs on the store, also its process id and each account's live state:
idle, syncing, offline (with the time of the next try) or stopped by an
error (a wrong password, an untrusted certificate) until the config
changes. --json adds
"agent": {"pid": N, "accounts": [{"name", "state", "next_retry"}]} then.
Last, the backup schedule ([backup] schedule) and the last scheduled
backup the agent took: when, how long, files, what it added, its error
(--json: "backup_schedule", "next_backup", "backup": {"at", "seconds",
"snapshot", "files", "copied", "bytes_added", "error", "last_success"}).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, a, err := g.openStore(true)
			if err != nil {
				return err
			}
			defer a.Close()
			st, err := a.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			if len(st.Accounts) == 0 && st.Agent == nil {
				fmt.Fprintf(out, "no accounts in %s (%s)\n", cfg.File, addAccountHint)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			live := map[string]string{}
			if st.Agent != nil {
				fmt.Fprintf(tw, "agent: postfach run, process %d\n", st.Agent.PID)
				for _, s := range st.Agent.Accounts {
					live[s.Name] = liveState(s)
				}
			}
			for _, acct := range st.Accounts {
				last := acct.LastSync
				if last == "" {
					last = "never"
				}
				state := ""
				if st.Agent != nil {
					state = cmp.Or(live[acct.Name], "not run by the agent") + "\t"
				}
				queued := ""
				if acct.Kind == "imap" {
					queued = fmt.Sprintf("%d queued upstream", acct.Queued)
				}
				if acct.Outbox+acct.OutboxFailed > 0 { // postfach queue lists them
					if queued != "" {
						queued += ", "
					}
					queued += fmt.Sprintf("%d to send", acct.Outbox)
					if acct.OutboxFailed > 0 {
						queued += fmt.Sprintf(", %d failed to send", acct.OutboxFailed)
					}
				}
				fmt.Fprintf(tw, "%s (%s)\t%s%d messages\t%s\tlast sync %s\t%s\n", safe(acct.Name), acct.Kind, state, acct.Messages, queued, last, safe(acct.Error))
				for _, f := range acct.Folders {
					last := f.LastSync
					if last == "" {
						last = "never"
					}
					fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", safe(f.Name), f.Messages, last, safe(f.Error))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printBackupStatus(out, st)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

// liveState says in words what the agent's service of an account does.
func liveState(s agent.ServiceStatus) string {
	switch s.State {
	case agent.StateOffline:
		if t, err := time.Parse(time.RFC3339, s.NextRetry); err == nil {
			return "offline, next try " + t.Local().Format("15:04:05")
		}
		return "offline"
	case agent.StateError:
		return "stopped by an error until the config changes"
	}
	return s.State
}

// agentRuns reports whether an agent (postfach run) listens on a's store
// (answering or not).
func agentRuns(ctx context.Context, a *agent.Agent) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.AgentStatus(ctx)
	return !errors.Is(err, agent.ErrNoAgent)
}

// printBackupStatus prints the backup schedule and the last scheduled
// backup's outcome (agent.BackupState), one line each.
func printBackupStatus(w io.Writer, st *agent.Status) error {
	if st.BackupSchedule == "" && st.Backup == nil {
		return nil
	}
	if st.BackupSchedule != "" {
		fmt.Fprintf(w, "backup: %s, next %s\n", safe(st.BackupSchedule), st.NextBackup)
	}
	b := st.Backup
	if b == nil {
		_, err := fmt.Fprintln(w, "last backup: never")
		return err
	}
	took := time.Duration(b.Seconds * float64(time.Second)).Round(time.Millisecond)
	if b.Error != "" {
		last := "never"
		if !b.LastSuccess.IsZero() {
			last = b.LastSuccess.Format(time.RFC3339)
		}
		_, err := fmt.Fprintf(w, "last backup: %s FAILED after %s: %s (last success %s)\n",
			b.At.Format(time.RFC3339), took, safe(b.Error), last)
		return err
	}
	_, err := fmt.Fprintf(w, "last backup: %s, took %s, %d files, %d new, %d bytes added, no errors (%s)\n",
		b.At.Format(time.RFC3339), took, b.Files, b.Copied, b.BytesAdded, safe(b.Snapshot))
	return err
}
