package pop3d

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// byLocalUID returns the rows of acct's INBOX in the maildrop's order.
func byLocalUID(t *testing.T, ts *testStore) []*index.Message {
	t.Helper()
	rows := ts.rows(t, "acct", "INBOX")
	slices.SortFunc(rows, func(a, b *index.Message) int { return int(a.LocalUID) - int(b.LocalUID) })
	return rows
}

// retr reads message n with RETR and returns it as sent (CRLF line ends,
// dot-stuffing undone), checking the size the status line announces.
func (c *conn) retr(n int, wantSize int) string {
	c.t.Helper()
	st := c.cmd(fmt.Sprintf("RETR %d", n), "+OK ")
	if want := fmt.Sprintf("+OK %d octets", wantSize); st != want {
		c.t.Errorf("RETR %d: %q, want %q", n, st, want)
	}
	return strings.Join(c.multi(), "\r\n") + "\r\n"
}

// TestUnauthenticated: before login, CAPA says what is offered and only
// the login commands are answered.
func TestUnauthenticated(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:1]...)
	srv := start(t, ts, nil)
	c := dial(t, srv.addr)
	c.cmd("CAPA", "+OK")
	caps := c.multi()
	for _, want := range []string{"TOP", "UIDL", "USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPA %q lacks %q", caps, want)
		}
	}
	if slices.Contains(caps, "STLS") {
		t.Errorf("CAPA %q offers STLS without a TLS config", caps)
	}
	for _, cmd := range []string{"STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "NOOP", "RSET", "PASS x"} {
		c.cmd(cmd, "-ERR")
	}
	c.cmd("QUIT", "+OK")
	c.closed()
	c = dial(t, srv.addr)
	c.cmd("APOP me 0123", "-ERR")
	c.cmd("XYZZY", "-ERR")
	c.login(testUser)
}

