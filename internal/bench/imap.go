package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/corpus"
)

// benchOptions are the flags every comparing scenario has.
type benchOptions struct {
	messages int
	seed     int64
	runs     int
	postfach string
	dir      string
	keep     bool
	json     bool
}

// imapOptions are the flags of the imap and serve scenarios.
type imapOptions struct {
	benchOptions
	changes     int   // resolved from changeShare
	changeShare share // -changes
	corpus      string
	opts        corpus.Options // of the corpus
}

// addFlags registers the shared flags, with the scenario's defaults for
// -messages and -runs and what -messages counts.
func (o *benchOptions) addFlags(fs *flag.FlagSet, messages, runs int, what string) {
	fs.IntVar(&o.messages, "messages", messages, what)
	fs.Int64Var(&o.seed, "seed", 1, "corpus seed")
	fs.IntVar(&o.runs, "runs", runs, "repetitions; the report shows the median")
	fs.StringVar(&o.postfach, "postfach", "", "postfach `binary` to test (default: build ./agent/cmd/postfach)")
	fs.StringVar(&o.dir, "dir", "", "create the work directory in `parent` (default $TMPDIR or /tmp); it must be searchable by Dovecot's users")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
}

func runIMAP(args []string) error {
	var o imapOptions
	fs := flag.NewFlagSet("imap", flag.ExitOnError)
	o.addFlags(fs, 10000, 3, "number of messages in the corpus")
	o.changeShare = share{pct: 1, of: true}
	fs.Var(&o.changeShare, "changes", "incremental phase: K flag changes and K new messages on the server, K as a number or a share of -messages (0: skip the phase)")
	addCorpusFlag(fs, &o.corpus)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs <= 0 {
		return fmt.Errorf("-messages and -runs must be positive")
	}
	o.changes = o.changeShare.count(o.messages)
	var err error
	if o.opts, err = corpusOptions(o.corpus, nil); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ws, err := newWorkspace(ctx, "imap", "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return err
	}
	defer ws.close()
	work, rep, pf := ws.dir, ws.rep, ws.pf
	log := os.Stderr
	rep.Seed, rep.Runs, rep.Changes, rep.CorpusKind = o.seed, o.runs, o.changes, corpusDescription(o.opts)
	mb, err := newMbsync(ctx)
	if err != nil {
		return err
	}
	peers := []peer{pf, mb}
	// Dovecot's copy, and one per peer and run (a run's stores stay).
	if err := checkDisk(work, o.seed, o.messages, o.opts, 1+len(peers)*o.runs, "Dovecot's and one per tool and run"); err != nil {
		return err
	}

	srv, err := startDovecot(filepath.Join(work, "dovecot"), "")
	if err != nil {
		return err
	}
	defer srv.Stop()
	rep.Server = fmt.Sprintf("Dovecot %s on %s:%d (plaintext, mail_fsync=never)", srv.d.Version, srv.d.Host, srv.d.IMAPPort)

	t0 := time.Now()
	var base mirror
	rep.Corpus, base, err = seedAll(ctx, []*dovecotServer{srv}, o.seed, o.messages, o.opts)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: seeded %d messages (%s) in %s\n", rep.Corpus.Messages, mib(rep.Corpus.Bytes), time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := srv.warm(); err != nil {
		return fmt.Errorf("warming Dovecot: %w", err)
	}
	// The server must hold the corpus, message by message.
	want, err := verifyServer(srv, base, false)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: Dovecot indexed and warm in %s, holds the corpus: %s\n", time.Since(t0).Round(time.Millisecond), want.inventory())

	b := &bench{srv: srv, peers: peers, rep: rep, log: log, want: want, up: srv.upstream()}
	ws.addPeers(peers)
	return ws.measure(o.json, func() error {
		for r := range o.runs {
			if err := b.run(ctx, r, work, o); err != nil {
				return err
			}
		}
		return nil
	})
}

// bench runs the phases of a comparison.
type bench struct {
	srv   *dovecotServer
	peers []peer
	rep   *report
	log   io.Writer
	want  mirror   // the server's content between runs, as read (with UIDs)
	up    upstream // the account the peers mirror
}

