package main

// The soak scenario: `postfach run` against a private Dovecot for a long
// time (an hour by default) under mixed traffic on both sides, in cycles
// of a busy half (another IMAP client and another Maildir program each
// making random changes: new messages, flag changes, moves, deletions; see
// internal/agenttest) and a quiet half (no change at all). The agent's
// process is sampled every -interval from /proc: resident memory, threads,
// open file descriptors (sockets apart), CPU time; and goroutines when
// status --json offers them ("goroutines" in its agent block). The report
// says whether each stays flat (its value at the end of the last quiet
// half against the end of the first) and whether the agent's CPU use in
// the quiet halves is near zero. At the end the agent is stopped (SIGTERM,
// within 5 s), one `postfach sync` runs, and both sides must hold exactly
// what the changes made, message by message (agenttest's model): a soak
// that does not verify fails.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/corpus"
)

type soakOptions struct {
	duration, cycle, interval time.Duration
	rate                      float64
	messages                  int
	postfach, dir             string
	keep, json                bool
}

// Limits of "flat" and "near zero".
const (
	soakRSSGrowth  = 1.25 // end of the last quiet half against the first, at most ×1.25 ...
	soakRSSSlack   = 8 << 10
	soakFDSlack    = 2    // ... plus 8 MiB; descriptors and threads at most +2
	soakGoroSlack  = 10   // goroutines at most +10
	soakQuietCPU   = 0.01 // CPU seconds per second in the quiet halves
	soakQuietSkip  = 0.2  // the first fifth of a quiet half is the busy half's tail
	soakStopLimit  = 5 * time.Second
	soakIdleWait   = 10 * time.Minute
	soakVerifyWait = 2 * time.Minute
)

func runSoak(args []string) error {
	var o soakOptions
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	fs.DurationVar(&o.duration, "duration", time.Hour, "how long the agent runs under traffic")
	fs.DurationVar(&o.cycle, "cycle", 10*time.Minute, "one busy half and one quiet half (at most -duration)")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "how often the agent's process is sampled")
	fs.Float64Var(&o.rate, "rate", 30, "changes per minute on each side in the busy halves")
	fs.IntVar(&o.messages, "messages", 2000, "messages on the server before the agent starts")
	fs.StringVar(&o.postfach, "postfach", "", "postfach `binary` to test (default: build ./agent/cmd/postfach)")
	fs.StringVar(&o.dir, "dir", "", "create the work directory in `parent` (default $TMPDIR or /tmp)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.duration <= 0 || o.interval <= 0 || o.rate <= 0 || o.messages < 10 {
		return fmt.Errorf("-duration, -interval and -rate must be positive, -messages at least 10")
	}
	o.cycle = min(o.cycle, o.duration)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := soak(ctx, o, args, os.Stderr)
	if rep != nil {
		if o.json {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(rep)
		} else {
			rep.writeText(os.Stdout)
		}
	}
	if err != nil {
		return err
	}
	if !rep.Flat {
		return fmt.Errorf("soak: not flat (see the report)")
	}
	return nil
}

// soakReport is what the soak measured.
type soakReport struct {
	Invocation string       `json:"invocation"`
	Build      string       `json:"build"`
	Duration   string       `json:"duration"`
	Changes    [2]int       `json:"changes"` // upstream, local
	Samples    []soakSample `json:"samples"`
	Checks     []soakCheck  `json:"checks"`
	Flat       bool         `json:"flat"`
	Verified   string       `json:"verified"`
	StopTook   string       `json:"stop_took"`
}

// soakSample is one look at the agent's process.
type soakSample struct {
	At         time.Duration `json:"at_ns"`
	Phase      string        `json:"phase"` // busy or quiet
	RSSKiB     int64         `json:"rss_kib"`
	Threads    int           `json:"threads"`
	FDs        int           `json:"fds"` // all open descriptors
	Sockets    int           `json:"sockets"`
	CPU        time.Duration `json:"cpu_ns"` // user + system since start
	Goroutines int           `json:"goroutines"`
	State      string        `json:"state"`
}

