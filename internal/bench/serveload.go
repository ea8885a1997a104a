package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The clients phase of the serve scenario (-clients N): N concurrent IMAP
// clients (go-imap's imapclient) on postfach run's local endpoint for
// -client-time, doing what mail clients do on their first connection
// and after. It comes after the timed mbsync phases (-runs 0 leaves
// those out), on the same agent and store.
//
// Every client logs in, lists the folders (LIST, then STATUS of each)
// and syncs them for the first time, as Thunderbird does: per folder
// SELECT, UID FETCH 1:* (FLAGS), then the headers it shows in chunks of
// loadChunk UIDs, UID FETCH a:b (UID FLAGS RFC822.SIZE INTERNALDATE
// BODY.PEEK[HEADER.FIELDS (From To ...)]); the first folder is INBOX for
// half of them and another for the rest, so that folders are synced at
// once by several clients. Then, until the time is up, the idlers (a
// fifth of the clients, at least one) wait in IDLE on INBOX; the others
// loop: SELECT a folder (INBOX every other time), UID FETCH 1:* (FLAGS)
// (a client's resync), ENVELOPE and BODYSTRUCTURE of 50 messages in a
// row, the whole body of 5 (BODY.PEEK[], one command each), UID SEARCH
// by a header key (FROM, SUBJECT) and by TEXT, and UID STORE +FLAGS then
// -FLAGS (\Flagged) on 5 messages. An idler times each flag change it
// is told of from the start of the STORE that made it ("idle-notify").
//
// Reported: the agent's peak RSS (VmHWM, reset through
// /proc/PID/clear_refs when the phase starts, so that the sync and
// indexing before it do not count; also the peak over the agent's whole
// life), its RSS sampled every 250 ms (first and last sample, maximum),
// its CPU time over the phase, and each operation's count, median and
// 95th percentile latency (the command's round trip, the whole response
// read). An error of any client stops the bench.

// loadOptions are the clients phase's flags.
type loadOptions struct {
	clients int
	time    time.Duration
}

// loadChunk is how many messages' headers a client fetches per command
// (Thunderbird's mail.imap.hdr_chunk_size is 200).
const loadChunk = 200

// headerFields are the fields Thunderbird fetches for its message list.
var headerFields = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "References", "In-Reply-To", "Content-Type"}

// The search keys: words and names the corpus has.
var (
	loadFrom    = []string{"alice", "bob@example.net", "GitHub", "Jürgen", "heidi"}
	loadSubject = []string{"invoice", "release", "meeting", "Re:", "quarterly"}
	loadText    = []string{"latency", "quarterly report", "backoff", "merge", "coffee"}
)

// loadResult is what the clients phase measured.
type loadResult struct {
	Clients     int                 `json:"clients"`
	Idlers      int                 `json:"idlers"`
	Time        time.Duration       `json:"time_ns"`
	Synced      int                 `json:"clients_synced"` // clients that finished their first sync of every folder
	HWMKiB      int64               `json:"agent_hwm_kib"`  // peak RSS over the phase
	LifeHWMKiB  int64               `json:"agent_life_hwm_kib"`
	RSSStartKiB int64               `json:"agent_rss_start_kib"`
	RSSEndKiB   int64               `json:"agent_rss_end_kib"`
	RSSMaxKiB   int64               `json:"agent_rss_max_kib"`   // of the samples
	RSSMaxAt    time.Duration       `json:"agent_rss_max_at_ns"` // into the phase
	CPU         time.Duration       `json:"agent_cpu_ns"`
	Ops         map[string]*opStats `json:"ops"`
}

type opStats struct {
	Count  int           `json:"count"`
	Median time.Duration `json:"median_ns"`
	P95    time.Duration `json:"p95_ns"`
	Max    time.Duration `json:"max_ns"`
	lat    []time.Duration
}

// loadRecorder collects latencies from every client.
type loadRecorder struct {
	mu  sync.Mutex
	ops map[string]*opStats
	// stores holds, by INBOX UID and the \Flagged it sets, when the
	// latest STORE that set it so started.
	stores sync.Map // storeKey -> time.Time
}

