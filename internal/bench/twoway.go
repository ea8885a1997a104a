package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/mail"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// The twoway scenario: postfach (direction both, its default) against
// mbsync (Sync All) on one Dovecot with two users holding identical
// mailboxes, one per tool, so that the changes made for one tool never
// reach the other. After one initial sync of each, every run makes the
// same changes for each tool, on its server account and in its Maildir,
// and times one incremental sync and one no-change resync of each. After
// every sync both the server account and the Maildir must hold exactly the
// expected messages (by Message-ID, per folder) with exactly the expected
// flags.

// twowayOptions are the flags of the twoway scenario.
type twowayOptions struct {
	messages int
	seed     int64
	runs     int
	changes  int
	postfach string
	dir      string
	keep     bool
	json     bool
	conns    int
}

func runTwoway(args []string) error {
	var o twowayOptions
	fs := flag.NewFlagSet("twoway", flag.ExitOnError)
	fs.IntVar(&o.messages, "messages", 10000, "number of messages in the corpus (per tool's account)")
	fs.Int64Var(&o.seed, "seed", 1, "corpus seed")
	fs.IntVar(&o.runs, "runs", 3, "repetitions of the incremental and resync phases; the report shows the median")
	fs.IntVar(&o.changes, "changes", 100, "per run and side: K flag changes and K new messages on the server, and the same locally")
	fs.StringVar(&o.postfach, "postfach", "", "postfach `binary` to test (default: build ./agent/cmd/postfach)")
	fs.StringVar(&o.dir, "dir", "", "create the work directory in `parent` (default $TMPDIR or /tmp); it must be searchable by Dovecot's users")
	fs.IntVar(&o.conns, "connections", 0, "postfach's connections setting (default: postfach's default)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs <= 0 || o.changes <= 0 {
		return fmt.Errorf("-messages, -runs and -changes must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ws, err := newWorkspace(ctx, "twoway", "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return err
	}
	defer ws.close()
	work, rep, pf := ws.dir, ws.rep, ws.pf
	pf.conns = o.conns
	log := os.Stderr
	rep.Seed, rep.Runs, rep.Changes = o.seed, o.runs, o.changes
	mb, err := newMbsync(ctx)
	if err != nil {
		return err
	}
	mb.twoway = true
	peers := []peer{pf, mb}

	// One Dovecot user per peer, named after it.
	names := make([]string, len(peers))
	for i, p := range peers {
		names[i] = p.Name()
	}
	srvs, err := startDovecotUsers(filepath.Join(work, "dovecot"), "", names...)
	if err != nil {
		return err
	}
	defer srvs[0].Stop()
	d := srvs[0].d
	rep.Server = fmt.Sprintf("Dovecot %s on %s:%d (plaintext, mail_fsync=never), one user per tool (%s) with identical mailboxes",
		d.Version, d.Host, d.IMAPPort, strings.Join(names, ", "))

	t0 := time.Now()
	for i, srv := range srvs {
		info, err := srv.seed(o.seed, o.messages, corpus.Options{})
		if err != nil {
			return fmt.Errorf("seeding %s: %w", srv.user, err)
		}
		if i == 0 {
			rep.Corpus = info
		}
	}
	fmt.Fprintf(log, "bench: seeded %d messages (%s) for each of %d users in %s\n",
		rep.Corpus.Messages, mib(rep.Corpus.Bytes), len(srvs), time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	var base mirror
	for _, srv := range srvs {
		if err := srv.warm(); err != nil {
			return fmt.Errorf("warming Dovecot for %s: %w", srv.user, err)
		}
		m, err := srv.mirror()
		if err != nil {
			return err
		}
		if base == nil {
			base = m
		} else if err := diffMirror(base, m); err != nil {
			return fmt.Errorf("seeding: %s's account differs from %s's: %w", srv.user, srvs[0].user, err)
		}
	}
	inv := base.inventory()
	for name, n := range rep.Corpus.Folders {
		if inv[name].Messages != n {
			return fmt.Errorf("seeding: Dovecot holds %d messages in %s, want %d", inv[name].Messages, name, n)
		}
	}
	if got := inv.total().Messages; got != o.messages {
		return fmt.Errorf("seeding: Dovecot holds %d messages, want %d", got, o.messages)
	}
	fmt.Fprintf(log, "bench: Dovecot indexed and warm in %s: %s per user\n", time.Since(t0).Round(time.Millisecond), inv)

	ws.addPeers(peers)
	tw := &twowayBench{rep: rep, log: log, srv: srvs[0], want: base, seeded: rep.Corpus.Folders}
	for i, p := range peers {
		dir := filepath.Join(work, "twoway", p.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		rp, err := p.NewReplica(dir, srvs[i].upstream())
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name(), err)
		}
		rep.Peers[i].Command = rp.Command()
		tw.sides = append(tw.sides, &side{peer: p, srv: srvs[i], rep: rp})
	}
	return ws.measure(o.json, func() error {
		if err := tw.initial(ctx, o.messages); err != nil {
			return err
		}
		next := o.messages // the next corpus message to add
		for r := range o.runs {
			if err := tw.run(ctx, r, o, next); err != nil {
				return err
			}
			next += 2 * o.changes
		}
		return nil
	})
}

// twowayBench runs the twoway scenario.
type twowayBench struct {
	rep    *report
	log    io.Writer
	srv    *dovecotServer // any of the users: for Dovecot's CPU time
	sides  []*side        // in the order of rep.Peers
	want   mirror         // what every account and Maildir holds between runs
	seeded map[string]int // messages seeded per folder
}

// side is one peer with its own server account and replica.
type side struct {
	peer peer
	srv  *dovecotServer
	rep  replica
	// dirs maps the replica's folder directories (relative to its Maildir
	// root) to server folder names, learned after the initial sync.
	dirs map[string]string
	// server and local are the account and the Maildir as last verified;
	// local is keyed by server folder name.
	server, local mirror
}

// The phases' names in the report.
const (
	phaseInitialOnce = "initial (once)"
	phaseIncremental = "incremental"
	phaseResync      = "resync"
)

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
// peer's no-change resync. The peer that goes first rotates with r.
func (t *twowayBench) run(ctx context.Context, r int, o twowayOptions, next int) error {
	order := append(append([]*side(nil), t.sides[r%len(t.sides):]...), t.sides[:r%len(t.sides)]...)
	var names []string
	for _, sd := range order {
		names = append(names, sd.peer.Name())
	}
	fmt.Fprintf(t.log, "bench: run %d/%d, order %s\n", r+1, o.runs, strings.Join(names, ", "))

	// The plan picks messages by their UIDs on the first peer's account
	// (verified to hold exactly t.want, like every other account).
	plan, err := makePlan(t.sides[0].server, t.seeded, o.changes, r, o.seed, next)
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
		if err := applyLocal(sd.local, sd.rep.Maildir(), sd.dirs, plan); err != nil {
			return fmt.Errorf("run %d, changing %s's Maildir: %w", r+1, sd.peer.Name(), err)
		}
		// The changes took, and only they.
		got, err := sd.srv.mirror()
		if err != nil {
			return err
		}
		if err := diffMirror(serverSide, got); err != nil {
			return fmt.Errorf("run %d, after changing %s's account: %w", r+1, sd.peer.Name(), err)
		}
		local, err := scanMirror(sd.rep.Maildir())
		if err != nil {
			return err
		}
		if err := diffMirror(localSide, local.translate(sd.dirs)); err != nil {
			return fmt.Errorf("run %d, after changing %s's Maildir: %w", r+1, sd.peer.Name(), err)
		}
	}
	fmt.Fprintf(t.log, "bench:   changed each account (%d \\Seen toggled, %d appended) and each Maildir (%d S toggled by renames, %d new files in new/)\n",
		plan.count(plan.serverSeen), len(plan.serverNew), plan.count(plan.localSeen), len(plan.localNew))
	for _, sd := range order {
		if err := t.timed(ctx, r, phaseIncremental, 4*o.changes, sd, replica.Resync, want); err != nil {
			return err
		}
	}
	for _, sd := range order {
		if err := t.timed(ctx, r, phaseResync, want.inventory().total().Messages, sd, replica.Resync, want); err != nil {
			return err
		}
	}
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
	if err := t.verify(ctx, sd, want); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	t.rep.add(phase, work, sd.peer.Name(), s)
	inv := want.inventory().total()
	fmt.Fprintf(t.log, "bench:   %-14s %-9s %8.3f s  (user %.2f s, sys %.2f s, max RSS %s, Dovecot CPU %.2f s) verified %d messages, %d seen, both sides\n",
		phase, sd.peer.Name(), s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB), s.ServerCPU.Seconds(), inv.Messages, inv.Seen)
	return nil
}