// TestSession walks through the whole protocol on one maildrop: what each
// command answers, messages byte for byte, TOP, DELE/RSET and the removal
// at QUIT.
func TestSession(t *testing.T) {
	ts := newTestStore(t)
	msgs := corpus(3000)
	ts.deliver(t, "acct", "INBOX", msgs...)
	srv := start(t, ts, nil)
	rows := byLocalUID(t, ts)

	c := dial(t, srv.addr)
	c.cmd("USER "+testUser, "+OK")
	c.cmd("PASS wrong", "-ERR [AUTH]")
	c.cmd("PASS "+testPass, "-ERR") // USER again first
	var total int
	for _, m := range msgs {
		total += len(wireForm(m)) - int(trailer(m))
	}
	if got, want := c.login(testUser), fmt.Sprintf("+OK %d messages (%d octets)", len(msgs), total); got != want {
		t.Errorf("login: %q, want %q", got, want)
	}
	if got, want := c.cmd("STAT", "+OK"), fmt.Sprintf("+OK %d %d", len(msgs), total); got != want {
		t.Errorf("STAT: %q, want %q", got, want)
	}
	c.cmd("LIST", "+OK")
	list := c.multi()
	c.cmd("UIDL", "+OK")
	uidl := c.multi()
	if len(list) != len(msgs) || len(uidl) != len(msgs) {
		t.Fatalf("LIST %q, UIDL %q: want %d lines each", list, uidl, len(msgs))
	}
	// Messages are numbered in arrival order: the corpus order.
	for i, m := range msgs {
		size := len(wireForm(m)) - int(trailer(m))
		if want := fmt.Sprintf("%d %d", i+1, size); list[i] != want {
			t.Errorf("LIST line %q, want %q", list[i], want)
		}
		if want := fmt.Sprintf("%d %s", i+1, rows[i].Key); uidl[i] != want {
			t.Errorf("UIDL line %q, want %q", uidl[i], want)
		}
		if got := c.cmd(fmt.Sprintf("LIST %d", i+1), "+OK"); got != "+OK "+list[i] {
			t.Errorf("LIST %d: %q, want %q", i+1, got, "+OK "+list[i])
		}
		if got := c.cmd(fmt.Sprintf("UIDL %d", i+1), "+OK"); got != "+OK "+uidl[i] {
			t.Errorf("UIDL %d: %q, want %q", i+1, got, "+OK "+uidl[i])
		}
		if got := c.retr(i+1, size); got != string(wireForm(m)) {
			t.Errorf("RETR %d:\n got %q\nwant %q", i+1, got, wireForm(m))
		}
	}
	for i, cmd := range []string{"LIST 0", "LIST 10", "LIST x", "LIST -1", "LIST 1 2", "RETR", "RETR 0", "TOP 1", "TOP 1 x", "STAT 1", "USER me", "STLS", "DELE 99", "UIDL 1234567890"} {
		c.cmd(cmd, "-ERR")
		if i%5 == 4 {
			c.cmd("NOOP", "+OK") // a good command resets the count of bad ones
		}
	}

	c.checkTop(msgs)

	// DELE marks, RSET unmarks, QUIT removes.
	c.cmd("DELE 1", "+OK")
	c.cmd("DELE 1", "-ERR")
	c.cmd("RETR 1", "-ERR")
	c.cmd("TOP 1 0", "-ERR")
	c.cmd("LIST 1", "-ERR")
	size1 := len(wireForm(msgs[0]))
	if got, want := c.cmd("STAT", "+OK"), fmt.Sprintf("+OK %d %d", len(msgs)-1, total-size1); got != want {
		t.Errorf("STAT after DELE: %q, want %q", got, want)
	}
	c.cmd("LIST", "+OK")
	if l := c.multi(); len(l) != len(msgs)-1 || l[0] != list[1] {
		t.Errorf("LIST after DELE 1: %q", l)
	}
	c.cmd("RSET", "+OK")
	if got, want := c.cmd("STAT", "+OK"), fmt.Sprintf("+OK %d %d", len(msgs), total); got != want {
		t.Errorf("STAT after RSET: %q, want %q", got, want)
	}
	c.cmd("DELE 2", "+OK")
	c.cmd("DELE 4", "+OK")
	c.cmd("NOOP", "+OK")
	if len(srv.ex.Calls()) != 0 {
		t.Fatal("messages removed before QUIT")
	}
	c.cmd("QUIT", "+OK")
	c.closed()
	if got, want := srv.ex.Calls(), [][]string{{rows[1].Key, rows[3].Key}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("expunged %q, want %q", got, want)
	}
	left := byLocalUID(t, ts)
	if len(left) != len(rows)-2 || left[1].Key != rows[2].Key || left[2].Key != rows[4].Key {
		t.Errorf("rows after QUIT: %d, want %d without the 2nd and 4th", len(left), len(rows)-2)
	}
}

// checkTop checks TOP on the corpus: the header, the empty line, then n
// body lines.
func (c *conn) checkTop(msgs []string) {
	c.t.Helper()
	tops := []struct {
		n, lines int
		want     string
	}{
		{2, 0, "Subject: dots\r\nMessage-ID: <2@x>\r\n\r\n"},
		{2, 2, "Subject: dots\r\nMessage-ID: <2@x>\r\n\r\n.\r\n..\r\n"},
		{3, 1, "Subject: crlf\r\nMessage-ID: <3@x>\r\n\r\nCRLF body\r\n"},
		{4, 5, string(wireForm(msgs[3]))},
		{8, 3, "Subject: only header\r\nMessage-ID: <8@x>\r\n"},
		{9, 2, "Subject: many lines\r\nMessage-ID: <9@x>\r\n\r\nline\r\nline\r\n"},
		{1, 999999999, string(wireForm(msgs[0]))},
	}
	for _, tc := range tops {
		c.cmd(fmt.Sprintf("TOP %d %d", tc.n, tc.lines), "+OK")
		if got := strings.Join(c.multi(), "\r\n") + "\r\n"; got != tc.want {
			c.t.Errorf("TOP %d %d:\n got %q\nwant %q", tc.n, tc.lines, got, tc.want)
		}
	}
}