func (r *loadRecorder) add(op string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.ops[op]
	if s == nil {
		s = &opStats{}
		r.ops[op] = s
	}
	s.lat = append(s.lat, d)
}

// time runs f and records its latency under op.
func (r *loadRecorder) time(op string, f func() error) error {
	t0 := time.Now()
	err := f()
	if err == nil {
		r.add(op, time.Since(t0))
	}
	return err
}

func (r *loadRecorder) finish() map[string]*opStats {
	for _, s := range r.ops {
		slices.Sort(s.lat)
		s.Count = len(s.lat)
		s.Median = s.lat[len(s.lat)/2]
		s.P95 = s.lat[min(len(s.lat)-1, len(s.lat)*95/100)]
		s.Max = s.lat[len(s.lat)-1]
	}
	return r.ops
}

// runClients runs the clients phase against addr, the endpoint of the
// agent with process id pid.
func runClients(ctx context.Context, addr string, pid int, o loadOptions, log io.Writer) (*loadResult, error) {
	res := &loadResult{Clients: o.clients, Idlers: max(1, o.clients/5), Time: o.time}
	if o.clients == 1 {
		res.Idlers = 0
	}
	var err error
	if res.LifeHWMKiB, err = procHWM(pid); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "bench: the agent's peak RSS before the clients (its start, sync and indexing): %s\n", kib(res.LifeHWMKiB))
	if err := resetHWM(pid); err != nil {
		return nil, err
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	if res.RSSStartKiB, err = procRSS(pid); err != nil {
		return nil, err
	}
	res.RSSMaxKiB = res.RSSStartKiB
	rec := &loadRecorder{ops: map[string]*opStats{}}
	ctx, cancel := context.WithTimeout(ctx, o.time)
	defer cancel()
	sampled := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if n, err := procRSS(pid); err == nil && n > res.RSSMaxKiB {
					res.RSSMaxKiB, res.RSSMaxAt = n, time.Since(t0)
				}
			}
		}
	}()
	var synced atomic.Int32
	errs := make(chan error, o.clients)
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := &loadClient{i: i, idler: i < res.Idlers, addr: addr, rec: rec,
				rng: rand.New(rand.NewPCG(uint64(i), 7)), synced: &synced, told: map[storeKey]time.Time{}}
			if err := lc.run(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("client %d: %w", i+1, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	<-sampled
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if res.CPU, err = procCPU(pid); err != nil {
		return nil, err
	}
	res.CPU -= cpu0
	if res.HWMKiB, err = procHWM(pid); err != nil {
		return nil, err
	}
	if res.RSSEndKiB, err = procRSS(pid); err != nil {
		return nil, err
	}
	res.LifeHWMKiB = max(res.LifeHWMKiB, res.HWMKiB)
	res.Synced = int(synced.Load())
	res.Ops = rec.finish()
	fmt.Fprintf(log, "bench: clients: %d of %d synced every folder; the agent's peak RSS %s, CPU %.1f s\n",
		res.Synced, res.Clients, kib(res.HWMKiB), res.CPU.Seconds())
	return res, nil
}

// loadClient is one simulated mail client.
type loadClient struct {
	i      int
	idler  bool
	addr   string
	rec    *loadRecorder
	rng    *rand.Rand
	synced *atomic.Int32
	mu     sync.Mutex // for told: the library calls unilateralFetch on goroutines of its own
	c      *imapclient.Client
	inbox  bool        // INBOX is selected
	uids   []imap.UID  // of the selected folder, from its FLAGS fetch
	folder string      // selected
	idling atomic.Bool // in IDLE: flag updates are timed
	// told holds, for an idler, the STORE of each storeKey it was told
	// of last: a change the sync engine writes again later is not
	// counted twice.
	told map[storeKey]time.Time
}

// storeKey is a STORE of one message: its UID and whether it set
// \Flagged (the load's STOREs change only that).
type storeKey struct {
	uid     imap.UID
	flagged bool
}

func (lc *loadClient) run(ctx context.Context) error {
	h := &imapclient.UnilateralDataHandler{Fetch: lc.unilateralFetch}
	var c *imapclient.Client
	err := lc.rec.time("connect+login", func() error {
		var err error
		if c, err = imapclient.DialInsecure(lc.addr, &imapclient.Options{UnilateralDataHandler: h}); err != nil {
			return err
		}
		return c.Login(serveUser, servePassword).Wait()
	})
	if err != nil {
		return err
	}
	lc.c = c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	var folders []string
	err = lc.rec.time("list", func() error {
		list, err := c.List("", "*", nil).Collect()
		for _, l := range list {
			if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
				folders = append(folders, l.Mailbox)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, f := range folders {
		if err := lc.rec.time("status", func() error {
			_, err := c.Status(f, &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true}).Wait()
			return err
		}); err != nil {
			return err
		}
	}
	// The first sync: INBOX first for half of the clients.
	slices.SortFunc(folders, func(a, b string) int {
		ia, ib := strings.EqualFold(a, "INBOX"), strings.EqualFold(b, "INBOX")
		switch {
		case ia && !ib:
			return -1
		case ib && !ia:
			return 1
		}
		return strings.Compare(a, b)
	})
	if lc.i%2 == 1 && len(folders) > 1 {
		folders = append(folders[1:], folders[0])
	}
	if lc.idler {
		// An idler syncs INBOX only, then waits in IDLE.
		folders = folders[:1]
	}
	for _, f := range folders {
		if err := lc.firstSync(f); err != nil {
			return err
		}
	}
	lc.synced.Add(1)
	if lc.idler {
		return lc.idle(ctx)
	}
	for ctx.Err() == nil {
		f := "INBOX"
		if lc.rng.IntN(2) == 1 {
			f = folders[lc.rng.IntN(len(folders))]
		}
		if err := lc.work(f); err != nil {
			return err
		}
	}
	return nil
}

// selectFolder selects f and reads its UIDs and flags (a client's
// resync).
func (lc *loadClient) selectFolder(f string) error {
	lc.inbox = false
	if err := lc.rec.time("select", func() error {
		_, err := lc.c.Select(f, nil).Wait()
		return err
	}); err != nil {
		return err
	}
	lc.folder, lc.inbox = f, strings.EqualFold(f, "INBOX")
	lc.uids = lc.uids[:0]
	return lc.rec.time("uid fetch 1:* (flags)", func() error {
		cmd := lc.c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true})
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			b, err := m.Collect()
			if err != nil {
				cmd.Close()
				return err
			}
			lc.uids = append(lc.uids, b.UID)
		}
		return cmd.Close()
	})
}