type soakCheck struct {
	What   string `json:"what"`
	First  string `json:"first"`
	Last   string `json:"last"`
	Limit  string `json:"limit"`
	Passed bool   `json:"passed"`
}

func soak(ctx context.Context, o soakOptions, args []string, log io.Writer) (*soakReport, error) {
	ws, err := newWorkspace(ctx, "soak", "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return nil, err
	}
	defer ws.close()
	rep := &soakReport{Invocation: ws.rep.Invocation, Build: ws.rep.Build, Duration: o.duration.String()}
	srv, err := startDovecot(filepath.Join(ws.dir, "dovecot"), "")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()

	store := filepath.Join(ws.dir, "store")
	config := filepath.Join(ws.dir, "soak.toml")
	up := srv.upstream()
	conf := fmt.Sprintf("[store]\npath = %s\n\n[[accounts]]\nname = %s\nkind = \"imap\"\nhost = %s\nport = %d\ntls = \"none\"\nusername = %s\npassword = %s\nidle_folders = [\"INBOX\", \"Second\"]\nmax_delete_percent = 100\n",
		tomlString(store), tomlString(postfachAccount), tomlString(up.Host), up.Port, tomlString(up.User), tomlString(up.Password))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	model := agenttest.NewModel("soak", uint64(time.Now().UnixNano()), "INBOX", "Second")
	c, err := srv.dial()
	if err != nil {
		return nil, err
	}
	server, err := agenttest.NewServer(c, model)
	if err != nil {
		return nil, err
	}
	defer server.Close()
	w := srv.d.MaildirWriter(srv.user)
	for i := range o.messages {
		owner := agenttest.Upstream
		if i%2 == 1 {
			owner = agenttest.Local
		}
		m := model.Prepare(model.Folders[(i/2)%2], owner)
		if err := w.Write(corpus.Message{Folder: m.Folder, MessageID: m.ID, Raw: m.CRLF(), Date: time.Now().Add(-time.Hour)}); err != nil {
			return nil, err
		}
	}
	local := agenttest.NewMaildir(store, postfachAccount, model)

	a, err := agenttest.StartAgent(ws.pf.bin, config, nil)
	if err != nil {
		return nil, err
	}
	defer a.Kill()
	fmt.Fprintf(log, "bench: soak: postfach run (pid %d) started; %d messages upstream\n", a.PID(), o.messages)
	if _, err := a.WaitIdle(soakIdleWait); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "bench: soak: first sync done; %v of traffic in %v cycles, a sample every %v\n", o.duration, o.cycle, o.interval)

	if err := soakTraffic(ctx, o, a, server, local, rep, log); err != nil {
		return rep, err
	}
	rep.check()

	took, err := a.Stop(soakStopLimit)
	rep.StopTook = took.Round(time.Millisecond).String()
	if err != nil {
		return rep, err
	}
	if err := soakVerify(ctx, ws.pf.bin, config, server, local, model); err != nil {
		return rep, err
	}
	rep.Verified = fmt.Sprintf("both sides hold the %d messages the changes left, byte for byte, with their flags", model.Len())
	return rep, nil
}

