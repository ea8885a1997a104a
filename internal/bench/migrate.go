package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/corpus"
)

// The migrate scenario: copying one IMAP account into another, empty IMAP
// account on the same Dovecot. postfach migrate (the source synced into
// its store read-only, then APPENDed to the destination and verified)
// against mbsync with two IMAP stores (Far the source, Near the
// destination; Sync Pull, Create Near, CopyArrivalDate yes). Each peer
// copies into its own empty destination account, a new one per run, so
// that no run finds another's copies. The phases:
//
//   - initial: the copy of every message into the empty destination;
//   - rerun: the same command again, with nothing to copy.
//
// With -pop3 (the default), a third phase for postfach alone: postfach
// migrate from a POP3 account (keep) whose INBOX holds every message of
// the corpus (the source's files, hard linked, without flags) into another
// empty account's INBOX.
//
// After every timed process the source account must still hold the
// corpus, and the peer's destination account exactly the source's
// messages (by Message-ID, per folder, byte for byte, each exactly once)
// with their flags; with their keywords for postfach (mbsync does not sync
// keywords: its destination must hold none), without either from POP3
// (which carries none). postfach must also say how many it copied (every
// message, then none) and that it verified them all.

// migrateOptions are the flags of the migrate scenario.
type migrateOptions struct {
	benchOptions
	corpus string
	opts   corpus.Options
	pop3   bool
}

// migratePOP3User is the Dovecot user whose INBOX holds every corpus
// message, for postfach's POP3 source.
const migratePOP3User = "source-pop3"

func runMigrate(args []string) error {
	var o migrateOptions
	fs := flag.NewFlagSet("migrate", flag.ExitOnError)
	o.addFlags(fs, 10000, 3, "number of messages in the corpus (the source account)")
	addCorpusFlag(fs, &o.corpus)
	fs.BoolVar(&o.pop3, "pop3", true, "also time postfach migrate from a POP3 account holding every message in INBOX (postfach alone)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs <= 0 {
		return fmt.Errorf("-messages and -runs must be positive")
	}
	var err error
	if o.opts, err = corpusOptions(o.corpus, nil); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := migrateReport(ctx, o, args)
	if err != nil {
		return err
	}
	if o.json {
		return rep.writeJSON(os.Stdout)
	}
	rep.writeText(os.Stdout)
	return nil
}

