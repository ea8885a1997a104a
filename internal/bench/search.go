package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
)

// The search scenario: postfach's search against notmuch's (Debian's
// notmuch, Xapian) on the same Maildir. One Dovecot holds a natural-language
// corpus (internal/corpus, Options.Natural: Zipf-distributed words of
// Debian's wamerican and wngerman, 300 correspondents, threads, years of
// dates, attachments); postfach syncs it into its store (timed, shown, but
// not indexing: it downloads, writes the files and the rows with the
// headers, and leaves the full text pending), and the store is verified
// against the corpus, message by message. Then, on that store's Maildir:
//
//   - indexing: postfach's first `postfach search` (it indexes the full
//     text of every message the sync left pending, then answers) against
//     `notmuch new` into an empty database (notmuch's own config in the
//     work directory, database.mail_root = the store, the database beside
//     it, .postfach ignored). postfach has already parsed the headers in
//     the sync (not separable from it; notmuch new parses them too). With
//     -runs R each tool indexes R times, postfach from a copy of its
//     index as the sync left it, notmuch from an empty database, the tool
//     going first alternating;
//   - queries: 20 typical queries (searchQueries: words common and rare,
//     phrase, from:, subject:, dates, folder, flags, OR, NOT, prefix,
//     attachments, an accented word, size), each as `postfach search
//     --json --limit 50 Q` and `notmuch search --format=json --limit=50
//     Q'` (Q' the same query in notmuch's syntax), -repeat times each,
//     alternating which goes first; the median wall time of each. Then,
//     untimed, every hit of each (postfach --limit 1000000, notmuch
//     search --output=messages) is compared by Message-ID.
//
// Both tools' processes are timed whole (start to exit) with the page
// cache warm (the store was just written and read back).

// searchOptions are the flags of the search scenario.
type searchOptions struct {
	benchOptions
	repeat int
}

