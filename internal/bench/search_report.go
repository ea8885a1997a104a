package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// searchReport is what the search scenario measured. It shares the
// header (corpus, machine, build, disk probes) with the other scenarios'
// report; Peers and Phases stay empty.
type searchReport struct {
	*report
	Vocabulary string        `json:"vocabulary"`
	Repeat     int           `json:"repeat"`
	Tools      []peerInfo    `json:"tools"`
	Sync       sample        `json:"postfach_sync"` // not indexing: shown for context
	Index      indexResult   `json:"index"`
	Queries    []queryResult `json:"queries"`
	Summary    searchSummary `json:"summary"`
	// Language: the postfach build has the query language; without it
	// every query ran as plain words (the † queries mean nothing then).
	Language bool `json:"postfach_query_language"`
	// LoadBefore and LoadAfter are /proc/loadavg's three load averages
	// before the timed runs and after them (the machine may be shared).
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

type indexResult struct {
	Postfach       []sample `json:"postfach_runs"`
	Notmuch        []sample `json:"notmuch_runs"`
	PostfachMedian sample   `json:"postfach"`
	NotmuchMedian  sample   `json:"notmuch"`
	Ratio          float64  `json:"ratio"` // postfach / notmuch, median wall
	PostfachBytes  int64    `json:"postfach_index_bytes"`
	NotmuchBytes   int64    `json:"notmuch_database_bytes"`
}

type searchSummary struct {
	Compared       int     `json:"compared"`        // queries both tools answered
	PostfachFaster int     `json:"postfach_faster"` // of those, postfach's median <= notmuch's
	MedianPostfach float64 `json:"median_postfach_ms"`
	MedianNotmuch  float64 `json:"median_notmuch_ms"`
	CPUPostfach    float64 `json:"median_cpu_postfach_ms"`
	CPUNotmuch     float64 `json:"median_cpu_notmuch_ms"`
	WorstRatio     float64 `json:"worst_ratio"`
	Errors         int     `json:"errors"`
}

func (r *searchReport) summarize() {
	var pf, nm, pfCPU, nmCPU []time.Duration
	s := &r.Summary
	for _, q := range r.Queries {
		if q.Postfach.Error != "" || q.Notmuch.Error != "" {
			s.Errors++
		}
		if q.Postfach.Median > 0 {
			pf, pfCPU = append(pf, q.Postfach.Median), append(pfCPU, q.Postfach.MedianCPU)
		}
		if q.Notmuch.Median > 0 {
			nm, nmCPU = append(nm, q.Notmuch.Median), append(nmCPU, q.Notmuch.MedianCPU)
		}
		if q.Ratio > 0 {
			s.Compared++
			if q.Ratio <= 1 {
				s.PostfachFaster++
			}
			s.WorstRatio = max(s.WorstRatio, q.Ratio)
		}
	}
	if len(pf) > 0 {
		s.MedianPostfach, s.CPUPostfach = medianDuration(pf).Seconds()*1000, medianDuration(pfCPU).Seconds()*1000
	}
	if len(nm) > 0 {
		s.MedianNotmuch, s.CPUNotmuch = medianDuration(nm).Seconds()*1000, medianDuration(nmCPU).Seconds()*1000
	}
}

func (r *searchReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

func (r *searchReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "search: %d messages (%s, %d folders, corpus seed %d, natural language), indexing %d run(s), each query %d times per tool, medians\n",
		r.Corpus.Messages, mib(r.Corpus.Bytes), len(r.Corpus.Folders), r.Seed, r.Runs, r.Repeat)
	fmt.Fprintf(w, "vocabulary: %s\n\n", r.Vocabulary)

	ix := r.Index
	fmt.Fprintln(w, "indexing the same Maildir (whole process, wall; page cache warm):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\twhat\twall\tuser\tsys\tmax RSS\tindex size\truns (wall s)\t")
	row := func(name, what string, m sample, runs []sample, size int64) {
		var rs []string
		for _, s := range runs {
			rs = append(rs, fmt.Sprintf("%.3f", s.Wall.Seconds()))
		}
		sz := "-"
		if size > 0 {
			sz = mib(size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f s\t%.3f s\t%.3f s\t%s\t%s\t%s\t\n", name, what, m.Wall.Seconds(), m.User.Seconds(), m.Sys.Seconds(), kib(m.MaxRSSKiB), sz, strings.Join(rs, " "))
	}
	row("postfach", "first search (full text of all)", ix.PostfachMedian, ix.Postfach, ix.PostfachBytes)
	row("notmuch", "notmuch new (empty database)", ix.NotmuchMedian, ix.Notmuch, ix.NotmuchBytes)
	row("(postfach)", "sync from Dovecot, not indexing", r.Sync, []sample{r.Sync}, 0)
	tw.Flush()
	cpu := func(s sample) float64 { return (s.User + s.Sys).Seconds() }
	cpuRatio := 0.0
	if c := cpu(ix.NotmuchMedian); c > 0 {
		cpuRatio = cpu(ix.PostfachMedian) / c
	}
	fmt.Fprintf(w, "indexing ratio postfach/notmuch: wall %.2f, CPU (user+sys) %.2f. postfach's headers (subject, from, to, cc, date, flags) go into its index during the sync,\n"+
		"not separable from downloading and storing; the sync's time is shown, not counted. notmuch new parses headers and bodies.\n"+
		"Index size: postfach's whole index (.postfach: headers, sync state, full text), notmuch's database.\n\n", ix.Ratio, cpuRatio)

	fmt.Fprintln(w, "queries (wall of the whole process and its CPU time, user+sys, in ms, medians; hits: results printed with a limit of 50, postfach messages, notmuch threads;")
	fmt.Fprintln(w, "all: every matching message, counted untimed; agree: every hit compared by Message-ID):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tquery\tpostfach\tnotmuch\tpf ms\tnm ms\tratio\tpf CPU\tnm CPU\tCPU ratio\thits pf/nm\tall pf/nm\tagree\t")
	ms := func(t toolResult) string {
		switch {
		case t.Error != "" && len(t.Runs) == 0:
			return "error"
		case len(t.Runs) == 0:
			return "n/a"
		}
		return fmt.Sprintf("%.1f", t.Median.Seconds()*1000)
	}
	cpuMS := func(t toolResult) string {
		if len(t.Runs) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", t.MedianCPU.Seconds()*1000)
	}
	all := func(n int) string {
		if n < 0 {
			return "-"
		}
		return fmt.Sprint(n)
	}
	for i, q := range r.Queries {
		mark := ""
		if !q.Query.Plain {
			mark = " †"
		}
		ratio, cpuRatio := "-", "-"
		if q.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", q.Ratio)
		}
		if q.CPURatio > 0 {
			cpuRatio = fmt.Sprintf("%.2f", q.CPURatio)
		}
		nmq := q.Query.Notmuch
		if nmq == "" {
			nmq = "(none)"
		}
		fmt.Fprintf(tw, "%d\t%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s/%s\t%s\t\n", i+1, q.Query.Name, mark, q.Query.Postfach, nmq,
			ms(q.Postfach), ms(q.Notmuch), ratio, cpuMS(q.Postfach), cpuMS(q.Notmuch), cpuRatio, q.Postfach.Hits, q.Notmuch.Hits, all(q.Postfach.All), all(q.Notmuch.All), q.Agree)
	}
	tw.Flush()
	s := r.Summary
	fmt.Fprintf(w, "median of the queries' medians: wall postfach %.1f ms, notmuch %.1f ms; CPU postfach %.0f ms, notmuch %.0f ms; postfach's wall as short or shorter in %d of %d compared, worst ratio %.2f\n",
		s.MedianPostfach, s.MedianNotmuch, s.CPUPostfach, s.CPUNotmuch, s.PostfachFaster, s.Compared, s.WorstRatio)
	if r.Language {
		fmt.Fprintln(w, "† needs postfach's query language (issue 13); the others are plain words.")
	} else {
		fmt.Fprintln(w, "† needs postfach's query language (issue 13), which this build lacks: it took these as plain words, so their hits and times mean nothing yet.")
	}
	for i, q := range r.Queries {
		for _, e := range []struct{ tool, err string }{{"postfach", q.Postfach.Error}, {"notmuch", q.Notmuch.Error}} {
			if e.err != "" {
				fmt.Fprintf(w, "  #%d %s: %s\n", i+1, e.tool, e.err)
			}
		}
	}
	fmt.Fprintln(w, "semantics:")
	for i, q := range r.Queries {
		if q.Query.Note != "" {
			fmt.Fprintf(w, "  #%d %s: %s\n", i+1, q.Query.Name, q.Query.Note)
		}
	}

	fmt.Fprintln(w, "\ncommands:")
	for _, p := range r.Tools {
		fmt.Fprintf(w, "  %-9s %s\n", p.Name+":", p.Command)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "build:", r.Build)
	fmt.Fprintf(w, "  %-9s %s\n", "bench:", r.Invocation)
	fmt.Fprintln(w, "tools:")
	for _, p := range r.Tools {
		fmt.Fprintf(w, "  %-9s %s; %s\n", p.Name+":", p.Version, p.Notes)
	}
	fmt.Fprintf(w, "sync source: %s\n", r.Server)
	fmt.Fprintf(w, "max RSS measured with %s\n", r.RSSMethod)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), Linux %s, work dir on %s, bench built with %s\nload average (1, 5, 15 min): before the timed runs %s, after %s\n", m.CPUs, m.CPUModel, m.Kernel, m.FS, m.Go, r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(w, "disk: create+write 4 KiB+fsync: before the runs %s; after %s\n", r.FsyncBefore, r.FsyncAfter)
	if r.WorkDir != "" {
		fmt.Fprintf(w, "work dir (kept): %s\n", r.WorkDir)
	}
}