// migrateReport runs the migrate scenario with checked options and
// returns its finished report; args are the invocation, for the report.
func migrateReport(ctx context.Context, o migrateOptions, args []string) (*report, error) {
	ws, err := newWorkspace(ctx, "migrate", "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return nil, err
	}
	defer ws.close()
	work, rep, pf := ws.dir, ws.rep, ws.pf
	pf.migrate = true
	log := os.Stderr
	rep.Seed, rep.Runs, rep.CorpusKind = o.seed, o.runs, corpusDescription(o.opts)
	mb, err := newMbsync(ctx)
	if err != nil {
		return nil, err
	}
	mb.migrate = true
	peers := []migrator{pf, mb}
	// The source's copy (the POP3 source's files are links to it), and
	// per run: postfach's store and destination, mbsync's destination,
	// and with -pop3 postfach's second store and destination.
	perRun, what := 3, "the source's, and per run postfach's store and destination and mbsync's destination"
	if o.pop3 {
		perRun, what = 5, what+", postfach's store and destination from POP3"
	}
	if err := checkDisk(work, o.seed, o.messages, o.opts, 1+perRun*o.runs, what); err != nil {
		return nil, err
	}

	// One source user, and one destination user per peer and run (and
	// per run for the POP3 source).
	names := []string{"source"}
	if o.pop3 {
		names = append(names, migratePOP3User)
	}
	for r := range o.runs {
		for _, p := range peers {
			names = append(names, migrateDest(p.Name(), r))
		}
		if o.pop3 {
			names = append(names, migrateDest("postfach-pop3", r))
		}
	}
	srvs, err := startDovecotUsers(filepath.Join(work, "dovecot"), pop3DovecotConf, names...)
	if err != nil {
		return nil, err
	}
	defer srvs[0].Stop()
	users := map[string]*dovecotServer{}
	for _, s := range srvs {
		users[s.user] = s
	}
	src, d := srvs[0], srvs[0].d
	rep.Server = fmt.Sprintf("Dovecot %s on %s:%d (plaintext, mail_fsync=never), IMAP and POP3 (port %d, pop3_no_flag_updates=yes); "+
		"source account %q, one empty destination account per tool and run", d.Version, d.Host, d.IMAPPort, d.POP3Port, src.user)

	t0 := time.Now()
	var base mirror
	rep.Corpus, base, err = seedAll(ctx, []*dovecotServer{src}, o.seed, o.messages, o.opts)
	if err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: seeded %d messages (%s) in %s\n", rep.Corpus.Messages, mib(rep.Corpus.Bytes), time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := src.warm(); err != nil {
		return nil, fmt.Errorf("warming Dovecot: %w", err)
	}
	want, err := verifyServer(src, base, false)
	if err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: Dovecot indexed and warm in %s, the source holds the corpus: %s\n", time.Since(t0).Round(time.Millisecond), want.inventory())
	b := &migrateBench{rep: rep, log: log, src: src, users: users, peers: peers, want: want}
	if o.pop3 {
		if b.pop3Want, err = seedPOP3(ctx, src, users[migratePOP3User], want, o.messages); err != nil {
			return nil, err
		}
		b.pop3Src = users[migratePOP3User].upstream()
		b.pop3Src.Port = d.POP3Port
	}

	wsPeers := make([]peer, len(peers))
	for i, p := range peers {
		wsPeers[i] = p
	}
	ws.addPeers(wsPeers)
	err = ws.measureOnly(func() error {
		for r := range o.runs {
			if err := b.run(ctx, r, work, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// migrateDest is the destination user of a peer in run r.
func migrateDest(peerName string, r int) string {
	return fmt.Sprintf("%s-dest%d", peerName, r+1)
}

// seedPOP3 gives the POP3 source user every message of the source account
// in its INBOX: the source's files hard linked into its cur/, without
// flags (their names' info dropped). It checks over POP3 that the user
// holds them and returns what a copy of them must hold: every message in
// INBOX, without flags or keywords.
func seedPOP3(ctx context.Context, src, pop *dovecotServer, want mirror, messages int) (mirror, error) {
	t0 := time.Now()
	n, err := linkFlat(src.d.MailDir(src.user), pop.d.MailDir(pop.user))
	if err != nil {
		return nil, fmt.Errorf("seeding %s: %w", pop.user, err)
	}
	if n != messages {
		return nil, fmt.Errorf("seeding %s: linked %d files, want %d", pop.user, n, messages)
	}
	inbox := map[string]mirrorMsg{}
	for f, msgs := range want.withoutFlags() {
		for id, m := range msgs {
			if _, ok := inbox[id]; ok {
				return nil, fmt.Errorf("seeding %s: Message-ID <%s> twice in the corpus (%s)", pop.user, id, f)
			}
			m.UID = 0
			inbox[id] = m
		}
	}
	got, size, err := pop.warmPOP3(ctx)
	if err != nil {
		return nil, fmt.Errorf("warming Dovecot's POP3: %w", err)
	}
	if got != messages {
		return nil, fmt.Errorf("seeding %s: Dovecot's POP3 lists %d messages, want %d", pop.user, got, messages)
	}
	fmt.Fprintf(os.Stderr, "bench: POP3 source %s: %d messages (%s over POP3), linked and warm in %s\n",
		pop.user, got, mib(size), time.Since(t0).Round(time.Millisecond))
	return mirror{"INBOX": inbox}, nil
}

// linkFlat hard links every message file of the Maildir++ tree src (its
// INBOX and every folder's cur/ and new/) into dst's cur/, as a message
// without flags (the name up to its info, then ":2,"), and returns how
// many it linked. Directories get src's mode and owner.
func linkFlat(src, dst string) (int, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return 0, err
	}
	for _, d := range []string{dst, filepath.Join(dst, "cur"), filepath.Join(dst, "new"), filepath.Join(dst, "tmp")} {
		if err := os.Mkdir(d, fi.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			if err := os.Lchown(d, int(st.Uid), int(st.Gid)); err != nil {
				return 0, err
			}
		}
	}
	n := 0
	err = filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if sub := filepath.Base(filepath.Dir(path)); sub != "cur" && sub != "new" {
			return nil
		}
		name, _, _ := strings.Cut(e.Name(), ":2,")
		if err := os.Link(path, filepath.Join(dst, "cur", name+":2,")); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// A migrator is a peer that can copy one IMAP account into another.
type migrator interface {
	peer
	// NewMigration prepares the copy of the account src into the empty
	// account dst, with its state (if any) in dir, an empty directory.
	NewMigration(dir string, src, dst upstream) (migration, error)
}

// A migration is one peer's copy of the source into its destination
// account. Initial and Rerun run the peer once, as a child process, and
// measure it.
type migration interface {
	Initial(ctx context.Context) (sample, error)
	Rerun(ctx context.Context) (sample, error)
	// Command is the command line of one run, as a shell would take it.
	Command() string
	// Keywords says whether the tool copies keywords.
	Keywords() bool
}

// A copyReporter is a migration that says how many messages its last run
// copied.
type copyReporter interface {
	Copied() (n int, ok bool)
}

// migrateBench runs the migrate scenario.
type migrateBench struct {
	rep      *report
	log      io.Writer
	src      *dovecotServer            // the source account; also for Dovecot's CPU time
	users    map[string]*dovecotServer // every user, by name
	peers    []migrator
	want     mirror   // the source, as read after seeding
	pop3Src  upstream // with -pop3: the POP3 source
	pop3Want mirror   // with -pop3: what a copy of it holds
}

// The phases' names in the report.
const (
	phaseMigrateInitial = "initial"
	phaseMigrateRerun   = "rerun"
	phaseMigratePOP3    = "initial from POP3"
)

// run is one repetition: for every peer a fresh destination account, the
// initial copy of every peer, then every peer's rerun; with -pop3 then
// postfach's copy from the POP3 source. The peer that goes first rotates
// with r.
func (b *migrateBench) run(ctx context.Context, r int, work string, o migrateOptions) error {
	order := append(append([]migrator(nil), b.peers[r%len(b.peers):]...), b.peers[:r%len(b.peers)]...)
	runDir := filepath.Join(work, fmt.Sprintf("run%d", r+1))
	type job struct {
		p    migrator
		dst  *dovecotServer
		m    migration
		want mirror
	}
	var jobs []*job
	for _, p := range order {
		dir := filepath.Join(runDir, p.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		dst := b.users[migrateDest(p.Name(), r)]
		m, err := p.NewMigration(dir, b.src.upstream(), dst.upstream())
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name(), err)
		}
		want := b.want
		if !m.Keywords() {
			want = b.want.withoutKeywords()
		}
		jobs = append(jobs, &job{p: p, dst: dst, m: m, want: want})
		b.command(p.Name(), m)
	}
	var names []string
	for _, p := range order {
		names = append(names, p.Name())
	}
	fmt.Fprintf(b.log, "bench: run %d/%d, order %s\n", r+1, o.runs, strings.Join(names, ", "))
	total := b.want.inventory().total().Messages
	for _, ph := range []struct {
		name   string
		do     func(migration, context.Context) (sample, error)
		copied int
	}{
		{phaseMigrateInitial, migration.Initial, total},
		{phaseMigrateRerun, migration.Rerun, 0},
	} {
		for _, j := range jobs {
			if err := b.timed(ctx, r, ph.name, total, j.p.Name(), j.m, ph.do, ph.copied, j.dst, j.want); err != nil {
				return err
			}
		}
	}
	if !o.pop3 {
		return nil
	}
	var pf *postfachPeer
	for _, p := range b.peers {
		if p, ok := p.(*postfachPeer); ok {
			pf = p
		}
	}
	dir := filepath.Join(runDir, "postfach-pop3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := b.users[migrateDest("postfach-pop3", r)]
	m, err := pf.newMigration(dir, "pop3", b.pop3Src, dst.upstream())
	if err != nil {
		return fmt.Errorf("postfach (POP3 source): %w", err)
	}
	if r == 0 {
		// postfach's second command, under its first in the report.
		b.rep.Peers[0].Command += "\n            (" + phaseMigratePOP3 + ") " + m.Command()
	}
	n := b.pop3Want.inventory().total().Messages
	return b.timed(ctx, r, phaseMigratePOP3, n, pf.Name(), m, migration.Initial, n, dst, b.pop3Want)
}

// command notes a peer's command line of the first run in the report.
func (b *migrateBench) command(name string, m migration) {
	for i := range b.rep.Peers {
		if b.rep.Peers[i].Name == name && b.rep.Peers[i].Command == "" {
			b.rep.Peers[i].Command = m.Command()
		}
	}
}

// timed runs one migration process, measures it, and verifies: the
// source account still holds the corpus, the destination account exactly
// dstWant, and a copyReporter copied copied messages.
func (b *migrateBench) timed(ctx context.Context, r int, phase string, work int, peerName string, m migration,
	do func(migration, context.Context) (sample, error), copied int, dst *dovecotServer, dstWant mirror) error {
	where := fmt.Sprintf("run %d, %s, %s", r+1, phase, peerName)
	// Settled: the previous verification's session has ended.
	before, err := b.src.settledCPU()
	if err != nil {
		return err
	}
	s, err := do(m, ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	after, err := b.src.settledCPU()
	if err != nil {
		return err
	}
	s.ServerCPU = after - before
	if cr, ok := m.(copyReporter); ok {
		n, ok := cr.Copied()
		if !ok {
			return fmt.Errorf("%s: %s: cannot tell from its output how many messages it copied and whether it verified them", where, m.Command())
		}
		if n != copied {
			return fmt.Errorf("%s: copied %d messages, want %d", where, n, copied)
		}
	}
	t0 := time.Now()
	if _, err := verifyServer(b.src, b.want, false); err != nil {
		return fmt.Errorf("%s: the source changed: %w", where, err)
	}
	if _, err := verifyServer(dst, dstWant, addsTUID(m)); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	b.rep.add(phase, work, peerName, s)
	fmt.Fprintf(b.log, "bench:   %-17s %-9s %8.3f s  (user %.2f s, sys %.2f s, max RSS %s, Dovecot CPU %.2f s) verified source and destination, %d messages, in %s\n",
		phase, peerName, s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB), s.ServerCPU.Seconds(),
		dstWant.inventory().total().Messages, time.Since(t0).Round(time.Millisecond))
	return nil
}