// waitLogin logs in on a new connection, retrying while the maildrop is
// still held by a session that is ending.
func waitLogin(t *testing.T, addr, login string) *conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dial(t, addr)
		c.cmd("USER "+login, "+OK")
		l := c.cmd("PASS "+testPass, "")
		if strings.HasPrefix(l, "+OK") {
			return c
		}
		if !strings.HasPrefix(l, "-ERR [IN-USE]") || time.Now().After(deadline) {
			t.Fatalf("login: %q", l)
		}
		c.c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeleteOnlyAtQuit: messages marked on a connection that drops, or
// that the server's Close ends, are not removed.
func TestDeleteOnlyAtQuit(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:3]...)
	srv := start(t, ts, nil)

	c := dial(t, srv.addr)
	c.login(testUser)
	c.cmd("DELE 1", "+OK")
	c.cmd("DELE 2", "+OK")
	c.c.Close() // dropped

	c = waitLogin(t, srv.addr, testUser)
	if got := c.cmd("STAT", "+OK"); !strings.HasPrefix(got, "+OK 3 ") {
		t.Errorf("STAT after a dropped session: %q", got)
	}
	c.cmd("DELE 3", "+OK")
	srv.stop(t) // Close ends the session
	c.closed()
	if n := len(ts.rows(t, "acct", "INBOX")); n != 3 || len(srv.ex.Calls()) != 0 {
		t.Errorf("%d rows, expunges %q: want 3, none", n, srv.ex.Calls())
	}
}

// TestInUse: one session per maildrop; other accounts' maildrops are
// separate and named by "+account".
func TestInUse(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:2]...)
	ts.deliver(t, "other", "Archive", corpus(10)[2:5]...)
	srv := start(t, ts, func(o *Options) {
		o.Folder = func(a string) string {
			if a == "other" {
				return "Archive"
			}
			return ""
		}
	})
	a := dial(t, srv.addr)
	a.login(testUser)
	b := dial(t, srv.addr)
	b.cmd("USER "+testUser+"+acct", "+OK")
	b.cmd("PASS "+testPass, "-ERR [IN-USE]")
	if got := b.login(testUser + "+other"); got != fmt.Sprintf("+OK 3 messages (%d octets)", sizeOf(corpus(10)[2:5])) {
		t.Errorf("login to other: %q", got)
	}
	b.cmd("QUIT", "+OK")
	a.cmd("QUIT", "+OK")
	a.closed()

	// A maildrop whose folder does not exist yet is empty.
	srv = start(t, ts, func(o *Options) { o.Folder = func(string) string { return "Nowhere" } })
	d := dial(t, srv.addr)
	d.login(testUser)
	d.cmd("STAT", "+OK 0 0")
	d.cmd("QUIT", "+OK")
}

func TestSplitLogin(t *testing.T) {
	s := &Server{o: Options{Accounts: []string{"work", "home", "b+work", "x"}}}
	for _, tc := range []struct{ login, user, account string }{
		{"me", "me", "work"},
		{"me+home", "me", "home"},
		{"me+work", "me", "work"},
		{"me+b+work", "me", "b+work"}, // the longest account name
		{"me+x+home", "me+x", "home"},
		{"me+y", "me+y", "work"}, // no such account: all of it is the user name
		{"+home", "+home", "work"},
		{"", "", "work"},
		{"me+", "me+", "work"},
	} {
		if u, a := s.splitLogin(tc.login); u != tc.user || a != tc.account {
			t.Errorf("splitLogin(%q) = %q, %q; want %q, %q", tc.login, u, a, tc.user, tc.account)
		}
	}
}

