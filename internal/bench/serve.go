package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/corpus"
)

// The serve scenario: postfach as a server. One Dovecot holds the corpus;
// postfach syncs it into its store (untimed), then `postfach run` serves
// that store on its local IMAP endpoint (plaintext on loopback, local
// credentials from the config). The same mbsync (Sync Pull, as in the imap
// scenario) then pulls the whole account into an empty Maildir twice per
// run, once from postfach's endpoint and once from Dovecot, and resyncs
// each with nothing changed; the server that goes first rotates. Every
// Maildir is verified against the corpus, byte for byte, with its flags
// (mbsync's X-TUID line left out), as in the imap scenario. The "server
// CPU" column is the CPU time of the server that peer pulled from: the
// agent's process for postfach, Dovecot's process tree for Dovecot. The
// report adds the agent's peak RSS (VmHWM) over the whole scenario.
//
// With -clients N the same agent then serves N concurrent IMAP clients
// (serveload.go), after the mbsync runs; -runs 0 leaves those out. With
// -reuse DIR the scenario starts from a work directory an earlier run
// kept (-keep): Dovecot's Maildir is not seeded again (a file "seeded"
// says with what it was; it must match -messages and -seed), but it is
// warmed and verified against the corpus again, and postfach's store is
// brought up to date by a sync (a no-change resync) and verified. A
// 100,000-message corpus takes minutes to seed and sync the first time.

// servedPeer is mbsync pulling from one server.
type servedPeer struct {
	*mbsyncPeer
	name, notes string
	up          upstream
	cpu         func() (time.Duration, error) // the server's CPU time
}

func (p *servedPeer) Name() string  { return p.name }
func (p *servedPeer) Notes() string { return p.notes + "; " + p.mbsyncPeer.Notes() }
func (p *servedPeer) NewReplica(dir string, _ upstream) (replica, error) {
	return p.mbsyncPeer.NewReplica(dir, p.up)
}

// serveUser and servePassword are the local endpoint's credentials in the
// bench's config.
const (
	serveUser     = "bench-local"
	servePassword = "bench-local-password"
)