// verify checks sd's account and Maildir against want: every message (by
// Message-ID) in its folder with its flags, on both sides; the server's
// STATUS (MESSAGES, UNSEEN) of every folder; the Maildir's file count; and
// postfach's own count. It records what it saw in sd.
func (t *twowayBench) verify(ctx context.Context, sd *side, want mirror) error {
	srvState, err := sd.srv.mirror()
	if err != nil {
		return err
	}
	if err := diffMirror(want, srvState); err != nil {
		return fmt.Errorf("the server account %s: %w", sd.srv.user, err)
	}
	wantInv := want.inventory()
	inv, err := sd.srv.inventory()
	if err != nil {
		return err
	}
	if !maps.Equal(inv, wantInv) {
		return fmt.Errorf("the server account %s: STATUS says %s, want %s", sd.srv.user, inv, wantInv)
	}
	root := sd.rep.Maildir()
	local, err := scanMirror(root)
	if err != nil {
		return fmt.Errorf("Maildir %s: %w", root, err)
	}
	if sd.dirs == nil {
		if sd.dirs, err = folderDirs(local, want); err != nil {
			return fmt.Errorf("Maildir %s: %w", root, err)
		}
	}
	local = local.translate(sd.dirs)
	if err := diffMirror(want, local); err != nil {
		return fmt.Errorf("Maildir %s: %w", root, err)
	}
	counts, err := countMaildir(root)
	if err != nil {
		return err
	}
	if err := compareCounts(counts, wantInv); err != nil {
		return fmt.Errorf("Maildir %s: %w", root, err)
	}
	if c, ok := sd.rep.(checker); ok {
		if err := c.Check(ctx, wantInv); err != nil {
			return err
		}
	}
	sd.server, sd.local = srvState, local
	return nil
}