func sizeOf(msgs []string) int {
	n := 0
	for _, m := range msgs {
		n += len(wireForm(m)) - int(trailer(m))
	}
	return n
}

// TestSnapshot: the maildrop is the folder as it was at login; a message
// removed since answers -ERR and its DELE has nothing to do.
func TestSnapshot(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:3]...)
	srv := start(t, ts, nil)
	c := dial(t, srv.addr)
	c.login(testUser)
	ts.deliver(t, "acct", "INBOX", corpus(10)[3])
	rows := byLocalUID(t, ts)
	if err := ts.st.Remove(context.Background(), rows[:1], nil); err != nil {
		t.Fatal(err)
	}
	if got := c.cmd("STAT", "+OK"); got != fmt.Sprintf("+OK 3 %d", sizeOf(corpus(10)[:3])) {
		t.Errorf("STAT: %q", got)
	}
	c.cmd("RETR 1", "-ERR")
	c.cmd("TOP 1 0", "-ERR")
	c.cmd("RETR 2", "+OK")
	c.multi()
	c.cmd("DELE 1", "+OK")
	c.cmd("QUIT", "+OK bye (0 messages removed)")
	c = waitLogin(t, srv.addr, testUser)
	c.cmd("STAT", "+OK 3 ")
	c.cmd("UIDL", "+OK")
	if got := c.multi(); fmt.Sprint(got) != fmt.Sprintf("[1 %s 2 %s 3 %s]", rows[1].Key, rows[2].Key, rows[3].Key) {
		t.Errorf("UIDL: %q", got)
	}
}

// TestQuitExpungeFails: a failed removal at QUIT is reported with
// [SYS/TEMP] and leaves the messages.
func TestQuitExpungeFails(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:2]...)
	srv := start(t, ts, nil)
	srv.ex.err = fmt.Errorf("disk on fire")
	c := dial(t, srv.addr)
	c.login(testUser)
	c.cmd("DELE 1", "+OK")
	c.cmd("QUIT", "-ERR [SYS/TEMP]")
	c.closed()
	if n := len(ts.rows(t, "acct", "INBOX")); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}

func plain(authzid, authcid, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00" + pass))
}

// TestAuthPlain: SASL PLAIN with an initial response and after a
// continuation, cancelled, malformed; three failures close the connection.
func TestAuthPlain(t *testing.T) {
	ts := newTestStore(t)
	ts.deliver(t, "acct", "INBOX", corpus(10)[:1]...)
	srv := start(t, ts, nil)

	c := dial(t, srv.addr)
	c.cmd("AUTH", "+OK")
	if got := c.multi(); fmt.Sprint(got) != "[PLAIN]" {
		t.Errorf("AUTH lists %q", got)
	}
	c.cmd("AUTH CRAM-MD5", "-ERR")
	c.cmd("AUTH PLAIN", "+ ")
	c.cmd("*", "-ERR")
	c.cmd("AUTH PLAIN "+plain("", testUser, "bad"), "-ERR [AUTH]")
	c.cmd("AUTH PLAIN "+plain("", testUser, testPass), "+OK 1 messages")
	c.cmd("AUTH PLAIN "+plain("", testUser, testPass), "-ERR")
	c.cmd("QUIT", "+OK")

	c = waitLogin(t, srv.addr, testUser) // the lock is free again
	c.cmd("QUIT", "+OK")

	c = dial(t, srv.addr)
	c.cmd("AUTH PLAIN", "+ ")
	c.cmd(plain(testUser, testUser, testPass), "+OK 1 messages")
	c.cmd("QUIT", "+OK")

	c = dial(t, srv.addr)
	c.cmd("AUTH PLAIN =", "-ERR")
	c.cmd("AUTH PLAIN "+plain("someone-else", testUser, testPass), "-ERR [AUTH]")
	c.cmd("AUTH PLAIN !!!", "-ERR")
	c.expect("-ERR") // too many failed logins
	c.closed()

	c = dial(t, srv.addr)
	for range 2 {
		c.cmd("USER x", "+OK")
		c.cmd("PASS y", "-ERR [AUTH]")
	}
	c.cmd("USER x", "+OK")
	c.cmd("PASS y", "-ERR [AUTH]")
	c.expect("-ERR")
	c.closed()
}

