package imapsync_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

// rewriteProxy is a hostile server: it forwards connections to a real
// one (Dovecot) and passes each line the server sends (literals excluded)
// through rewrite, so that a test can make the server lie.
type rewriteProxy struct {
	ln      net.Listener
	rewrite func(line string) string
	wg      sync.WaitGroup
}

func startRewriteProxy(t *testing.T, upstream string, rewrite func(string) string) *rewriteProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rewriteProxy{ln: ln, rewrite: rewrite}
	var mu sync.Mutex
	var conns []net.Conn
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer p.wg.Done(); p.down(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *rewriteProxy) Addr() string { return p.ln.Addr().String() }

// down copies the server's stream to the client line by line, rewriting
// each line and copying literals ({n} at a line's end) as they are.
func (p *rewriteProxy) down(dst io.Writer, src io.Reader) {
	br := bufio.NewReader(src)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		out := p.rewrite(line)
		if _, err := io.WriteString(dst, out); err != nil {
			return
		}
		if n, ok := literalAt(line); ok {
			if _, err := io.CopyN(dst, br, n); err != nil {
				return
			}
		}
	}
}

// literalAt returns n if line ends with "{n}\r\n".
func literalAt(line string) (int64, bool) {
	s := strings.TrimSuffix(line, "\r\n")
	if !strings.HasSuffix(s, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[i+1:len(s)-1], 10, 64)
	return n, err == nil
}

// imapGoroutines returns the stacks of the goroutines running go-imap's
// client code (readers of connections, Close waiting for one).
func imapGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "imapclient.") {
			out = append(out, g)
		}
	}
	return out
}

// noIMAPGoroutinesLeft waits (up to 10 s) until no goroutine of go-imap's
// client is left, and fails the test with their stacks if some stay.
func noIMAPGoroutinesLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := imapGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of go-imap stay behind:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBodyLargerThanAnnounced: a server whose body literal is larger than
// its RFC822.SIZE allows (past the slack), or larger than max_size, gets
// that message refused: not stored, not even in part (no file in cur/,
// new/ or tmp/, no row), reported as the folder's error naming the UID,
// while every other message of the folder (before and after it in the
// same FETCH) is stored byte for byte. A size a little off (within the
// slack, as Exchange's) is stored. No goroutine of go-imap stays behind
// the aborted FETCH.
func TestBodyLargerThanAnnounced(t *testing.T) {
	const bigSize = 300_000
	for _, tc := range []struct {
		name    string
		lie     func(real int) int // the RFC822.SIZE the server claims for the big message
		maxSize int64
		stored  bool
	}{
		{name: "lie", lie: func(int) int { return 1000 }},
		{name: "max_size", lie: func(int) int { return 100_000 }, maxSize: 200_000},
		{name: "inexact", lie: func(real int) int { return real - real/20 }, stored: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			msgs := corpus.Generate(7, 5, corpus.Options{})
			big := corpus.At(7, 99, corpus.Options{BigAttachmentEvery: 1, BigAttachmentSize: bigSize})
			// small, small, big, small, small: one FETCH, the big one inside
			all := append(append(append([]corpus.Message{}, msgs[:2]...), big), msgs[2:]...)
			for i := range all {
				all[i].Folder, all[i].Flags = "INBOX", nil
			}
			e.d.Seed(t, testenv.DefaultUser.Name, all)
			real := len(big.Raw)
			from := "RFC822.SIZE " + strconv.Itoa(real)
			to := "RFC822.SIZE " + strconv.Itoa(tc.lie(real))
			p := startRewriteProxy(t, e.d.IMAPAddr(), func(line string) string {
				return strings.Replace(line, from, to, 1)
			})
			e.opts = func(o *imapsync.Options) {
				o.Endpoint.Addr = p.Addr()
				o.MaxSize = tc.maxSize
				o.Connections = 1
			}
			res, _, err := e.trySync(false)
			noIMAPGoroutinesLeft(t)
			server := e.serverMsgs("INBOX")
			local := e.localMsgs("INBOX")
			if tc.stored {
				if err != nil {
					t.Fatalf("sync: %v", err)
				}
				if err := sameMsgs("INBOX", server, local); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || res == nil || len(res.Folders) == 0 {
				t.Fatalf("sync = %v, %v; want the folder's error", res, err)
			}
			ferr := res.Folders[0].Err
			if ferr == nil || !strings.Contains(ferr.Error(), "not stored") || !strings.Contains(ferr.Error(), "UID 3") {
				t.Fatalf("INBOX error = %v; want UID 3 not stored", ferr)
			}
			if strings.ContainsAny(ferr.Error(), "\n\r") {
				t.Errorf("error is not one line: %q", ferr)
			}
			delete(server, big.MessageID)
			if err := sameMsgs("INBOX", server, local); err != nil {
				t.Fatal(err)
			}
			dir, err := maildir.FolderDir(e.root, "acct", "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"tmp", "new", "cur"} {
				ents, _ := os.ReadDir(filepath.Join(dir, sub))
				for _, en := range ents {
					raw, _ := os.ReadFile(filepath.Join(dir, sub, en.Name()))
					if bytes.Contains(raw, []byte(big.MessageID)) || sub == "tmp" {
						t.Errorf("%s/%s left behind (%d bytes)", sub, en.Name(), len(raw))
					}
				}
			}
			// The next run reports it again and stores nothing more.
			if _, _, err := e.trySync(false); err == nil || !strings.Contains(err.Error(), "not stored") {
				t.Fatalf("second sync: %v; want the refusal again", err)
			}
			noIMAPGoroutinesLeft(t)
		})
	}
}

