package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/corpus"
)

// The twoway scenario: postfach (direction both, its default) against
// mbsync (Sync All) on one Dovecot with two users holding identical
// mailboxes, one per tool, so that the changes made for one tool never
// reach the other. After one initial sync of each, every run makes the
// same changes for each tool, on its server account and in its Maildir,
// and times one incremental sync and two no-change resyncs of each (the
// second shows what a tool saves by what it learnt in the first: postfach
// vouches for unchanged folders by their listing stamps only after a
// no-change run), then the server floor of a no-change run (floor.go).
// After every sync both the server account and the Maildir must hold
// exactly the expected messages (by Message-ID, per folder), byte for
// byte, with exactly the expected flags, and keywords where the tool keeps
// them (see verify.go). The changes (which messages, how they are made) are in
// twoway_plan.go.

// twowayOptions are the flags of the twoway scenario.
type twowayOptions struct {
	messages    int
	seed        int64
	runs        int
	changeShare share
	changes     int // resolved from changeShare: server flag changes, and as many new messages
	local       int // local changes: half (rounded up) flag changes, the rest new files
	corpus      string
	opts        corpus.Options
	postfach    string
	dir         string
	keep        bool
	json        bool
	conns       int
	rtt         time.Duration
}

func runTwoway(args []string) error {
	var o twowayOptions
	fs := flag.NewFlagSet("twoway", flag.ExitOnError)
	fs.IntVar(&o.messages, "messages", 10000, "number of messages in the corpus (per tool's account)")
	o.addFlags(fs)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := twoway(ctx, o, "twoway", args)
	if err != nil {
		return err
	}
	if o.json {
		return rep.writeJSON(os.Stdout)
	}
	rep.writeText(os.Stdout)
	return nil
}

// addFlags registers the twoway flags other than -messages.
func (o *twowayOptions) addFlags(fs *flag.FlagSet) {
	fs.Int64Var(&o.seed, "seed", 1, "corpus seed")
	fs.IntVar(&o.runs, "runs", 3, "repetitions of the incremental and resync phases; the report shows the median")
	o.changeShare = share{pct: 1, of: true}
	fs.Var(&o.changeShare, "changes", "per run, on each tool's server account: K flag changes and K new messages, K as a number or a share of -messages")
	fs.IntVar(&o.local, "local-changes", 100, "per run, in each tool's Maildir: L changes, half (rounded up) flag changes, the rest new files")
	addCorpusFlag(fs, &o.corpus)
	fs.StringVar(&o.postfach, "postfach", "", "postfach `binary` to test (default: build ./agent/cmd/postfach)")
	fs.StringVar(&o.dir, "dir", "", "create the work directory in `parent` (default $TMPDIR or /tmp); it must be searchable by Dovecot's users")
	fs.IntVar(&o.conns, "connections", 0, "postfach's connections setting (default: postfach's default)")
	fs.DurationVar(&o.rtt, "rtt", 0, "after seeding, every client reaches Dovecot through a proxy in the bench that adds this round-trip `time` (e.g. 10ms), as a network to a provider would; 0: none")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
}

// check validates the flags and resolves -changes and -corpus.
func (o *twowayOptions) check() error {
	if o.messages <= 0 || o.runs <= 0 || o.local < 0 {
		return fmt.Errorf("-messages and -runs must be positive, -local-changes not negative")
	}
	if o.rtt < 0 || o.rtt > 2*time.Second {
		return fmt.Errorf("-rtt must be between 0 and 2s")
	}
	o.changes = o.changeShare.count(o.messages)
	if o.changes+o.local == 0 {
		return fmt.Errorf("-changes and -local-changes are both 0: no incremental phase")
	}
	var err error
	o.opts, err = corpusOptions(o.corpus, nil)
	return err
}