// mirror is what one side holds: folder -> Message-ID -> message. On the
// server the folder is the IMAP name; in a Maildir it is the directory
// relative to the root until translate maps it to the server's name.
type mirror map[string]map[string]mirrorMsg

type mirrorMsg struct {
	UID   imap.UID // on the server
	Path  string   // in a Maildir
	Flags string   // the Maildir letters among D F R S T, in that order
}

func (m mirror) clone() mirror {
	out := make(mirror, len(m))
	for f, msgs := range m {
		out[f] = maps.Clone(msgs)
	}
	return out
}

// inventory counts the messages and the seen ones per folder.
func (m mirror) inventory() inventory {
	inv := inventory{}
	for f, msgs := range m {
		var fc folderCount
		for _, msg := range msgs {
			fc.Messages++
			if strings.Contains(msg.Flags, "S") {
				fc.Seen++
			}
		}
		inv[f] = fc
	}
	return inv
}

// translate renames the folders of a Maildir scan by dirs; a directory dirs
// does not know keeps its name, marked, so that it cannot match.
func (m mirror) translate(dirs map[string]string) mirror {
	out := mirror{}
	for dir, msgs := range m {
		name, ok := dirs[dir]
		if !ok {
			name = "(local directory) " + dir
		}
		out[name] = msgs
	}
	return out
}