// run is one repetition: fresh replicas, every phase for every peer. The
// peer that goes first rotates with r.
func (b *bench) run(ctx context.Context, r int, work string, o imapOptions) error {
	order, reps, err := b.replicas(r, o.runs, work)
	if err != nil {
		return err
	}
	if err := b.phase(ctx, r, "initial", o.messages, order, reps, replica.Initial, b.want, b.want); err != nil {
		return err
	}
	if err := b.phase(ctx, r, "resync", o.messages, order, reps, replica.Resync, b.want, b.want); err != nil {
		return err
	}
	if o.changes > 0 {
		ch, err := b.srv.change(o.seed, o.messages, o.changes, o.opts)
		if err != nil {
			return fmt.Errorf("changing the server: %w", err)
		}
		changed, err := ch.expect(b.want)
		if err != nil {
			return fmt.Errorf("changing the server: %w", err)
		}
		if changed, err = verifyServer(b.srv, changed, false); err != nil {
			return fmt.Errorf("after changing the server: %w", err)
		}
		if err := b.phase(ctx, r, "incremental", 2*o.changes, order, reps, replica.Resync, changed, changed); err != nil {
			return err
		}
		if err := b.srv.undo(ch); err != nil {
			return fmt.Errorf("undoing the changes: %w", err)
		}
		if _, err := verifyServer(b.srv, b.want, false); err != nil {
			return fmt.Errorf("after undoing the changes: %w", err)
		}
	}
	// The run's stores stay until the end: deleting thousands of files
	// makes the next runs' file creation slower (ext4 without a journal
	// skips recently freed inodes, scanning the inode table for each new
	// file), which would bill the deletion to whichever peer runs next.
	return nil
}

// replicas makes run r's fresh replicas, one per peer, in the run's order:
// the peer that goes first rotates with r.
func (b *bench) replicas(r, runs int, work string) ([]peer, map[string]replica, error) {
	order := append(append([]peer(nil), b.peers[r%len(b.peers):]...), b.peers[:r%len(b.peers)]...)
	runDir := filepath.Join(work, fmt.Sprintf("run%d", r+1))
	if err := os.RemoveAll(runDir); err != nil { // a reused work directory's (serve -reuse)
		return nil, nil, err
	}
	reps := map[string]replica{}
	for _, p := range order {
		dir := filepath.Join(runDir, p.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		rp, err := p.NewReplica(dir, b.up)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.Name(), err)
		}
		reps[p.Name()] = rp
		for i := range b.rep.Peers {
			if b.rep.Peers[i].Name == p.Name() && b.rep.Peers[i].Command == "" {
				b.rep.Peers[i].Command = rp.Command()
			}
		}
	}
	names := make([]string, len(order))
	for i, p := range order {
		names[i] = p.Name()
	}
	fmt.Fprintf(b.log, "bench: run %d/%d, order %s\n", r+1, runs, strings.Join(names, ", "))
	return order, reps, nil
}

// phase runs one phase for every peer in order and measures it. After each
// peer's sync, outside the measurement, it verifies the server account
// against server and the peer's Maildir against local (see verify.go): a
// difference fails the bench.
func (b *bench) phase(ctx context.Context, r int, name string, work int, order []peer, reps map[string]replica,
	do func(replica, context.Context) (sample, error), server, local mirror) error {
	for _, p := range order {
		rp := reps[p.Name()]
		// Settled: the previous verification's session has ended.
		before, err := b.srv.settledCPU()
		if err != nil {
			return err
		}
		s, err := do(rp, ctx)
		if err != nil {
			return fmt.Errorf("run %d, %s, %s: %w", r+1, name, p.Name(), err)
		}
		after, err := b.srv.settledCPU()
		if err != nil {
			return err
		}
		s.ServerCPU = after - before
		t0 := time.Now()
		if err := verifyPeer(ctx, b.srv, rp, server, local); err != nil {
			return fmt.Errorf("run %d, after %s, %s: %w", r+1, name, p.Name(), err)
		}
		b.rep.add(name, work, p.Name(), s)
		fmt.Fprintf(b.log, "bench:   %-11s %-9s %8.3f s  (user %.2f s, sys %.2f s, max RSS %s, Dovecot CPU %.2f s) verified %d messages in %s\n",
			name, p.Name(), s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB), s.ServerCPU.Seconds(),
			local.inventory().total().Messages, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// verifyPeer checks, after a sync of rp, that the server account holds
// server and rp's Maildir holds local, message by message, and that the
// replica's own report (checker) agrees.
func verifyPeer(ctx context.Context, srv *dovecotServer, rp replica, server, local mirror) error {
	if _, err := verifyServer(srv, server, false); err != nil {
		return err
	}
	if _, err := verifyReplica(ctx, rp, local, true); err != nil {
		return err
	}
	if c, ok := rp.(checker); ok {
		return c.Check(ctx, local.inventory())
	}
	return nil
}

// settledCPU waits until Dovecot has finished the work a client left it
// (its imap processes log out and exit) and returns its CPU time.
func (s *dovecotServer) settledCPU() (time.Duration, error) {
	prev, err := s.cpu()
	if err != nil {
		return 0, err
	}
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		cur, err := s.cpu()
		if err != nil {
			return 0, err
		}
		if cur == prev {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}