// firstSync selects f and fetches every message's list headers, in
// chunks, as a client that has never seen the folder.
func (lc *loadClient) firstSync(f string) error {
	if err := lc.selectFolder(f); err != nil {
		return err
	}
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: headerFields}}}
	slices.Sort(lc.uids)
	for i := 0; i < len(lc.uids); i += loadChunk {
		chunk := lc.uids[i:min(len(lc.uids), i+loadChunk)]
		set := imap.UIDSet{{Start: chunk[0], Stop: chunk[len(chunk)-1]}}
		if err := lc.rec.time("uid fetch headers (200)", func() error { return drain(lc.c.Fetch(set, opts)) }); err != nil {
			return err
		}
	}
	return nil
}

// work is one round of a client reading and filing mail in folder f.
func (lc *loadClient) work(f string) error {
	if err := lc.selectFolder(f); err != nil {
		return err
	}
	if len(lc.uids) == 0 {
		return nil
	}
	c := lc.c
	start := lc.rng.IntN(len(lc.uids))
	run := lc.uids[start:min(len(lc.uids), start+50)]
	set := imap.UIDSet{{Start: run[0], Stop: run[len(run)-1]}}
	if err := lc.rec.time("uid fetch envelope+bodystructure (50)", func() error {
		return drain(c.Fetch(set, &imap.FetchOptions{UID: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}))
	}); err != nil {
		return err
	}
	for range 5 {
		uid := lc.uids[lc.rng.IntN(len(lc.uids))]
		if err := lc.rec.time("uid fetch body.peek[] (1)", func() error {
			return drain(c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}))
		}); err != nil {
			return err
		}
	}
	crit := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: loadFrom[lc.rng.IntN(len(loadFrom))]}}}
	if lc.rng.IntN(2) == 1 {
		crit.Header[0] = imap.SearchCriteriaHeaderField{Key: "Subject", Value: loadSubject[lc.rng.IntN(len(loadSubject))]}
	}
	if err := lc.rec.time("uid search header", func() error {
		_, err := c.UIDSearch(crit, nil).Wait()
		return err
	}); err != nil {
		return err
	}
	if err := lc.rec.time("uid search text", func() error {
		_, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{loadText[lc.rng.IntN(len(loadText))]}}, nil).Wait()
		return err
	}); err != nil {
		return err
	}
	var flag imap.UIDSet
	picked := make([]imap.UID, 5)
	for k := range picked {
		picked[k] = lc.uids[lc.rng.IntN(len(lc.uids))]
		flag.AddNum(picked[k])
	}
	for _, op := range []imap.StoreFlagsOp{imap.StoreFlagsAdd, imap.StoreFlagsDel} {
		if lc.inbox {
			now := time.Now()
			for _, uid := range picked {
				lc.rec.stores.Store(storeKey{uid, op == imap.StoreFlagsAdd}, now)
			}
		}
		if err := lc.rec.time("uid store flags (5)", func() error {
			return drain(c.Store(flag, &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil))
		}); err != nil {
			return err
		}
	}
	return nil
}