// diffMirror fails unless got holds exactly the messages of want, folder by
// folder, with the same flags. It names the first differences.
func diffMirror(want, got mirror) error {
	var diffs []string
	missing, extra, flags := 0, 0, 0
	folders := slices.Sorted(maps.Keys(want))
	for f := range got {
		if _, ok := want[f]; !ok {
			folders = append(folders, f)
		}
	}
	for _, f := range folders {
		w, g := want[f], got[f]
		for _, id := range slices.Sorted(maps.Keys(w)) {
			gm, ok := g[id]
			switch {
			case !ok:
				missing++
				diffs = append(diffs, fmt.Sprintf("%s: <%s> missing", f, id))
			case gm.Flags != w[id].Flags:
				flags++
				diffs = append(diffs, fmt.Sprintf("%s: <%s> has flags %q, want %q%s", f, id, gm.Flags, w[id].Flags, gm.where()))
			}
		}
		for _, id := range slices.Sorted(maps.Keys(g)) {
			if _, ok := w[id]; !ok {
				extra++
				diffs = append(diffs, fmt.Sprintf("%s: <%s> should not be there%s", f, id, g[id].where()))
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	return fmt.Errorf("%d messages missing, %d extra, %d with other flags: %s", missing, extra, flags, strings.Join(diffs, "; "))
}

func (m mirrorMsg) where() string {
	if m.Path != "" {
		return " (" + m.Path + ")"
	}
	return fmt.Sprintf(" (UID %d)", m.UID)
}

// flagLetters are the Maildir letters of the IMAP system flags, in the
// order of the letters (Maildir info lists them sorted).
var flagLetters = []struct {
	letter byte
	flag   imap.Flag
}{{'D', imap.FlagDraft}, {'F', imap.FlagFlagged}, {'R', imap.FlagAnswered}, {'S', imap.FlagSeen}, {'T', imap.FlagDeleted}}

// imapLetters returns the letters of flags' system flags; keywords, which
// mbsync does not sync, are left out.
func imapLetters(flags []imap.Flag) string {
	var b []byte
	for _, fl := range flagLetters {
		for _, f := range flags {
			if strings.EqualFold(string(f), string(fl.flag)) {
				b = append(b, fl.letter)
				break
			}
		}
	}
	return string(b)
}

// nameLetters returns the letters among D F R S T in a Maildir file name's
// info (after ":2,"), in that order.
func nameLetters(name string) string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return ""
	}
	info := name[i+3:]
	var b []byte
	for _, fl := range flagLetters {
		if strings.IndexByte(info, fl.letter) >= 0 {
			b = append(b, fl.letter)
		}
	}
	return string(b)
}

// toggleLetter is the file name a mail client gives a message file when it
// toggles a flag: the info after ":2," gets or loses the letter, the info's
// letters stay sorted, the rest of the name is kept. A name without info
// (a file in new/) gets ":2," and the letter.
func toggleLetter(name string, letter byte) string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return name + ":2," + string(letter)
	}
	info := []byte(name[i+3:])
	if j := bytes.IndexByte(info, letter); j >= 0 {
		info = slices.Delete(info, j, j+1)
	} else {
		info = append(info, letter)
		slices.Sort(info)
	}
	return name[:i+3] + string(info)
}

// mirror reads the account: every folder's messages with their Message-ID
// (from the ENVELOPE), UID and flags.
func (s *dovecotServer) mirror() (mirror, error) {
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer logout(c)
	names, err := folders(c)
	if err != nil {
		return nil, err
	}
	m := mirror{}
	for _, name := range names {
		msgs := map[string]mirrorMsg{}
		m[name] = msgs
		sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("EXAMINE %s: %w", name, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil {
			return nil, fmt.Errorf("FETCH %s: %w", name, err)
		}
		for _, b := range bufs {
			if b.Envelope == nil {
				return nil, fmt.Errorf("FETCH %s: UID %d: no envelope", name, b.UID)
			}
			id := strings.Trim(b.Envelope.MessageID, "<> ")
			if id == "" {
				return nil, fmt.Errorf("%s: UID %d has no Message-ID", name, b.UID)
			}
			if prev, ok := msgs[id]; ok {
				return nil, fmt.Errorf("%s: <%s> twice, UIDs %d and %d", name, id, prev.UID, b.UID)
			}
			msgs[id] = mirrorMsg{UID: b.UID, Flags: imapLetters(b.Flags)}
		}
	}
	return m, nil
}

// scanMirror reads a Maildir tree: every file in a cur/ or new/ directory,
// by the folder directory that holds it (relative to root), with the
// Message-ID from its header and the flag letters from its name.
func scanMirror(root string) (mirror, error) {
	m := mirror{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		dir := filepath.Dir(path)
		if b := filepath.Base(dir); b != "cur" && b != "new" {
			return nil
		}
		folder, err := filepath.Rel(root, filepath.Dir(dir))
		if err != nil {
			return err
		}
		id, err := readMessageID(path)
		if err != nil {
			return err
		}
		msgs := m[folder]
		if msgs == nil {
			msgs = map[string]mirrorMsg{}
			m[folder] = msgs
		}
		if prev, ok := msgs[id]; ok {
			return fmt.Errorf("%s: <%s> twice: %s and %s", folder, id, prev.Path, path)
		}
		msgs[id] = mirrorMsg{Path: path, Flags: nameLetters(d.Name())}
		return nil
	})
	return m, err
}

