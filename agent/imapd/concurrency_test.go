package imapd

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// tconn is a minimal IMAP client for the concurrency test: it sends one
// command at a time and returns the untagged responses in the order they
// came (what a client's view depends on).
type tconn struct {
	t    *testing.T
	name string
	c    net.Conn
	r    *bufio.Reader
	n    int
	view tview
	idle chan string // lines read while idling (nil when not idling)
	raw  bool        // cmd leaves the view alone
}

// tview is a client's view of the selected mailbox: UIDs by sequence
// number (0 until a FETCH told it) and flags by UID.
type tview struct {
	uids  []uint32
	flags map[uint32]string
}

func dialT(t *testing.T, addr, name string) *tconn {
	t.Helper()
	tc := dialLogin(t, addr, name)
	tc.must("SELECT INBOX")
	return tc
}

// dialLogin connects and logs in.
func dialLogin(t *testing.T, addr, name string) *tconn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tc := &tconn{t: t, name: name, c: c, r: bufio.NewReader(c), view: tview{flags: map[uint32]string{}}}
	tc.line() // greeting
	tc.must("LOGIN %s %s", testUser, testPass)
	return tc
}

func (c *tconn) line() string {
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: reading: %v", c.name, err)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd runs a command; literal, if set, is sent as a LITERAL+ after it.
func (c *tconn) cmd(literal string, format string, args ...any) (untagged []string, status string) {
	defer func() {
		for _, l := range untagged {
			if !c.raw {
				c.view.apply(c.t, l)
			}
		}
	}()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	s := tag + " " + fmt.Sprintf(format, args...)
	if literal != "" {
		s += fmt.Sprintf(" {%d+}\r\n%s", len(literal), literal)
	}
	if _, err := c.c.Write([]byte(s + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

func (c *tconn) must(format string, args ...any) []string {
	c.t.Helper()
	u, st := c.cmd("", format, args...)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s: %s", c.name, fmt.Sprintf(format, args...), st)
	}
	return u
}

var (
	reExists  = regexp.MustCompile(`^\* (\d+) EXISTS$`)
	reExpunge = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	reFetch   = regexp.MustCompile(`^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$`)
)

// apply brings the view up to date with one untagged response.
func (v *tview) apply(t *testing.T, l string) {
	t.Helper()
	if m := reExists.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n < len(v.uids) {
			t.Fatalf("EXISTS %d below %d", n, len(v.uids))
		}
		for len(v.uids) < n {
			v.uids = append(v.uids, 0)
		}
	} else if m := reExpunge.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n < 1 || n > len(v.uids) {
			t.Fatalf("EXPUNGE %d of %d", n, len(v.uids))
		}
		v.uids = slices.Delete(v.uids, n-1, n)
	} else if m := reFetch.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		u, _ := strconv.Atoi(m[2])
		if n < 1 || n > len(v.uids) || (v.uids[n-1] != 0 && v.uids[n-1] != uint32(u)) {
			t.Fatalf("%q does not fit the view %v", l, v.uids)
		}
		v.uids[n-1] = uint32(u)
		f := strings.Fields(m[3])
		slices.Sort(f)
		v.flags[uint32(u)] = strings.Join(f, " ")
	}
}

// check compares the view with what the server says now (FETCH 1:*),
// after a NOOP has brought it up to date.
func (c *tconn) check(truth *tview) {
	c.t.Helper()
	c.must("NOOP")
	got := tview{flags: map[uint32]string{}}
	if len(c.view.uids) > 0 {
		c.raw = true
		for _, l := range c.must("FETCH 1:* (UID FLAGS)") {
			if !reFetch.MatchString(l) {
				c.t.Fatalf("%s: %q after a NOOP", c.name, l)
			}
			got.uids = append(got.uids, 0)
			got.apply(c.t, l)
		}
		c.raw = false
	}
	for i, u := range c.view.uids {
		if u == 0 {
			c.view.uids[i] = got.uids[i] // learnt now
			c.view.flags[got.uids[i]] = got.flags[got.uids[i]]
		}
	}
	if !slices.Equal(c.view.uids, got.uids) {
		c.t.Fatalf("%s: view %v, server %v", c.name, c.view.uids, got.uids)
	}
	for _, u := range got.uids {
		if c.view.flags[u] != got.flags[u] {
			c.t.Fatalf("%s: UID %d: view flags %q, server %q", c.name, u, c.view.flags[u], got.flags[u])
		}
	}
	if truth.flags != nil && (!slices.Equal(truth.uids, got.uids) || fmt.Sprint(truth.flags) != fmt.Sprint(got.flags)) {
		c.t.Fatalf("%s: sees %v %v, others %v %v", c.name, got.uids, got.flags, truth.uids, truth.flags)
	}
	*truth = got
}

