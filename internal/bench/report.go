package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// report is everything a comparison measured.
type report struct {
	Scenario   string     `json:"scenario"`
	Invocation string     `json:"invocation"`
	Corpus     corpusInfo `json:"corpus"`
	CorpusKind string     `json:"corpus_kind,omitempty"` // which -corpus, described
	Seed       int64      `json:"seed"`
	Runs       int        `json:"runs"`
	Changes    int        `json:"changes"`
	// LocalChanges is the twoway scenario's changes in each Maildir.
	LocalChanges int     `json:"local_changes,omitempty"`
	Server       string  `json:"server"`
	Build        string  `json:"build"`
	Machine      machine `json:"machine"`
	RSSMethod    string  `json:"rss_method"`
	// FsyncBefore and FsyncAfter probe the disk before and after the runs.
	FsyncBefore fsyncProbe     `json:"fsync_before"`
	FsyncAfter  fsyncProbe     `json:"fsync_after"`
	Peers       []peerInfo     `json:"peers"` // the first is the subject of the ratios
	Phases      []*phaseResult `json:"phases"`
	WorkDir     string         `json:"work_dir,omitempty"`
	Clients     *loadResult    `json:"clients,omitempty"` // the serve scenario's clients phase
	// Floor is the twoway scenario's server floor of a no-change run
	// (floor.go).
	Floor *serverFloor `json:"server_floor,omitempty"`
}

type peerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Notes   string `json:"notes"`
	Command string `json:"command"` // of the first run
}

type phaseResult struct {
	Name string `json:"phase"`
	// Work is what the phase mirrors: messages for initial and resync,
	// changes (flag changes + new messages) for incremental.
	Work   int                `json:"work"`
	Peers  []*peerResult      `json:"peers"`
	Ratios map[string]float64 `json:"ratios"` // "a/b": median wall of a over b
}

type peerResult struct {
	Peer      string   `json:"peer"`
	Runs      []sample `json:"runs"`
	Median    sample   `json:"median"`
	PerSecond float64  `json:"work_per_s"` // Work / median wall
}

func (r *report) add(phase string, work int, peerName string, s sample) {
	var ph *phaseResult
	for _, p := range r.Phases {
		if p.Name == phase {
			ph = p
		}
	}
	if ph == nil {
		ph = &phaseResult{Name: phase, Work: work, Ratios: map[string]float64{}}
		for _, p := range r.Peers {
			ph.Peers = append(ph.Peers, &peerResult{Peer: p.Name})
		}
		r.Phases = append(r.Phases, ph)
	}
	for _, pr := range ph.Peers {
		if pr.Peer == peerName {
			pr.Runs = append(pr.Runs, s)
		}
	}
}

// finish computes medians, rates and ratios.
func (r *report) finish() {
	for _, ph := range r.Phases {
		for _, pr := range ph.Peers {
			pr.Median = medianSample(pr.Runs)
			if pr.Median.Wall > 0 {
				pr.PerSecond = float64(ph.Work) / pr.Median.Wall.Seconds()
			}
		}
		subject := ph.Peers[0]
		for _, other := range ph.Peers[1:] {
			if other.Median.Wall > 0 {
				ph.Ratios[subject.Peer+"/"+other.Peer] = subject.Median.Wall.Seconds() / other.Median.Wall.Seconds()
			}
		}
	}
	if r.Floor != nil {
		r.Floor.finish(r.Phases)
	}
}