// readMessageID reads the Message-ID of the message file at path.
func readMessageID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	msg, err := mail.ReadMessage(bufio.NewReaderSize(f, 8192))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	id := strings.Trim(msg.Header.Get("Message-Id"), "<> \t")
	if id == "" {
		return "", fmt.Errorf("%s: no Message-ID", path)
	}
	return id, nil
}

// folderDirs learns which Maildir directory of a scan holds which server
// folder: the folder holding most of its messages. Each non-empty server
// folder must have exactly one directory.
func folderDirs(local, server mirror) (map[string]string, error) {
	where := map[string]string{} // Message-ID -> server folder
	for f, msgs := range server {
		for id := range msgs {
			where[id] = f
		}
	}
	dirs := map[string]string{}
	taken := map[string]string{}
	for _, dir := range slices.Sorted(maps.Keys(local)) {
		votes := map[string]int{}
		for id := range local[dir] {
			if f, ok := where[id]; ok {
				votes[f]++
			}
		}
		best := ""
		for f, n := range votes {
			if best == "" || n > votes[best] || n == votes[best] && f < best {
				best = f
			}
		}
		if best == "" {
			continue // diffMirror reports its messages
		}
		if other, ok := taken[best]; ok {
			return nil, fmt.Errorf("directories %s and %s both hold messages of server folder %s", other, dir, best)
		}
		taken[best] = dir
		dirs[dir] = best
	}
	for f, msgs := range server {
		if _, ok := taken[f]; !ok && len(msgs) > 0 {
			return nil, fmt.Errorf("no directory holds the messages of server folder %s (directories: %s)", f, strings.Join(slices.Sorted(maps.Keys(local)), ", "))
		}
	}
	return dirs, nil
}

// changePlan is one run's changes, the same for every peer.
type changePlan struct {
	serverSeen map[string][]string // folder -> Message-IDs whose \Seen the server toggles
	localSeen  map[string][]string // folder -> Message-IDs whose S a mail client toggles
	serverNew  []corpus.Message    // APPENDed on the server
	localNew   []corpus.Message    // written into the Maildir's new/
}

func (p changePlan) count(m map[string][]string) int {
	n := 0
	for _, ids := range m {
		n += len(ids)
	}
	return n
}

// makePlan chooses run r's changes: k messages of the seeded ones spread
// over the folders in proportion to their size get \Seen toggled on the
// server, k others get S toggled locally (in each folder the 2k' chosen
// messages are evenly spaced by UID, alternating server and local, shifted
// by r from run to run), and corpus messages next..next+k-1 are new on the
// server, next+k..next+2k-1 new locally.
func makePlan(base mirror, seeded map[string]int, k, r int, seed int64, next int) (changePlan, error) {
	p := changePlan{serverSeen: map[string][]string{}, localSeen: map[string][]string{}}
	names := slices.Sorted(maps.Keys(seeded))
	sizes := make([]int, len(names))
	for i, name := range names {
		sizes[i] = seeded[name]
	}
	for i, kf := range spread(k, sizes) {
		if kf == 0 {
			continue
		}
		name, n0 := names[i], sizes[i]
		if 2*kf > n0 {
			return p, fmt.Errorf("folder %s: %d messages are too few for %d server and %d local flag changes", name, n0, kf, kf)
		}
		// The seeded messages have the lowest UIDs.
		type byUID struct {
			id  string
			uid imap.UID
		}
		var msgs []byUID
		for id, m := range base[name] {
			if m.UID == 0 {
				return p, fmt.Errorf("folder %s: <%s> has no UID", name, id)
			}
			msgs = append(msgs, byUID{id, m.UID})
		}
		if len(msgs) < n0 {
			return p, fmt.Errorf("folder %s holds %d messages, fewer than the %d seeded", name, len(msgs), n0)
		}
		slices.SortFunc(msgs, func(a, b byUID) int { return cmp.Compare(a.uid, b.uid) })
		for j := range 2 * kf {
			id := msgs[(j*n0/(2*kf)+r)%n0].id
			if j%2 == 0 {
				p.serverSeen[name] = append(p.serverSeen[name], id)
			} else {
				p.localSeen[name] = append(p.localSeen[name], id)
			}
		}
	}
	for i := range 2 * k {
		m := corpus.At(seed, next+i, corpus.Options{})
		if _, ok := base[folderName(m.Folder)]; !ok {
			return p, fmt.Errorf("corpus message %d is for folder %q, not on the server", next+i, m.Folder)
		}
		if i < k {
			p.serverNew = append(p.serverNew, m)
		} else {
			p.localNew = append(p.localNew, m)
		}
	}
	return p, nil
}

