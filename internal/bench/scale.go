package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
)

// The scale scenario: the twoway scenario (same flags, same phases, same
// verification) once per mailbox size of -sizes (default 10,000 and
// 100,000), each in its own work directory, with one postfach build for
// all. It prints each size's twoway report as it finishes, then how each
// job's median time and peak RSS grow from the first size to each other
// (the ratio last/first per job and tool beside the mailbox's own growth:
// a ratio well below the mailbox's is sublinear growth).
//
// At 100,000 messages of the real corpus every copy of the mailbox takes
// about 7.3 GB; twoway keeps three (Dovecot's, each tool's): the bench
// checks the free space before each size and refuses a size that lacks it.

// scaleOptions are the flags of the scale scenario.
type scaleOptions struct {
	twowayOptions
	sizes []int
}

func runScale(args []string) error {
	var o scaleOptions
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	sizes := fs.String("sizes", "10000,100000", "mailbox sizes (messages), comma-separated, smallest first")
	o.addFlags(fs)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	for _, n := range o.sizes {
		o.messages = n
		if err := o.check(); err != nil {
			return fmt.Errorf("at %d messages: %w", n, err)
		}
	}
	// The largest size must fit before the first starts (each size's
	// work directory is removed before the next, unless -keep).
	parent := o.dir
	if parent == "" {
		parent = os.TempDir()
	}
	need, what := o.sizes[len(o.sizes)-1], "the largest size: Dovecot's, shared by its users, and one per tool"
	if o.keep {
		need, what = 0, "every size (-keep): Dovecot's, shared by its users, and one per tool"
		for _, n := range o.sizes {
			need += n
		}
	}
	if err := checkDisk(parent, o.seed, need, o.opts, 3, what); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var out io.Writer = os.Stdout
	if o.json {
		out = nil
	}
	reps, err := scaleReports(ctx, o, args, out)
	if err != nil {
		return err
	}
	g := growthOf(reps)
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(struct {
			Reports []*report   `json:"reports"`
			Growth  []growthRow `json:"growth"`
		}{reps, g})
	}
	writeGrowth(os.Stdout, reps, g)
	return nil
}

// scaleReports runs twoway at each size (o checked) and returns the
// reports, printing each to out (unless nil) as it finishes.
func scaleReports(ctx context.Context, o scaleOptions, args []string, out io.Writer) ([]*report, error) {
	if o.postfach == "" {
		// One build for every size.
		tmp, err := os.MkdirTemp(o.dir, "postfach-bench-build-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(os.Stderr, "bench: building postfach")
		pf, _, err := buildPostfach(ctx, tmp)
		if err != nil {
			return nil, err
		}
		o.postfach = pf.bin
	}
	var reps []*report
	for _, n := range o.sizes {
		o.messages = n
		if err := o.check(); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "bench: scale: twoway at %d messages\n", n)
		rep, err := twoway(ctx, o.twowayOptions, "scale", args)
		if err != nil {
			return nil, fmt.Errorf("at %d messages: %w", n, err)
		}
		rep.Invocation += fmt.Sprintf(" (this size: -messages %d)", n)
		reps = append(reps, rep)
		if out != nil {
			rep.writeText(out)
			fmt.Fprintln(out)
		}
	}
	return reps, nil
}

// parseSizes reads -sizes: positive, ascending.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-sizes %q: want positive numbers of messages, comma-separated", s)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("-sizes %q: want ascending sizes", s)
		}
		out = append(out, n)
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("-sizes %q: want at least two sizes", s)
	}
	return out, nil
}

// growthRow is one job of one tool across the sizes: its median wall time
// and peak RSS at each size (in the order of the reports).
type growthRow struct {
	Phase     string    `json:"phase"`
	Peer      string    `json:"peer"`
	WallS     []float64 `json:"wall_s"`
	MaxRSSKiB []int64   `json:"max_rss_kib"`
	// WallRatio and RSSRatio are last size over first size.
	WallRatio float64 `json:"wall_ratio"`
	RSSRatio  float64 `json:"rss_ratio"`
}

// growthOf lines up the reports' phases and peers (finished reports of
// the same scenario at ascending sizes).
func growthOf(reps []*report) []growthRow {
	if len(reps) == 0 {
		return nil
	}
	var rows []growthRow
	for _, ph := range reps[0].Phases {
		for _, pr := range ph.Peers {
			row := growthRow{Phase: ph.Name, Peer: pr.Peer}
			for _, r := range reps {
				m := r.median(ph.Name, pr.Peer)
				row.WallS = append(row.WallS, m.Wall.Seconds())
				row.MaxRSSKiB = append(row.MaxRSSKiB, m.MaxRSSKiB)
			}
			last := len(reps) - 1
			if row.WallS[0] > 0 {
				row.WallRatio = row.WallS[last] / row.WallS[0]
			}
			if row.MaxRSSKiB[0] > 0 {
				row.RSSRatio = float64(row.MaxRSSKiB[last]) / float64(row.MaxRSSKiB[0])
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// median is a phase's median sample of a peer, zero when missing.
func (r *report) median(phase, peerName string) sample {
	for _, ph := range r.Phases {
		if ph.Name != phase {
			continue
		}
		for _, pr := range ph.Peers {
			if pr.Peer == peerName {
				return pr.Median
			}
		}
	}
	return sample{}
}

func writeGrowth(w io.Writer, reps []*report, rows []growthRow) {
	first, last := reps[0], reps[len(reps)-1]
	fmt.Fprintf(w, "scale: how each job grows from %d to %d messages (mailbox ×%.1f: %s to %s); corpus %s; medians of %d runs\n",
		first.Corpus.Messages, last.Corpus.Messages, float64(last.Corpus.Messages)/float64(first.Corpus.Messages),
		mib(first.Corpus.Bytes), mib(last.Corpus.Bytes), first.CorpusKind, first.Runs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := []string{"job", "tool"}
	for _, r := range reps {
		head = append(head, fmt.Sprintf("time @%d", r.Corpus.Messages))
	}
	head = append(head, "time ×")
	for _, r := range reps {
		head = append(head, fmt.Sprintf("peak RSS @%d", r.Corpus.Messages))
	}
	head = append(head, "RSS ×")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, row := range rows {
		cells := []string{row.Phase, row.Peer}
		for _, s := range row.WallS {
			cells = append(cells, fmt.Sprintf("%.3f s", s))
		}
		cells = append(cells, fmt.Sprintf("%.2f", row.WallRatio))
		for _, k := range row.MaxRSSKiB {
			cells = append(cells, kib(k))
		}
		cells = append(cells, fmt.Sprintf("%.2f", row.RSSRatio))
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	var inc []string
	for _, r := range reps {
		inc = append(inc, fmt.Sprintf("at %d: %d \\Seen toggled + %d new upstream, %d local", r.Corpus.Messages, r.Changes, r.Changes, r.LocalChanges))
	}
	fmt.Fprintf(w, "×: at %d over at %d messages; below the mailbox's ×%.1f is sublinear. incremental %s\n",
		last.Corpus.Messages, first.Corpus.Messages, float64(last.Corpus.Messages)/float64(first.Corpus.Messages), strings.Join(inc, "; "))
}
