package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// cutProxy forwards a local port to a server; down closes the port and
// cuts every connection, up listens on the same port again.
type cutProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	wg           sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{target: target, addr: "127.0.0.1:0"}
	p.up(t)
	p.addr = p.ln.Addr().String()
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *cutProxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *cutProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// openFDs counts the process's open file descriptors but the index's
// (its connection pool grows and shrinks with the load: bounded, closed
// with the store), after two garbage collections: the pipes Go's splice
// keeps in a sync.Pool (the test proxy's io.Copy between TCP
// connections) are closed by finalizers.
func openFDs(t *testing.T) int {
	runtime.GC()
	runtime.GC()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if !strings.Contains(l, "/.postfach/index.db") {
			n++
		}
	}
	return n
}

// settle waits until f() <= want, for goroutines and descriptors winding
// down, and returns the last value.
func settle(f func() int, want int) int {
	n := f()
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = f() {
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// TestRunNoLeaks: an account's service that goes offline and comes back,
// and is restarted by config reloads, again and again, leaves no
// goroutine, file descriptor or connection behind; Run's end leaves none
// of its own.
func TestRunNoLeaks(t *testing.T) {
	d := testenv.StartDovecot(t)
	d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(131, 12, corpus.Options{}))
	proxy := newCutProxy(t, d.IMAPAddr())
	pass, _ := d.Password(testenv.DefaultUser.Name)
	dir := t.TempDir()
	file := filepath.Join(dir, "config.toml")
	writeCfg := func(poll string) *configs.Config {
		host, port, _ := net.SplitHostPort(proxy.addr)
		doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = %q\nport = %s\ntls = \"none\"\nusername = %q\npassword = %q\npoll_interval = %q\n",
			filepath.Join(dir, "store"), host, port, testenv.DefaultUser.Name, pass, poll)
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := configs.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := writeCfg("10m")
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	baseList := listFDs()
	a, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan *configs.Config)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, RunOptions{Reload: reload}) }()

	syncNow := func(wantErr string) {
		t.Helper()
		reports, err := a.SyncThroughAgent(ctx, nil)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("sync through the agent: %v (reports %+v), want error %q", err, reports, wantErr)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, err := a.AgentStatus(ctx); err == nil && len(st.Accounts) == 1 && st.Accounts[0].State == StateIdle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not get idle in 30 s")
		}
	}
	syncNow("")
	liveG, liveFD := runtime.NumGoroutine(), openFDs(t)
	liveList := listFDs()

	for i := range 4 {
		proxy.down()
		syncNow("refused")
		proxy.up(t)
		syncNow("")
		reload <- writeCfg(fmt.Sprintf("%dm", 11+i)) // a changed account: its service restarts
		syncNow("")
	}
	if g := settle(runtime.NumGoroutine, liveG); g > liveG {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after 4 outages and restarts, %d before:\n%s", g, liveG, buf[:runtime.Stack(buf, true)])
	}
	if fds := settle(func() int { return openFDs(t) }, liveFD); fds > liveFD {
		t.Errorf("%d open files after 4 outages and restarts, %d before:\n%s\nbefore:\n%s", fds, liveFD, listFDs(), liveList)
	}

	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	a.Close()
	if g := settle(runtime.NumGoroutine, baseG); g > baseG {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Run returned and the store was closed, %d before it was opened:\n%s", g, baseG, buf[:runtime.Stack(buf, true)])
	}
	if fds := settle(func() int { return openFDs(t) }, baseFD); fds > baseFD {
		t.Errorf("%d open files after Run returned and the store was closed, %d before it was opened:\n%s\nbefore:\n%s", fds, baseFD, listFDs(), baseList)
	}
}

func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}