func (c *tconn) startIdle() {
	c.n++
	c.c.Write([]byte(fmt.Sprintf("t%d IDLE\r\n", c.n)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		c.t.Fatalf("IDLE: %q", l)
	}
	c.idle = make(chan string, 1000)
	go func(ch chan string) {
		defer close(ch)
		for {
			c.c.SetReadDeadline(time.Time{})
			l, err := c.r.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			ch <- l
			if strings.HasPrefix(l, "t") {
				return // the tagged end of IDLE
			}
		}
	}(c.idle)
}

func (c *tconn) stopIdle() {
	c.c.Write([]byte("DONE\r\n"))
	for l := range c.idle {
		if strings.HasPrefix(l, "*") {
			c.view.apply(c.t, l)
		} else if !strings.Contains(l, "OK") {
			c.t.Fatalf("IDLE ended with %q", l)
		}
	}
	c.idle = nil
}

// waitIdle applies the idle session's updates until its view has truth's
// messages and flags, and fails if that is more than a second after
// since (when the change was made). It returns how long after since the
// view was right at the latest (the updates may have been waiting in the
// channel while the other sessions were checked).
func (c *tconn) waitIdle(truth tview, since time.Time) time.Duration {
	timeout := time.After(time.Until(since.Add(time.Second)))
	for {
		if c.view.matches(truth) {
			return time.Since(since)
		}
		select {
		case l := <-c.idle:
			c.view.apply(c.t, l)
		case <-timeout:
			c.t.Fatalf("%s: a second after the change it sees %v %v, the others %v %v", c.name, c.view.uids, c.view.flags, truth.uids, truth.flags)
		}
	}
}

// matches reports whether v agrees with truth so far as it knows UIDs.
func (v tview) matches(truth tview) bool {
	if len(v.uids) != len(truth.uids) {
		return false
	}
	for i, u := range v.uids {
		if u != 0 && (u != truth.uids[i] || v.flags[u] != truth.flags[u]) {
			return false
		}
	}
	return true
}

// TestEndpointConcurrent runs random changes from several sessions on one
// folder, and from the store's door (as the sync and the Maildir watcher
// make them), while more sessions idle (ten clients in all; four with
// -short): every session's view (UIDs by sequence number, flags) must
// match the server's after each change, the idle ones' within a second,
// and no UID may come back.
func TestEndpointConcurrent(t *testing.T) {
	st, fs := testStore(t, "INBOX", "Archive")
	for i := range 5 {
		deliver(t, st, fs["INBOX"], uint32(200+i), fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i), 0)
	}
	srv, addr := startServer(t, st)
	active, idle, rounds := 7, 3, 80 // ten clients
	if testing.Short() {
		active, idle, rounds = 3, 1, 30
	}
	var sessions, idlers []*tconn
	for i := range active {
		sessions = append(sessions, dialT(t, addr, fmt.Sprintf("s%d", i)))
	}
	for i := range idle {
		idlers = append(idlers, dialT(t, addr, fmt.Sprintf("idle%d", i)))
		idlers[i].startIdle()
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	seed := rng.Int63()
	rng.Seed(seed)
	t.Logf("seed %d", seed)
	var truth tview
	for _, s := range sessions {
		s.check(&truth)
	}
	seen := map[uint32]bool{}
	var maxSeen uint32
	for _, u := range truth.uids {
		seen[u], maxSeen = true, max(maxSeen, u)
	}
	var slowest time.Duration
	for r := range rounds {
		s := sessions[rng.Intn(len(sessions))]
		n := len(truth.uids)
		seq := 1 + rng.Intn(max(n, 1))
		switch a := rng.Intn(10); {
		case a == 0 || n == 0:
			s.cmd(fmt.Sprintf("Subject: r%d\r\n\r\nround %d\r\n", r, r), "APPEND INBOX (\\Seen)")
		case a == 1:
			s.cmd("", "STORE %d +FLAGS (\\Flagged $K%d)", seq, r%3)
		case a == 2:
			s.cmd("", "STORE %d -FLAGS (\\Seen \\Flagged)", seq)
		case a == 3:
			s.cmd("", "STORE %d +FLAGS.SILENT (\\Deleted)", seq)
			s.cmd("", "EXPUNGE")
		case a == 4:
			s.cmd("", "MOVE %d Archive", seq)
		case a == 5:
			s.cmd("", "COPY %d INBOX", seq)
		case a == 6: // the sync delivers
			if _, err := st.Append(context.Background(), fs["INBOX"].ID, strings.NewReader("Subject: sync\r\n\r\nx\r\n"), 0, nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
			settle(t, srv, fs["INBOX"].ID)
		case a == 8: // a MOVE within the mailbox renumbers the message
			s.cmd("", "MOVE %d INBOX", seq)
		case a == 9:
			s.cmd("", "STORE %d +FLAGS.SILENT (\\Deleted)", seq)
			s.cmd("", "UID EXPUNGE %d", truth.uids[seq-1])
		case a == 7: // the Maildir watcher records a flag change
			doorFlags(t, st, fs["INBOX"].ID, truth.uids[seq-1])
			settle(t, srv, fs["INBOX"].ID)
		}
		changed := time.Now()
		var before tview
		for _, s := range sessions {
			s.check(&before)
		}
		truth = before
		for _, u := range truth.uids {
			if !seen[u] {
				if u <= maxSeen {
					t.Fatalf("round %d: new UID %d is not above %d", r, u, maxSeen)
				}
				seen[u], maxSeen = true, u
			}
		}
		for i, idler := range idlers {
			slowest = max(slowest, idler.waitIdle(truth, changed))
			if r%10 == 9-i {
				idler.stopIdle()
				idler.check(&truth)
				idler.startIdle()
			}
		}
	}
	for _, idler := range idlers {
		idler.stopIdle()
		idler.check(&truth)
	}
	t.Logf("%d rounds; the idle sessions were up to date at most %v after a change (an upper bound: the others were checked meanwhile)", rounds, slowest)
}

// doorFlags toggles \Answered of the message with local UID uid through
// the door, as the Maildir watcher or the sync would.
func doorFlags(t *testing.T, st *index.Store, folder index.FolderID, uid uint32) {
	t.Helper()
	var ms []*index.Message
	st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.LocalMessages(folder, []uint32{uid})
		return err
	})
	if len(ms) != 1 {
		t.Fatalf("no message with UID %d", uid)
	}
	m := ms[0]
	err := st.SetFlags(context.Background(), []index.FlagChange{{Message: m, Flags: m.Flags ^ maildir.FlagAnswered, Keywords: m.Keywords}}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

// settle waits until the server has applied every committed change of
// folder (a change made through the door reaches the sessions
// asynchronously: the test's sessions must all see it before they are
// compared).
func settle(t *testing.T, srv *Server, folder index.FolderID) {
	t.Helper()
	var f *index.Folder
	srv.o.Store.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		f, err = tx.Folder(folder)
		return err
	})
	b := srv.hub.lookup(folder)
	b.waitFor(srv.hub, func() bool { return b.applied >= f.LocalModSeq })
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applied < f.LocalModSeq {
		t.Fatalf("the server did not apply MODSEQ %d in %v", f.LocalModSeq, ownWait)
	}
}