// idle waits in IDLE on INBOX (selected) until ctx ends.
func (lc *loadClient) idle(ctx context.Context) error {
	cmd, err := lc.c.Idle()
	if err != nil {
		return err
	}
	lc.idling.Store(true)
	<-ctx.Done()
	lc.idling.Store(false)
	cmd.Close()
	return nil
}

// unilateralFetch times a flag change an idler is told of.
func (lc *loadClient) unilateralFetch(m *imapclient.FetchMessageData) {
	b, err := m.Collect()
	if err != nil || !lc.idling.Load() || b.UID == 0 {
		return
	}
	k := storeKey{b.UID, slices.Contains(b.Flags, imap.FlagFlagged)}
	v, ok := lc.rec.stores.Load(k)
	if !ok {
		return
	}
	t := v.(time.Time)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.told[k].Equal(t) {
		return
	}
	lc.told[k] = t
	lc.rec.add("idle-notify (STORE to FETCH)", time.Since(t))
}

// drain reads a FETCH (or STORE) command's responses to the end, bodies
// included.
func drain(cmd *imapclient.FetchCommand) error {
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for it := m.Next(); it != nil; it = m.Next() {
			if bs, ok := it.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				if _, err := io.Copy(io.Discard, bs.Literal); err != nil {
					cmd.Close()
					return err
				}
			}
		}
	}
	return cmd.Close()
}

// procRSS is a process's resident set size (VmRSS) in KiB.
func procRSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// resetHWM resets a process's peak RSS (VmHWM) to its current RSS
// (Linux 4.0 and later).
func resetHWM(pid int) error {
	f, err := os.OpenFile(filepath.Join("/proc", strconv.Itoa(pid), "clear_refs"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("resetting the agent's peak RSS: %w", err)
	}
	_, err = f.WriteString("5")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("resetting the agent's peak RSS: %w", err)
	}
	return nil
}

func (res *loadResult) writeText(w io.Writer) {
	fmt.Fprintf(w, "\nclients phase: %d IMAP clients (%d in IDLE on INBOX) for %s; %d finished their first sync of every folder\n",
		res.Clients, res.Idlers, res.Time, res.Synced)
	fmt.Fprintf(w, "the agent: peak RSS (VmHWM) %s over the phase (%s over its life, sync and indexing included); RSS at the start %s, at the end %s, highest sample %s (%s into the phase); CPU %.1f s\n",
		kib(res.HWMKiB), kib(res.LifeHWMKiB), kib(res.RSSStartKiB), kib(res.RSSEndKiB), kib(res.RSSMaxKiB), res.RSSMaxAt.Round(time.Second), res.CPU.Seconds())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\tmedian\tp95\tmax\t")
	names := make([]string, 0, len(res.Ops))
	for n := range res.Ops {
		names = append(names, n)
	}
	slices.Sort(names)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	for _, n := range names {
		s := res.Ops[n]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", n, s.Count, ms(s.Median), ms(s.P95), ms(s.Max))
	}
	tw.Flush()
}