func runServe(args []string) error {
	var o imapOptions
	var cpuProfile, memProfile, reuse string
	var lo loadOptions
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	o.addFlags(fs, 10000, 3, "number of messages in the corpus")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write the serving agent's CPU profile to `file` (it covers the whole scenario)")
	fs.StringVar(&memProfile, "memprofile", "", "write the serving agent's heap profile to `file` when it stops, and to file.1 at 3/4 of the clients phase")
	fs.IntVar(&lo.clients, "clients", 0, "after the mbsync runs, serve N concurrent IMAP clients (see serveload.go); 0: no clients phase")
	fs.DurationVar(&lo.time, "client-time", 3*time.Minute, "how long the clients phase lasts")
	fs.StringVar(&reuse, "reuse", "", "reuse the work `directory` an earlier serve run kept (-keep) with the same -messages and -seed: Dovecot's Maildir stays as seeded, postfach's store is resynced; it is kept again")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs < 0 || (o.runs == 0 && lo.clients == 0) || lo.clients < 0 || lo.time <= 0 {
		return fmt.Errorf("-messages must be positive, -runs too unless -clients is (-runs 0: the clients phase alone), -client-time positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var ws *workspace
	var err error
	if reuse != "" {
		ws, err = reuseWorkspace(ctx, "serve", "imap", reuse, o.postfach, args)
	} else {
		ws, err = newWorkspace(ctx, "serve", "imap", o.dir, o.keep, o.postfach, args)
	}
	if err != nil {
		return err
	}
	defer ws.close()
	work, rep := ws.dir, ws.rep
	log := os.Stderr
	rep.Seed, rep.Runs = o.seed, o.runs
	srv, err := startDovecot(filepath.Join(work, "dovecot"), "")
	if err != nil {
		return err
	}
	defer srv.Stop()
	t0 := time.Now()
	if rep.Corpus, err = seedOnce(srv, work, reuse != "", o); err != nil {
		return err
	}
	if err := srv.warm(); err != nil {
		return fmt.Errorf("warming Dovecot: %w", err)
	}
	want, err := verifyServer(srv, corpusMirror(o.seed, o.messages, corpus.Options{}), false)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: Dovecot holds the %d messages (seeded or reused, warm, verified) after %s\n", rep.Corpus.Messages, time.Since(t0).Round(time.Millisecond))

	var agentArgs []string
	if cpuProfile != "" {
		if cpuProfile, err = filepath.Abs(cpuProfile); err != nil {
			return err
		}
		agentArgs = []string{"--cpuprofile", cpuProfile}
	}
	if memProfile != "" {
		if memProfile, err = filepath.Abs(memProfile); err != nil {
			return err
		}
		agentArgs = append(agentArgs, "--memprofile", memProfile)
	}
	agent, addr, err := startServing(ctx, ws, srv, want, filepath.Join(work, "postfach"), agentArgs...)
	if err != nil {
		return err
	}
	defer agent.Kill()
	rep.Server = fmt.Sprintf("postfach run's local IMAP endpoint on %s (plaintext, loopback), and Dovecot %s on %s:%d (plaintext, mail_fsync=never)",
		addr, srv.d.Version, srv.d.Host, srv.d.IMAPPort)

	mb, err := newMbsync(ctx)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	pport, _ := strconv.Atoi(port)
	viaPostfach := &servedPeer{mbsyncPeer: mb, name: "postfach", notes: "mbsync pulling from postfach's endpoint",
		up:  upstream{Host: host, Port: pport, User: serveUser, Password: servePassword},
		cpu: func() (time.Duration, error) { return procCPU(agent.PID()) }}
	viaDovecot := &servedPeer{mbsyncPeer: mb, name: "dovecot", notes: "mbsync pulling from Dovecot",
		up: srv.upstream(), cpu: srv.cpu}
	peers := []peer{viaPostfach, viaDovecot}
	ws.addPeers(peers)
	b := &bench{srv: srv, peers: peers, rep: rep, log: log, want: want, up: srv.upstream()}
	return ws.measure(o.json, func() error {
		for r := range o.runs {
			order, reps, err := b.replicas(r, o.runs, work)
			if err != nil {
				return err
			}
			for _, ph := range []struct {
				name string
				do   func(replica, context.Context) (sample, error)
			}{{"initial", replica.Initial}, {"resync", replica.Resync}} {
				if err := servePhase(ctx, b, r, ph.name, o.messages, order, reps, ph.do); err != nil {
					return err
				}
			}
		}
		hwm, err := procHWM(agent.PID())
		if err != nil {
			return err
		}
		if o.runs > 0 {
			rep.Peers[0].Notes += fmt.Sprintf("; the agent's peak RSS over the mbsync runs (sync, serving every run): %s", kib(hwm))
		}
		if lo.clients > 0 {
			fmt.Fprintf(log, "bench: %d clients for %s\n", lo.clients, lo.time)
			var midway *time.Timer
			if memProfile != "" {
				midway = time.AfterFunc(lo.time*3/4, func() { syscall.Kill(agent.PID(), syscall.SIGUSR1) })
			}
			if rep.Clients, err = runClients(ctx, addr, agent.PID(), lo, log); err != nil {
				return err
			}
			if midway != nil {
				midway.Stop()
			}
		}
		if cpuProfile != "" || memProfile != "" {
			// The profiles are written when the agent exits on SIGTERM.
			if _, err := agent.Stop(30 * time.Second); err != nil {
				return fmt.Errorf("stopping postfach run for its profiles: %w", err)
			}
			fmt.Fprintf(log, "bench: the agent's profiles: %s %s\n", cpuProfile, memProfile)
		}
		return nil
	})
}

// seeded names the file in a work directory that says what its Dovecot
// was seeded with.
const seeded = "seeded"

// seedOnce seeds Dovecot with the corpus, or with reuse checks that the
// work directory's Dovecot was seeded with the same corpus, and returns
// what the corpus is.
func seedOnce(srv *dovecotServer, work string, reuse bool, o imapOptions) (corpusInfo, error) {
	stamp := fmt.Sprintf("messages %d seed %d\n", o.messages, o.seed)
	if !reuse {
		info, err := srv.seed(o.seed, o.messages, corpus.Options{})
		if err != nil {
			return info, fmt.Errorf("seeding: %w", err)
		}
		return info, os.WriteFile(filepath.Join(work, seeded), []byte(stamp), 0o644)
	}
	if b, err := os.ReadFile(filepath.Join(work, seeded)); err != nil || string(b) != stamp {
		return corpusInfo{}, fmt.Errorf("-reuse %s: not a work directory seeded with -messages %d -seed %d", work, o.messages, o.seed)
	}
	info := corpusInfo{Folders: map[string]int{}}
	err := corpus.Each(o.seed, o.messages, corpus.Options{}, func(m corpus.Message) error {
		info.Messages++
		info.Bytes += int64(len(m.Raw))
		info.Folders[folderName(m.Folder)]++
		return nil
	})
	return info, err
}

// startServing makes postfach's store from Dovecot (postfach sync,
// verified against want), then starts postfach run on it with the local
// IMAP endpoint on a free loopback port, and returns the agent and the
// endpoint's address once it answers.
func startServing(ctx context.Context, ws *workspace, srv *dovecotServer, want mirror, dir string, agentArgs ...string) (*agenttest.Agent, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	rp, err := ws.pf.NewReplica(dir, srv.upstream())
	if err != nil {
		return nil, "", err
	}
	t0 := time.Now()
	if _, err := rp.Initial(ctx); err != nil {
		return nil, "", fmt.Errorf("postfach's store: %w", err)
	}
	if err := verifyPeer(ctx, srv, rp, want, want); err != nil {
		return nil, "", fmt.Errorf("postfach's store: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: postfach's store synced and verified in %s\n", time.Since(t0).Round(time.Millisecond))
	addr, err := freeLoopback()
	if err != nil {
		return nil, "", err
	}
	conf := rp.(*postfachReplica).conf
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, "", err
	}
	_, err = fmt.Fprintf(f, "\n[serve]\nimap = %s\ntls = \"none\"\nusername = %s\npassword = %s\n",
		tomlString(addr), tomlString(serveUser), tomlString(servePassword))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", err
	}
	a, err := agenttest.StartAgent(ws.pf.bin, conf, nil, agentArgs...)
	if err != nil {
		return nil, "", err
	}
	if _, err := a.WaitIdle(2 * time.Minute); err != nil {
		a.Kill()
		return nil, "", fmt.Errorf("postfach run: %w\n%s", err, tail(a.Log().String()))
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			a.Kill()
			return nil, "", fmt.Errorf("postfach run does not listen on %s: %v\n%s", addr, err, tail(a.Log().String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The agent indexes the new store's text for search once, in the
	// background; the measurement starts when that is done, as Dovecot's
	// indexes are warm too.
	t0 = time.Now()
	if err := waitQuiet(a.PID(), 2*time.Minute); err != nil {
		a.Kill()
		return nil, "", fmt.Errorf("postfach run: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: postfach run (pid %d) serves %s (quiet after %s)\n", a.PID(), addr, time.Since(t0).Round(time.Millisecond))
	return a, addr, nil
}

// waitQuiet waits until process pid uses less than 2% of a CPU over a
// second.
func waitQuiet(pid int, limit time.Duration) error {
	prev, err := procCPU(pid)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		cur, err := procCPU(pid)
		if err != nil {
			return err
		}
		if cur-prev < 20*time.Millisecond {
			return nil
		}
		prev = cur
	}
	return fmt.Errorf("still busy after %s", limit)
}

// servePhase is bench.phase with each peer's server CPU taken from the
// server it pulled from.
func servePhase(ctx context.Context, b *bench, r int, name string, work int, order []peer, reps map[string]replica,
	do func(replica, context.Context) (sample, error)) error {
	for _, p := range order {
		sp := p.(*servedPeer)
		rp := reps[p.Name()]
		if _, err := b.srv.settledCPU(); err != nil {
			return err
		}
		before, err := sp.cpu()
		if err != nil {
			return err
		}
		s, err := do(rp, ctx)
		if err != nil {
			return fmt.Errorf("run %d, %s, %s: %w", r+1, name, p.Name(), err)
		}
		if _, err := b.srv.settledCPU(); err != nil {
			return err
		}
		after, err := sp.cpu()
		if err != nil {
			return err
		}
		s.ServerCPU = after - before
		t0 := time.Now()
		if err := verifyPeer(ctx, b.srv, rp, b.want, b.want); err != nil {
			return fmt.Errorf("run %d, after %s, %s: %w", r+1, name, p.Name(), err)
		}
		b.rep.add(name, work, p.Name(), s)
		fmt.Fprintf(b.log, "bench:   %-8s %-9s %8.3f s  (mbsync user %.2f s, sys %.2f s, max RSS %s; server CPU %.2f s) verified in %s\n",
			name, p.Name(), s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB), s.ServerCPU.Seconds(),
			time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// freeLoopback returns a loopback address with a port free right now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// procCPU is a process's CPU time (user + system) from /proc.
func procCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) <= 12 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ
}

// procHWM is a process's peak RSS (VmHWM) in KiB.
func procHWM(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

// procStatus is the value of a KiB field of a process's
// /proc/PID/status (key with its colon).
func procStatus(pid int, key string) (int64, error) {
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, strings.TrimSuffix(key, ":"))
}