// expect is base with the plan's server changes, its local changes, or
// both. Locally new messages have no flags.
func (p changePlan) expect(base mirror, server, local bool) mirror {
	m := base.clone()
	toggle := func(seen map[string][]string) {
		for f, ids := range seen {
			for _, id := range ids {
				msg := m[f][id]
				msg.Flags = nameLetters(toggleLetter(":2,"+msg.Flags, 'S'))
				m[f][id] = msg
			}
		}
	}
	add := func(msgs []corpus.Message, flags bool) {
		for _, c := range msgs {
			f := folderName(c.Folder)
			var letters string
			if flags {
				letters = imapLetters(c.Flags)
			}
			m[f][c.MessageID] = mirrorMsg{Flags: letters}
		}
	}
	if server {
		toggle(p.serverSeen)
		add(p.serverNew, true)
	}
	if local {
		toggle(p.localSeen)
		add(p.localNew, false)
	}
	return m
}

// applyChanges makes the plan's server changes on the account, whose state
// is cur: \Seen toggled (UID STORE), new messages APPENDed with their flags
// and dates.
func (s *dovecotServer) applyChanges(cur mirror, p changePlan) error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer logout(c)
	for _, name := range slices.Sorted(maps.Keys(p.serverSeen)) {
		if _, err := c.Select(name, nil).Wait(); err != nil {
			return fmt.Errorf("SELECT %s: %w", name, err)
		}
		var add, del imap.UIDSet
		for _, id := range p.serverSeen[name] {
			m, ok := cur[name][id]
			if !ok {
				return fmt.Errorf("%s: <%s> is not on the server", name, id)
			}
			if strings.Contains(m.Flags, "S") {
				del.AddNum(m.UID)
			} else {
				add.AddNum(m.UID)
			}
		}
		if err := storeSeen(c, add, del); err != nil {
			return fmt.Errorf("STORE %s: %w", name, err)
		}
	}
	a, err := s.d.Appender(s.user)
	if err != nil {
		return err
	}
	for _, m := range p.serverNew {
		if err := a.Append(m); err != nil {
			a.Close()
			return fmt.Errorf("APPEND: %w", err)
		}
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	return nil
}

// localSeq numbers the files applyLocal writes.
var localSeq atomic.Int64

// applyLocal makes the plan's local changes in the Maildir at root, as a
// mail client and a delivery agent do: a flag change renames the message
// file into cur/ with the S letter toggled in its info (the rest of the name
// as the sync program made it); a new message is written into tmp/ under a
// unique name and renamed into new/ (no info, no U= field). cur is the
// Maildir's state keyed by server folder (paths), dirs maps its folder
// directories to server folders.
func applyLocal(cur mirror, root string, dirs map[string]string, p changePlan) error {
	for _, name := range slices.Sorted(maps.Keys(p.localSeen)) {
		for _, id := range p.localSeen[name] {
			m, ok := cur[name][id]
			if !ok {
				return fmt.Errorf("%s: <%s> is not in the Maildir", name, id)
			}
			folderDir := filepath.Dir(filepath.Dir(m.Path))
			to := filepath.Join(folderDir, "cur", toggleLetter(filepath.Base(m.Path), 'S'))
			if err := os.Rename(m.Path, to); err != nil {
				return err
			}
		}
	}
	dirOf := map[string]string{}
	for dir, name := range dirs {
		dirOf[name] = filepath.Join(root, dir)
	}
	pid := os.Getpid()
	for _, m := range p.localNew {
		dir, ok := dirOf[folderName(m.Folder)]
		if !ok {
			return fmt.Errorf("no Maildir directory for folder %s", folderName(m.Folder))
		}
		now := time.Now()
		q := localSeq.Add(1)
		name := fmt.Sprintf("%d.M%dP%dQ%d.bench-client", now.Unix(), now.Nanosecond()/1000, pid, q)
		tmp := filepath.Join(dir, "tmp", name)
		body := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		if err := os.WriteFile(tmp, body, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			return err
		}
	}
	return nil
}