func runSearch(args []string) error {
	var o searchOptions
	fs := flag.NewFlagSet("search", flag.ExitOnError)
	o.addFlags(fs, 50000, 1, "number of messages in the corpus")
	fs.IntVar(&o.repeat, "repeat", 5, "timed runs of each query per tool; the table shows the median")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs <= 0 || o.repeat <= 0 {
		return fmt.Errorf("-messages, -runs and -repeat must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := benchSearch(ctx, o, args, os.Stderr)
	if err != nil {
		return err
	}
	if o.json {
		return rep.writeJSON(os.Stdout)
	}
	rep.writeText(os.Stdout)
	return nil
}

// benchSearch runs the search scenario and returns its report.
func benchSearch(ctx context.Context, o searchOptions, args []string, log io.Writer) (*searchReport, error) {
	nm, err := exec.LookPath("notmuch")
	if err != nil {
		return nil, fmt.Errorf("notmuch is not installed (apt-get install notmuch): %v", err)
	}
	vocab, err := corpus.LoadVocabulary()
	if err != nil {
		return nil, err
	}
	ws, err := newWorkspace(ctx, "search", "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return nil, err
	}
	defer ws.close()
	rep := &searchReport{report: ws.rep, Repeat: o.repeat, Vocabulary: vocab.Source}
	rep.Seed, rep.Runs = o.seed, o.runs
	copts := corpus.Options{Natural: vocab}

	srv, err := startDovecot(filepath.Join(ws.dir, "dovecot"), "")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	t0 := time.Now()
	if rep.Corpus, err = srv.seed(o.seed, o.messages, copts); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: seeded %d messages (%s) in %s\n", rep.Corpus.Messages, mib(rep.Corpus.Bytes), time.Since(t0).Round(time.Millisecond))
	rep.Server = fmt.Sprintf("Dovecot %s on %s:%d, the sync's source only", srv.d.Version, srv.d.Host, srv.d.IMAPPort)

	// postfach's store: synced from Dovecot, verified against the corpus.
	pdir := filepath.Join(ws.dir, "postfach")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return nil, err
	}
	rp, err := ws.pf.NewReplica(pdir, srv.upstream())
	if err != nil {
		return nil, err
	}
	pr := rp.(*postfachReplica)
	if rep.Sync, err = pr.Initial(ctx); err != nil {
		return nil, fmt.Errorf("postfach sync: %w", err)
	}
	t0 = time.Now()
	want := corpusMirror(o.seed, o.messages, copts)
	scan, err := verifyReplica(ctx, pr, want, true)
	if err == nil {
		err = pr.Check(ctx, want.inventory())
	}
	if err != nil {
		return nil, fmt.Errorf("postfach's store after the sync: %w", err)
	}
	fmt.Fprintf(log, "bench: postfach sync %.3f s (max RSS %s); store verified against the corpus in %s\n",
		rep.Sync.Wall.Seconds(), kib(rep.Sync.MaxRSSKiB), time.Since(t0).Round(time.Millisecond))

	pf := &pfSearcher{bin: ws.pf.bin, conf: pr.conf, store: pr.store, dir: pr.dir}
	if err := pf.probe(ctx); err != nil {
		return nil, err
	}
	if err := pf.saveIndex(filepath.Join(ws.dir, "index-as-synced")); err != nil {
		return nil, err
	}
	nmS, err := newNotmuch(ctx, nm, filepath.Join(ws.dir, "notmuch"), pr.store)
	if err != nil {
		return nil, err
	}
	rep.Tools = []peerInfo{
		{Name: "postfach", Version: ws.pf.version, Notes: pf.notes(), Command: shellQuote(pf.searchArgv("Q", 50))},
		{Name: "notmuch", Version: nmS.version, Notes: nmS.notes(), Command: shellQuote(nmS.searchArgv("Q", 50))},
	}

	queries := searchQueries(vocab, o.messages, scan.dirs, pr.store)
	return rep, measureSearch(ctx, ws, rep, pf, nmS, queries, o, log)
}

// measureSearch times the indexing and the queries, between two probes
// of the disk.
func measureSearch(ctx context.Context, ws *workspace, rep *searchReport, pf *pfSearcher, nm *notmuchSearcher, queries []searchQuery, o searchOptions, log io.Writer) error {
	var err error
	if rep.FsyncBefore, err = probeFsync(ws.dir, 200); err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	rep.LoadBefore = loadAverage()
	fmt.Fprintf(log, "bench: load average %s\n", rep.LoadBefore)
	first := queries[0].Postfach
	var pfRuns, nmRuns []sample
	for r := range o.runs {
		for k := range 2 {
			if (k+r)%2 == 0 {
				s, err := pf.index(ctx, first, o.messages)
				if err != nil {
					return fmt.Errorf("indexing, run %d: postfach: %w", r+1, err)
				}
				pfRuns = append(pfRuns, s)
				fmt.Fprintf(log, "bench: index run %d postfach (first search) %8.3f s (user %.2f s, sys %.2f s, max RSS %s)\n", r+1, s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB))
			} else {
				s, err := nm.index(ctx, o.messages)
				if err != nil {
					return fmt.Errorf("indexing, run %d: notmuch: %w", r+1, err)
				}
				nmRuns = append(nmRuns, s)
				fmt.Fprintf(log, "bench: index run %d notmuch new        %8.3f s (user %.2f s, sys %.2f s, max RSS %s)\n", r+1, s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB))
			}
		}
	}
	rep.Index = indexResult{Postfach: pfRuns, Notmuch: nmRuns, PostfachMedian: medianSample(pfRuns), NotmuchMedian: medianSample(nmRuns)}
	if w := rep.Index.NotmuchMedian.Wall; w > 0 {
		rep.Index.Ratio = rep.Index.PostfachMedian.Wall.Seconds() / w.Seconds()
	}
	rep.Index.PostfachBytes = dirSize(filepath.Join(pf.store, ".postfach"))
	rep.Index.NotmuchBytes = dirSize(nm.db)

	pf.probeLanguage(ctx)
	rep.Language, rep.Tools[0].Notes = pf.language, pf.notes()
	for _, q := range queries {
		res := runQuery(ctx, pf, nm, q, o.repeat)
		rep.Queries = append(rep.Queries, res)
		fmt.Fprintf(log, "bench: query %-16s postfach %s, notmuch %s\n", q.Name, res.Postfach.brief(), res.Notmuch.brief())
	}
	rep.LoadAfter = loadAverage()
	if rep.FsyncAfter, err = probeFsync(ws.dir, 200); err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	rep.summarize()
	return nil
}

// pfSearcher runs postfach search on the synced store.
type pfSearcher struct {
	bin, conf, store, dir string
	json                  bool // the build has search --json
	language              bool // the build has the query language (from:, OR, ...)
	saved                 string
}

func (p *pfSearcher) argv(args ...string) []string {
	return append([]string{p.bin, "--config", p.conf}, args...)
}

// probe asks the build whether its search command has --json (issue 13;
// before, it printed a table). --help does not index anything.
func (p *pfSearcher) probe(ctx context.Context) error {
	argv := p.argv("search", "--help")
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", shellQuote(argv), err, out)
	}
	p.json = strings.Contains(string(out), "--json")
	return nil
}

// probeLanguage finds out whether the build has the query language
// (issue 13; before, every query was plain words): with it an unknown
// flag is an error, without it two words that match nothing. It runs a
// search, so it must come after the indexing runs (a search indexes).
func (p *pfSearcher) probeLanguage(ctx context.Context) {
	argv := p.searchArgv("flag:no-such-flag", 1)
	p.language = exec.CommandContext(ctx, argv[0], argv[1:]...).Run() != nil
}

func (p *pfSearcher) notes() string {
	s := "SQLite FTS5 (unicode61, diacritics removed, no stemming); JSON Lines"
	if !p.json {
		s = "SQLite FTS5 (unicode61, diacritics removed, no stemming); this build has no --json: table output, one line a hit"
	}
	if !p.language {
		s += "; this build has no query language: every query is taken as plain words (ANDed)"
	}
	return s
}

