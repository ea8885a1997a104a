package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
)

func newPurgeCmd(g *globals) *cobra.Command {
	var o agent.PurgeOptions
	var olderThan string
	cmd := &cobra.Command{
		Use:   "purge [--account A] [--folder F] [--older-than D] [--dry-run]",
		Short: "Remove messages from the archive view (.Archive-Deleted) of archive accounts for good",
		Long: `An account with archive = true never deletes a message: one expunged
upstream or deleted locally moves to the local-only folder
.Archive-Deleted/<folder> of the account, where it stays searchable and is
backed up. purge is the only way out: it removes the messages of that
view for good (the files, then their index rows), all of them or those
the options select:

  --account A      only account A (repeat for several; default all)
  --folder F       only the archive of folder F (.Archive-Deleted/F and below)
  --older-than D   only messages moved there more than D ago
                   (D: 90d, 2w, 36h, 1h30m)
  --dry-run        list what would be removed, remove nothing

It lists each message removed (account, archive folder, when it was
archived, date, from, subject) and the total. Nothing goes upstream: the
server's copies went before the messages were archived.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan != "" {
				d, err := parseAge(olderThan)
				if err != nil {
					return fmt.Errorf("purge: --older-than %q: %w", olderThan, err)
				}
				o.Before = time.Now().Add(-d)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			a, err := openExisting(cfg, g)
			if err != nil {
				return err
			}
			defer a.Close()
			gone, err := a.Purge(cmd.Context(), o)
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			var bytes int64
			for _, p := range gone {
				bytes += p.Size
				fmt.Fprintf(tw, "%s\t%s\tarchived %s\t%s\t%s\t%s\n", safe(p.Account), safe(p.Folder),
					p.Archived.Format("2006-01-02"), p.Date.Format("2006-01-02"), safe(p.From), safe(p.Subject))
			}
			tw.Flush()
			verb := "purged"
			if o.DryRun {
				verb = "would purge"
			}
			fmt.Fprintf(out, "%s %d %s (%d bytes)\n", verb, len(gone), plural(len(gone), "message", "messages"), bytes)
			if err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&o.Accounts, "account", nil, "only this account (repeatable)")
	cmd.Flags().StringVar(&o.Folder, "folder", "", "only the archive of this folder")
	cmd.Flags().StringVar(&olderThan, "older-than", "", "only messages archived more than this long ago (90d, 2w, 36h)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}

// parseAge reads a duration with days ("90d") and weeks ("2w") besides
// Go's units ("36h", "1h30m").
func parseAge(s string) (time.Duration, error) {
	for unit, d := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("not a number of %s", map[string]string{"d": "days", "w": "weeks"}[unit])
			}
			return time.Duration(v * float64(d)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf(`want a duration such as 90d, 2w or 36h`)
	}
	return d, nil
}