// soakTraffic runs the busy and quiet halves of each cycle (changes on
// both sides at o.rate, then none) while sampling the agent's process into
// rep.Samples every o.interval.
func soakTraffic(ctx context.Context, o soakOptions, a *agenttest.Agent, server *agenttest.Server, local *agenttest.Maildir, rep *soakReport, log io.Writer) error {
	start := time.Now()
	var mu sync.Mutex
	phase := "busy"
	samplerDone := make(chan struct{})
	sampleCtx, stopSampler := context.WithCancel(ctx)
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(o.interval)
		defer t.Stop()
		for {
			mu.Lock()
			ph := phase
			mu.Unlock()
			s, err := sampleAgent(a, time.Since(start), ph)
			if err == nil {
				rep.Samples = append(rep.Samples, s)
			} else {
				fmt.Fprintf(log, "bench: soak: sample: %v\n", err)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	every := time.Duration(float64(time.Minute) / o.rate)
	var loadErr error
	for cycle := 0; time.Since(start) < o.duration && loadErr == nil && ctx.Err() == nil; cycle++ {
		mu.Lock()
		phase = "busy"
		mu.Unlock()
		busyCtx, cancel := context.WithTimeout(ctx, min(o.cycle/2, o.duration-time.Since(start)))
		var wg sync.WaitGroup
		var upErr, localErr error
		var upN, localN int
		wg.Go(func() {
			upN, upErr = agenttest.RunSteps(busyCtx, every, func() (string, error) { return agenttest.UpstreamStep(server) })
		})
		wg.Go(func() {
			localN, localErr = agenttest.RunSteps(busyCtx, every, func() (string, error) { return agenttest.LocalStep(local) })
		})
		wg.Wait()
		cancel()
		rep.Changes[0] += upN
		rep.Changes[1] += localN
		if upErr != nil || localErr != nil {
			loadErr = fmt.Errorf("load: upstream: %v; local: %v", upErr, localErr)
			break
		}
		mu.Lock()
		phase = "quiet"
		mu.Unlock()
		fmt.Fprintf(log, "bench: soak: cycle %d: %d upstream and %d local changes; quiet until %v\n", cycle+1, upN, localN, min(time.Duration(cycle+1)*o.cycle, o.duration))
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(cycle+1)*o.cycle, o.duration) - time.Since(start)):
		}
	}
	stopSampler()
	<-samplerDone
	if loadErr != nil {
		return loadErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// soakVerify runs one "postfach sync" after the agent stopped and holds
// both sides to the model, by content and flags.
func soakVerify(ctx context.Context, bin, config string, server *agenttest.Server, local *agenttest.Maildir, model *agenttest.Model) error {
	sync := exec.CommandContext(ctx, bin, "--config", config, "sync")
	if out, err := sync.CombinedOutput(); err != nil {
		return fmt.Errorf("postfach sync after the soak: %v\n%s", err, out)
	}
	var diffs []string
	got, err := server.Snapshot(true)
	if err != nil {
		return err
	}
	diffs = append(diffs, model.Diff("server", got)...)
	if got, err = local.Snapshot(true); err != nil {
		return err
	}
	diffs = append(diffs, model.Diff("local", got)...)
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("... and %d more", len(diffs)-30))
		}
		return fmt.Errorf("soak: the sides differ from what the changes made:\n%s", strings.Join(diffs, "\n"))
	}
	return nil
}

// sampleAgent reads the agent's process from /proc, and its state (and
// goroutines, when offered) from status --json.
func sampleAgent(a *agenttest.Agent, at time.Duration, phase string) (soakSample, error) {
	s := soakSample{At: at, Phase: phase, Goroutines: -1}
	pid := strconv.Itoa(a.PID())
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSSKiB, _ = strconv.ParseInt(f[0], 10, 64)
		case "Threads":
			s.Threads, _ = strconv.Atoi(f[0])
		}
	}
	fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc", pid, "fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			s.Sockets++
		}
	}
	if s.CPU, err = procCPU(a.PID()); err != nil {
		return s, err
	}
	if st, err := a.Status(context.Background()); err == nil && st.Agent != nil {
		s.State = st.Agent.States()
		if st.Agent.Goroutines != nil {
			s.Goroutines = *st.Agent.Goroutines
		}
	}
	return s, nil
}