// TestSlowLiteral: a large message on a slow link. go-imap gives a whole
// literal one deadline; here the link stalls four times in the middle of
// the body, each stall shorter than the literal timeout but all of them
// longer: the download must succeed, because the deadline moves with the
// bytes that arrive. A stall longer than the timeout must still fail the
// run, well before go-imap's 5 minutes.
func TestSlowLiteral(t *testing.T) {
	const (
		bigSize = 400_000
		idle    = 1500 * time.Millisecond
		stall   = 500 * time.Millisecond
	)
	for _, tc := range []struct {
		name   string
		stalls []time.Duration
		ok     bool
	}{
		{"steady", []time.Duration{stall, stall, stall, stall}, true},
		{"dead", []time.Duration{3 * idle}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			big := corpus.At(9, 1, corpus.Options{BigAttachmentEvery: 1, BigAttachmentSize: bigSize})
			big.Folder, big.Flags = "INBOX", nil
			e.d.Seed(t, testenv.DefaultUser.Name, []corpus.Message{big})
			fp, err := faultproxy.Start(e.d.IMAPAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer fp.Close()
			for i, d := range tc.stalls {
				fp.Add(faultproxy.Fault{Name: "stall" + strconv.Itoa(i), Dir: faultproxy.Down, Literal: bigSize,
					After: int64(50_000 + i*80_000), Action: faultproxy.Stall, For: d, Max: 1})
			}
			e.opts = func(o *imapsync.Options) {
				o.Endpoint.Addr = fp.Addr()
				o.Endpoint.LiteralTimeout = idle
				o.Connections = 1
				o.DialAttempts = 1
			}
			begin := time.Now()
			_, _, err = e.trySync(false)
			took := time.Since(begin)
			if tc.ok && err != nil {
				t.Fatalf("sync over a slow link (took %v): %v", took, err)
			}
			if fired := len(fp.Fired()); fired != len(tc.stalls) {
				t.Fatalf("%d stalls fired, want %d", fired, len(tc.stalls))
			}
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "timed out") {
					t.Fatalf("sync after a %v stall = %v; want a timeout", tc.stalls[0], err)
				}
				if took > 3*idle+10*time.Second {
					t.Errorf("the run took %v", took)
				}
				if local := e.localMsgs("INBOX"); len(local) != 0 {
					t.Errorf("%d messages stored from a dead link", len(local))
				}
				return
			}
			if took < time.Duration(len(tc.stalls))*stall {
				t.Errorf("the run took %v, less than its stalls", took)
			}
			if err := sameMsgs("INBOX", e.serverMsgs("INBOX"), e.localMsgs("INBOX")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAbortMidLiteral: a run cancelled while a body is coming (the link
// hangs in the middle of it) ends at once and leaves no goroutine of
// go-imap behind; nothing of the body is stored.
func TestAbortMidLiteral(t *testing.T) {
	e := newEnv(t)
	big := corpus.At(11, 1, corpus.Options{BigAttachmentEvery: 1, BigAttachmentSize: 300_000})
	big.Folder, big.Flags = "INBOX", nil
	e.d.Seed(t, testenv.DefaultUser.Name, []corpus.Message{big})
	fp, err := faultproxy.Start(e.d.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	fp.Add(faultproxy.Fault{Dir: faultproxy.Down, Literal: 300_000, Action: faultproxy.Hang, Max: 1})
	pass, _ := e.d.Password(testenv.DefaultUser.Name)
	_, err = faultproxy.Within(t, 2*time.Second, func(ctx context.Context) (*imapsync.Result, error) {
		return imapsync.Sync(ctx, imapsync.Options{Account: "acct", Root: e.root, Index: e.store, Connections: 1,
			Endpoint: imapconn.Endpoint{Addr: fp.Addr(), TLS: "none", Username: testenv.DefaultUser.Name, Password: pass}})
	})
	if err == nil {
		t.Fatal("a run cancelled mid-body succeeded")
	}
	if len(fp.Fired()) == 0 {
		t.Fatal("the hang did not fire")
	}
	noIMAPGoroutinesLeft(t) // with the stream still held by the proxy
	if local := e.localMsgs("INBOX"); len(local) != 0 {
		t.Errorf("%d messages stored", len(local))
	}
}