// twoway runs the twoway scenario with checked options and returns its
// finished report; scenario and args are the invocation, for the report.
func twoway(ctx context.Context, o twowayOptions, scenario string, args []string) (*report, error) {
	ws, err := newWorkspace(ctx, scenario, "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return nil, err
	}
	defer ws.close()
	work, rep, pf := ws.dir, ws.rep, ws.pf
	pf.conns = o.conns
	log := os.Stderr
	rep.Seed, rep.Runs, rep.Changes, rep.LocalChanges = o.seed, o.runs, o.changes, o.local
	rep.CorpusKind = corpusDescription(o.opts)
	mb, err := newMbsync(ctx)
	if err != nil {
		return nil, err
	}
	mb.twoway = true
	peers := []peer{pf, mb}
	// Dovecot's copy (its users share the files) and each tool's.
	if err := checkDisk(work, o.seed, o.messages, o.opts, 1+len(peers), "Dovecot's, shared by its users, and one per tool"); err != nil {
		return nil, err
	}

	// One Dovecot user per peer, named after it.
	names := make([]string, len(peers))
	for i, p := range peers {
		names[i] = p.Name()
	}
	srvs, err := startDovecotUsers(filepath.Join(work, "dovecot"), "", names...)
	if err != nil {
		return nil, err
	}
	defer srvs[0].Stop()
	d := srvs[0].d
	rep.Server = fmt.Sprintf("Dovecot %s on %s:%d (plaintext, mail_fsync=never), one user per tool (%s) with identical mailboxes",
		d.Version, d.Host, d.IMAPPort, strings.Join(names, ", "))

	t0 := time.Now()
	var base mirror
	if rep.Corpus, base, err = seedAll(ctx, srvs, o.seed, o.messages, o.opts); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: seeded %d messages (%s) for each of %d users in %s\n",
		rep.Corpus.Messages, mib(rep.Corpus.Bytes), len(srvs), time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	// Every account must hold the corpus, message by message.
	for _, srv := range srvs {
		if err := srv.warm(); err != nil {
			return nil, fmt.Errorf("warming Dovecot for %s: %w", srv.user, err)
		}
		if _, err := verifyServer(srv, base, false); err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
	}
	fmt.Fprintf(log, "bench: Dovecot indexed and warm in %s, every account holds the corpus: %s\n", time.Since(t0).Round(time.Millisecond), base.inventory())

	if o.rtt > 0 {
		lp, err := startLatencyProxy(net.JoinHostPort(d.Host, strconv.Itoa(d.IMAPPort)), o.rtt)
		if err != nil {
			return nil, err
		}
		defer lp.close()
		for _, srv := range srvs {
			srv.via = lp
		}
		host, port := lp.addr()
		rep.Server += fmt.Sprintf("; every client through a proxy at %s:%d that adds a round-trip time of %s", host, port, o.rtt)
	}
	ws.addPeers(peers)
	rep.Floor = &serverFloor{}
	tw := &twowayBench{rep: rep, log: log, srv: srvs[0], want: base, seeded: rep.Corpus.Folders}
	for i, p := range peers {
		dir := filepath.Join(work, "twoway", p.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		rp, err := p.NewReplica(dir, srvs[i].upstream())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name(), err)
		}
		rep.Peers[i].Command = rp.Command()
		tw.sides = append(tw.sides, &side{peer: p, srv: srvs[i], rep: rp})
	}
	err = ws.measureOnly(func() error {
		if err := tw.initial(ctx, o.messages); err != nil {
			return err
		}
		next := o.messages // the next corpus message to add
		for r := range o.runs {
			if err := tw.run(ctx, r, o, next); err != nil {
				return err
			}
			next += o.size().serverNew + o.size().localNew
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// twowayBench runs the twoway scenario.
type twowayBench struct {
	rep    *report
	log    io.Writer
	srv    *dovecotServer // any of the users: for Dovecot's CPU time
	sides  []*side        // in the order of rep.Peers
	want   mirror         // what every account and Maildir holds between runs (no UIDs, no paths)
	seeded map[string]int // messages seeded per folder
}

// side is one peer with its own server account and replica.
type side struct {
	peer peer
	srv  *dovecotServer
	rep  replica
	// server and local are the account and the Maildir as last verified
	// (with UIDs, with paths); dirs maps the Maildir's folders to their
	// directories.
	server, local mirror
	dirs          map[string]string
}

// The phases' names in the report.
const (
	phaseInitialOnce = "initial (once)"
	phaseIncremental = "incremental"
	phaseResync      = "resync"
	phaseResyncAgain = "resync again"
)

// size is what a run changes.
func (o twowayOptions) size() planSize {
	return planSize{serverSeen: o.changes, serverNew: o.changes, localSeen: (o.local + 1) / 2, localNew: o.local / 2}
}

// initial runs the first sync of every peer once, into its empty Maildir.
func (t *twowayBench) initial(ctx context.Context, messages int) error {
	fmt.Fprintln(t.log, "bench: initial sync of each peer (once)")
	for _, sd := range t.sides {
		if err := t.timed(ctx, -1, phaseInitialOnce, messages, sd, replica.Initial, t.want); err != nil {
			return err
		}
	}
	return nil
}

// run is one repetition: the same changes for every peer (on its account
// and in its Maildir), then every peer's incremental sync, then every
// peer's no-change resync, then every peer's second no-change resync. The peer that goes first rotates with r.
func (t *twowayBench) run(ctx context.Context, r int, o twowayOptions, next int) error {
	order := append(append([]*side(nil), t.sides[r%len(t.sides):]...), t.sides[:r%len(t.sides)]...)
	var names []string
	for _, sd := range order {
		names = append(names, sd.peer.Name())
	}
	fmt.Fprintf(t.log, "bench: run %d/%d, order %s\n", r+1, o.runs, strings.Join(names, ", "))

	// The plan picks messages by their UIDs on the first peer's account
	// (verified to hold exactly t.want, like every other account).
	plan, err := makePlan(t.sides[0].server, t.seeded, o.size(), r, o.seed, next, o.opts)
	if err != nil {
		return err
	}
	serverSide := plan.expect(t.want, true, false)
	localSide := plan.expect(t.want, false, true)
	want := plan.expect(t.want, true, true)
	for _, sd := range t.sides {
		if err := sd.srv.applyChanges(sd.server, plan); err != nil {
			return fmt.Errorf("run %d, changing %s's account: %w", r+1, sd.peer.Name(), err)
		}
		if err := applyLocal(sd.local, sd.dirs, plan); err != nil {
			return fmt.Errorf("run %d, changing %s's Maildir: %w", r+1, sd.peer.Name(), err)
		}
		// The changes took, and only they. (Keywords: the tool's index
		// does not know the new files yet.)
		if _, err := verifyServer(sd.srv, serverSide, addsTUID(sd.rep)); err != nil {
			return fmt.Errorf("run %d, after changing %s's account: %w", r+1, sd.peer.Name(), err)
		}
		if _, err := verifyReplica(ctx, sd.rep, localSide, false); err != nil {
			return fmt.Errorf("run %d, after changing %s's Maildir: %w", r+1, sd.peer.Name(), err)
		}
	}
	fmt.Fprintf(t.log, "bench:   changed each account (%d \\Seen toggled, %d appended) and each Maildir (%d S toggled by renames, %d new files in new/)\n",
		plan.count(plan.serverSeen), len(plan.serverNew), plan.count(plan.localSeen), len(plan.localNew))
	for _, sd := range order {
		if err := t.timed(ctx, r, phaseIncremental, o.size().total(), sd, replica.Resync, want); err != nil {
			return err
		}
	}
	for _, phase := range []string{phaseResync, phaseResyncAgain} {
		for _, sd := range order {
			if err := t.timed(ctx, r, phase, want.inventory().total().Messages, sd, replica.Resync, want); err != nil {
				return err
			}
		}
	}
	// The server floor of those no-change runs, on postfach's account.
	pf := t.sides[0]
	if err := t.rep.Floor.measure(pf.srv); err != nil {
		return fmt.Errorf("run %d: %w", r+1, err)
	}
	fl := t.rep.Floor
	fmt.Fprintf(t.log, "bench:   %-14s %-9s %8.1f ms (median of %d sessions: LOGIN, LIST-STATUS of %d folders, LOGOUT)\n",
		"server floor", pf.peer.Name(), float64(fl.Runs[len(fl.Runs)-1].Microseconds())/1000, floorSessions, fl.Folders)
	t.want = want
	return nil
}

// timed runs one sync of sd's peer, measures it, and verifies its account
// and its Maildir against want. r < 0 is the initial sync.
func (t *twowayBench) timed(ctx context.Context, r int, phase string, work int, sd *side,
	do func(replica, context.Context) (sample, error), want mirror) error {
	where := fmt.Sprintf("run %d, %s, %s", r+1, phase, sd.peer.Name())
	if r < 0 {
		where = fmt.Sprintf("%s, %s", phase, sd.peer.Name())
	}
	// Wait until the bench's own IMAP sessions have ended.
	before, err := t.srv.settledCPU()
	if err != nil {
		return err
	}
	s, err := do(sd.rep, ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	after, err := t.srv.settledCPU()
	if err != nil {
		return err
	}
	s.ServerCPU = after - before
	t0 := time.Now()
	if err := t.verify(ctx, sd, want); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	t.rep.add(phase, work, sd.peer.Name(), s)
	inv := want.inventory().total()
	fmt.Fprintf(t.log, "bench:   %-14s %-9s %8.3f s  (user %.2f s, sys %.2f s, max RSS %s, Dovecot CPU %.2f s) verified %d messages, %d seen, both sides in %s\n",
		phase, sd.peer.Name(), s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB), s.ServerCPU.Seconds(),
		inv.Messages, inv.Seen, time.Since(t0).Round(time.Millisecond))
	return nil
}

// verify checks sd's account and Maildir against want, message by message
// (see verify.go), and the tool's own count (checker). It records what it
// read in sd.
func (t *twowayBench) verify(ctx context.Context, sd *side, want mirror) error {
	srvState, err := verifyServer(sd.srv, want, addsTUID(sd.rep))
	if err != nil {
		return err
	}
	local, err := verifyReplica(ctx, sd.rep, want, true)
	if err != nil {
		return err
	}
	if c, ok := sd.rep.(checker); ok {
		if err := c.Check(ctx, want.inventory()); err != nil {
			return err
		}
	}
	sd.server, sd.local, sd.dirs = srvState, local.m, local.dirs
	return nil
}