// searchArgv is the command of one query.
func (p *pfSearcher) searchArgv(q string, limit int) []string {
	args := []string{"search", "--limit", fmt.Sprint(limit)}
	if p.json {
		args = append(args, "--json")
	}
	return p.argv(append(args, "--", q)...)
}

// saveIndex copies the store's index as the sync left it (full text
// pending), so that each indexing run starts from it.
func (p *pfSearcher) saveIndex(dir string) error {
	p.saved = dir
	return copyIndex(filepath.Join(p.store, ".postfach"), dir)
}

// copyIndex copies index.db and its WAL files from one directory to
// another, removing the target's WAL files first.
func copyIndex(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"index.db", "index.db-wal", "index.db-shm"} {
		os.Remove(filepath.Join(to, name))
		data, err := os.ReadFile(filepath.Join(from, name))
		if os.IsNotExist(err) && name != "index.db" {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// index restores the index as synced and times the first search, which
// indexes the full text of every message; it checks that none is left
// pending.
func (p *pfSearcher) index(ctx context.Context, q string, n int) (sample, error) {
	if err := copyIndex(p.saved, filepath.Join(p.store, ".postfach")); err != nil {
		return sample{}, err
	}
	if pending, err := p.pending(ctx); err != nil || pending != n {
		return sample{}, fmt.Errorf("before the first search: %d messages pending full text, want %d (%v)", pending, n, err)
	}
	s, _, err := runProcess(ctx, p.dir, p.searchArgv(q, 50)...)
	if err != nil {
		return s, err
	}
	if pending, err := p.pending(ctx); err != nil || pending != 0 {
		return s, fmt.Errorf("after the first search: %d messages pending full text (%v)", pending, err)
	}
	return s, nil
}

func (p *pfSearcher) pending(ctx context.Context) (int, error) {
	st, err := index.OpenStore(p.store)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	var n int
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		n, err = tx.PendingText()
		return err
	})
	return n, err
}

// hits runs q and returns how many results it printed and, with --json,
// their Message-IDs.
func (p *pfSearcher) hits(out []byte) (int, []string, error) {
	var ids []string
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		n++
		if p.json {
			var h struct {
				MessageID string `json:"message_id"`
			}
			if err := json.Unmarshal([]byte(line), &h); err != nil {
				return 0, nil, fmt.Errorf("search --json: line %d: %v", n, err)
			}
			ids = append(ids, strings.Trim(h.MessageID, "<>"))
		}
	}
	return n, ids, nil
}

// notmuchSearcher runs Debian's notmuch with its own config on the store.
type notmuchSearcher struct {
	bin, conf, db, dir, version string
}

// newNotmuch writes notmuch's config in dir: the database in dir/db, the
// mail root the store, postfach's .postfach directory ignored, Maildir
// flags synchronized into tags (unread, flagged, replied, draft).
func newNotmuch(ctx context.Context, bin, dir, store string) (*notmuchSearcher, error) {
	n := &notmuchSearcher{bin: bin, dir: dir, conf: filepath.Join(dir, "config"), db: filepath.Join(dir, "db")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`[database]
path=%s
mail_root=%s

[user]
name=Paula Fach
primary_email=paula@postfach.example

[new]
tags=unread;inbox
ignore=.postfach

[search]
exclude_tags=

[maildir]
synchronize_flags=true
`, n.db, store)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	n.version = "notmuch (version unknown)"
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		n.version = strings.TrimSpace(string(out))
	}
	return n, nil
}

func (n *notmuchSearcher) argv(args ...string) []string {
	return append([]string{n.bin, "--config=" + n.conf}, args...)
}

func (n *notmuchSearcher) notes() string {
	return "Xapian; its own config (--config, database beside the store, database.mail_root = the store, .postfach ignored, synchronize_flags); " +
		"search lists threads (its default output), free text stemmed (English) unless quoted"
}

// index removes the database and times notmuch new into an empty one; it
// checks that notmuch then counts every message.
func (n *notmuchSearcher) index(ctx context.Context, want int) (sample, error) {
	if err := os.RemoveAll(n.db); err != nil {
		return sample{}, err
	}
	if err := os.MkdirAll(n.db, 0o755); err != nil {
		return sample{}, err
	}
	s, _, err := runProcess(ctx, n.dir, n.argv("new", "--quiet")...)
	if err != nil {
		return s, err
	}
	out, err := exec.CommandContext(ctx, n.argv("count", "--output=files", "*")[0], n.argv("count", "--output=files", "*")[1:]...).Output()
	if err != nil {
		return s, fmt.Errorf("notmuch count: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != fmt.Sprint(want) {
		return s, fmt.Errorf("notmuch new indexed %s files, want %d", got, want)
	}
	return s, nil
}

func (n *notmuchSearcher) searchArgv(q string, limit int) []string {
	return n.argv("search", "--format=json", fmt.Sprintf("--limit=%d", limit), q)
}

// dirSize is the size of the files below dir.
func dirSize(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