// TestLimits: an overlong line, a run of bad commands and a silent client
// each end the session.
func TestLimits(t *testing.T) {
	ts := newTestStore(t)
	srv := start(t, ts, nil)

	c := dial(t, srv.addr)
	c.send("USER " + strings.Repeat("x", maxLine) + "\r\n")
	c.expect("-ERR")
	c.closed()

	c = dial(t, srv.addr)
	for range maxBadCommands - 1 {
		c.cmd("BOGUS", "-ERR")
	}
	c.cmd("\x01", "-ERR")
	c.expect("-ERR too many")
	c.closed()

	srv = start(t, ts, nil, func(l *limits) { l.commandTimeout = 200 * time.Millisecond })
	c = dial(t, srv.addr)
	c.login(testUser)
	c.closed()

	// Sessions beyond maxSessions are turned away at once.
	srv = start(t, ts, nil, func(l *limits) { l.maxSessions = 2 })
	dial(t, srv.addr)
	dial(t, srv.addr)
	cn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	c = &conn{t: t, c: cn, br: bufio.NewReader(cn)}
	c.expect("-ERR [SYS/TEMP]")
	c.closed()
}

// waitIdle waits until the server has no connection left.
func (s *testServer) waitIdle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPipelining: commands sent in one write are all answered, in order.
func TestPipelining(t *testing.T) {
	ts := newTestStore(t)
	msgs := corpus(10)[:3]
	ts.deliver(t, "acct", "INBOX", msgs...)
	srv := start(t, ts, nil)
	c := dial(t, srv.addr)
	var b strings.Builder
	b.WriteString("USER " + testUser + "\r\nPASS " + testPass + "\r\nSTAT\r\n")
	for i := range msgs {
		fmt.Fprintf(&b, "RETR %d\r\nDELE %d\r\n", i+1, i+1)
	}
	b.WriteString("LIST\r\nQUIT\r\n")
	c.send(b.String())
	c.expect("+OK")
	c.expect("+OK 3 messages")
	c.expect("+OK 3 " + strconv.Itoa(sizeOf(msgs)))
	for i, m := range msgs {
		c.expect("+OK")
		if got := strings.Join(c.multi(), "\r\n") + "\r\n"; got != string(wireForm(m)) {
			t.Errorf("RETR %d: %q", i+1, got)
		}
		c.expect("+OK")
	}
	c.expect("+OK 0 messages")
	c.multi()
	c.expect("+OK bye (3 messages removed)")
	c.closed()
}

// TestNew: New takes the store's Expunge (index.Store's, from the local
// operations) and refuses options it cannot serve.
func TestNew(t *testing.T) {
	ts := newTestStore(t)
	auth := func(net.Addr, string, string) error { return nil }
	s, err := New(Options{Store: ts.st, Accounts: []string{"a"}, Auth: auth})
	if _, ok := any(ts.st).(expunger); ok {
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	} else if err == nil || !strings.Contains(err.Error(), "Expunge") {
		t.Fatalf("New with a store that cannot expunge: %v", err)
	}
	for _, o := range []Options{
		{Accounts: []string{"a"}, Auth: auth},
		{Store: ts.st, Accounts: []string{"a"}},
		{Store: ts.st, Auth: auth},
	} {
		if _, err := newServer(o, nopExpunger{}); err == nil {
			t.Errorf("newServer(%+v) did not fail", o)
		}
	}
	// Close before Serve: Serve returns at once.
	s, err = newServer(Options{Store: ts.st, Accounts: []string{"a"}, Auth: auth}, nopExpunger{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
}