// check judges the samples: the last quiet sample of the first cycle
// against that of the last cycle, and the CPU in the quiet halves.
func (r *soakReport) check() {
	var ends []soakSample // the last sample of each quiet half
	for i, s := range r.Samples {
		if s.Phase == "quiet" && (i+1 == len(r.Samples) || r.Samples[i+1].Phase == "busy") {
			ends = append(ends, s)
		}
	}
	if len(ends) == 0 {
		r.Checks = append(r.Checks, soakCheck{What: "samples", Limit: "a quiet half with a sample", Passed: false})
		return
	}
	first, last := ends[0], ends[len(ends)-1]
	add := func(what string, f, l, limit int64, unit string) {
		r.Checks = append(r.Checks, soakCheck{What: what, First: fmt.Sprint(f, unit), Last: fmt.Sprint(l, unit), Limit: fmt.Sprint("≤ ", limit, unit), Passed: l <= limit})
	}
	add("resident memory", first.RSSKiB, last.RSSKiB, int64(float64(first.RSSKiB)*soakRSSGrowth)+soakRSSSlack, " KiB")
	add("threads", int64(first.Threads), int64(last.Threads), int64(first.Threads+soakFDSlack), "")
	add("open descriptors", int64(first.FDs), int64(last.FDs), int64(first.FDs+soakFDSlack), "")
	add("sockets", int64(first.Sockets), int64(last.Sockets), int64(first.Sockets+soakFDSlack), "")
	if first.Goroutines >= 0 && last.Goroutines >= 0 {
		add("goroutines", int64(first.Goroutines), int64(last.Goroutines), int64(first.Goroutines+soakGoroSlack), "")
	} else {
		r.Checks = append(r.Checks, soakCheck{What: "goroutines", First: "n/a", Last: "n/a", Limit: "status --json has no agent.goroutines", Passed: true})
	}
	// CPU per quiet half, its first fifth left out.
	var cpu, wall time.Duration
	for i := 0; i < len(r.Samples); {
		if r.Samples[i].Phase != "quiet" {
			i++
			continue
		}
		j := i
		for j+1 < len(r.Samples) && r.Samples[j+1].Phase == "quiet" {
			j++
		}
		k := i + int(float64(j-i)*soakQuietSkip+0.5)
		if j > k {
			cpu += r.Samples[j].CPU - r.Samples[k].CPU
			wall += r.Samples[j].At - r.Samples[k].At
		}
		i = j + 1
	}
	c := soakCheck{What: "CPU when nothing changes", Limit: fmt.Sprintf("≤ %.1f%%", soakQuietCPU*100)}
	if wall > 0 {
		share := cpu.Seconds() / wall.Seconds()
		c.First, c.Last = fmt.Sprintf("%v in %v", cpu, wall.Round(time.Second)), fmt.Sprintf("%.2f%%", share*100)
		c.Passed = share <= soakQuietCPU
	} else {
		c.First, c.Last = "no quiet samples", ""
	}
	r.Checks = append(r.Checks, c)
	r.Flat = true
	for _, c := range r.Checks {
		r.Flat = r.Flat && c.Passed
	}
}

func (r *soakReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "soak: %s\nbuild: %s\n", r.Invocation, r.Build)
	fmt.Fprintf(w, "%v of traffic: %d upstream and %d local changes\n\n", r.Duration, r.Changes[0], r.Changes[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "at\tphase\tRSS KiB\tthreads\tfds\tsockets\tCPU\tgoroutines\tstate\t")
	for _, s := range r.Samples {
		g := "n/a"
		if s.Goroutines >= 0 {
			g = strconv.Itoa(s.Goroutines)
		}
		fmt.Fprintf(tw, "%v\t%s\t%d\t%d\t%d\t%d\t%v\t%s\t%s\t\n", s.At.Round(time.Second), s.Phase, s.RSSKiB, s.Threads, s.FDs, s.Sockets, s.CPU, g, s.State)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "check\tfirst quiet\tlast quiet\tlimit\tresult")
	for _, c := range r.Checks {
		res := "ok"
		if !c.Passed {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.What, c.First, c.Last, c.Limit, res)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nflat: %v; SIGTERM took %s; %s\n", r.Flat, r.StopTook, cmpVerified(r.Verified))
}

func cmpVerified(v string) string {
	if v == "" {
		return "not verified"
	}
	return "verified: " + v
}