// medianSample takes the median of each field on its own.
func medianSample(ss []sample) sample {
	if len(ss) == 0 {
		return sample{}
	}
	med := func(f func(sample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return sample{
		Wall:      time.Duration(med(func(s sample) int64 { return int64(s.Wall) })),
		User:      time.Duration(med(func(s sample) int64 { return int64(s.User) })),
		Sys:       time.Duration(med(func(s sample) int64 { return int64(s.Sys) })),
		MaxRSSKiB: med(func(s sample) int64 { return s.MaxRSSKiB }),
		ServerCPU: time.Duration(med(func(s sample) int64 { return int64(s.ServerCPU) })),
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "%s: %d messages (%s, %d folders, corpus seed %d), %d runs, medians\n",
		r.Scenario, r.Corpus.Messages, mib(r.Corpus.Bytes), len(r.Corpus.Folders), r.Seed, r.Runs)
	if r.CorpusKind != "" {
		fmt.Fprintf(w, "corpus: %s\n", r.CorpusKind)
	}
	fmt.Fprintf(w, "server: %s\n\n", r.Server)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := []string{"phase"}
	for _, p := range r.Peers {
		head = append(head, p.Name)
	}
	subject := r.Peers[0].Name
	for _, p := range r.Peers[1:] {
		head = append(head, subject+"/"+p.Name)
	}
	for _, p := range r.Peers {
		head = append(head, p.Name+" peak RSS")
	}
	for _, p := range r.Peers {
		head = append(head, p.Name+" msg/s")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	// A peer without runs in a phase (the migrate scenario's POP3 source
	// is postfach's alone) gets "-".
	for _, ph := range r.Phases {
		row := []string{ph.Name}
		cell := func(pr *peerResult, s string) string {
			if len(pr.Runs) == 0 {
				return "-"
			}
			return s
		}
		for _, pr := range ph.Peers {
			row = append(row, cell(pr, fmt.Sprintf("%.3f s", pr.Median.Wall.Seconds())))
		}
		for _, p := range r.Peers[1:] {
			ratio, ok := ph.Ratios[subject+"/"+p.Name]
			if !ok {
				row = append(row, "-")
				continue
			}
			row = append(row, fmt.Sprintf("%.2f", ratio))
		}
		for _, pr := range ph.Peers {
			row = append(row, cell(pr, kib(pr.Median.MaxRSSKiB)))
		}
		for _, pr := range ph.Peers {
			row = append(row, cell(pr, fmt.Sprintf("%.0f", pr.PerSecond)))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintf(w, "ratio < 1: %s is faster. msg/s: messages mirrored (initial) or checked (resync, rerun) per second", subject)
	switch {
	case r.Scenario == "twoway":
		ls, ln := (r.LocalChanges+1)/2, r.LocalChanges/2
		fmt.Fprintf(w, ";\nincremental: per run and tool, on its server account %d \\Seen toggled + %d APPENDed, in its Maildir %d S toggled (renames) + %d new files,\ncounted as %d changes; the initial sync ran once per tool, the other phases once per run;\nresync again: a second no-change resync right after the first",
			r.Changes, r.Changes, ls, ln, 2*r.Changes+r.LocalChanges)
	case r.Scenario == "migrate":
		fmt.Fprint(w, ";\nrerun: the same command again, with nothing to copy")
		if slices.ContainsFunc(r.Phases, func(ph *phaseResult) bool { return ph.Name == phaseMigratePOP3 }) {
			fmt.Fprintf(w, "; %s: postfach migrate from a POP3 account whose INBOX holds every message (postfach alone)", phaseMigratePOP3)
		}
	case r.Changes > 0:
		fmt.Fprintf(w, "; incremental: %d flag changes + %d new messages, counted as %d", r.Changes, r.Changes, 2*r.Changes)
	}
	fmt.Fprintln(w)
	if r.Floor != nil {
		r.Floor.writeText(w, r.Peers)
	}

	for _, ph := range r.Phases {
		if ph.Name != "initial" && ph.Name != phaseInitialOnce {
			continue
		}
		var parts []string
		for _, pr := range ph.Peers {
			parts = append(parts, pr.Peer+" "+kib(pr.Median.MaxRSSKiB))
		}
		fmt.Fprintf(w, "\nmax RSS of the initial sync (median): %s; measured with %s\n", strings.Join(parts, ", "), r.RSSMethod)
	}

	fmt.Fprintln(w, "\nper process (medians; Dovecot CPU = server time spent meanwhile):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tpeer\twall\tuser\tsys\tDovecot CPU\tmax RSS\truns (wall s)\t")
	for _, ph := range r.Phases {
		for _, pr := range ph.Peers {
			if len(pr.Runs) == 0 {
				continue
			}
			var runs []string
			for _, s := range pr.Runs {
				runs = append(runs, fmt.Sprintf("%.3f", s.Wall.Seconds()))
			}
			m := pr.Median
			fmt.Fprintf(tw, "%s\t%s\t%.3f s\t%.3f s\t%.3f s\t%.3f s\t%s\t%s\t\n", ph.Name, pr.Peer,
				m.Wall.Seconds(), m.User.Seconds(), m.Sys.Seconds(), m.ServerCPU.Seconds(), kib(m.MaxRSSKiB), strings.Join(runs, " "))
		}
	}
	tw.Flush()

	if r.Clients != nil {
		r.Clients.writeText(w)
	}

	fmt.Fprintln(w, "\ncommands (first run):")
	for _, p := range r.Peers {
		fmt.Fprintf(w, "  %-9s %s\n", p.Name+":", p.Command)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "build:", r.Build)
	fmt.Fprintf(w, "  %-9s %s\n", "bench:", r.Invocation)
	fmt.Fprintln(w, "peers:")
	for _, p := range r.Peers {
		fmt.Fprintf(w, "  %-9s %s; %s\n", p.Name+":", p.Version, p.Notes)
	}
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), Linux %s, work dir on %s, bench built with %s\n", m.CPUs, m.CPUModel, m.Kernel, m.FS, m.Go)
	fmt.Fprintf(w, "disk: create+write 4 KiB+fsync: before the runs %s; after %s\n", r.FsyncBefore, r.FsyncAfter)
	if r.WorkDir != "" {
		fmt.Fprintf(w, "work dir (kept): %s\n", r.WorkDir)
	}
}

type machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	FS       string `json:"fs"` // file system of the work directory
	Go       string `json:"go"`
}

func describeMachine(dir string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPUModel: "?", Kernel: "?", FS: "?"}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		names := map[int64]string{0xef53: "ext4", 0x58465342: "xfs", 0x9123683e: "btrfs", 0x01021994: "tmpfs", 0x794c7630: "overlayfs", 0x2fc12fc1: "zfs"}
		m.FS = names[int64(st.Type)]
		if m.FS == "" {
			m.FS = fmt.Sprintf("fs type %#x", st.Type)
		}
	}
	return m
}

func kib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/1024) }
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
