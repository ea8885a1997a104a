package main

import (
	"net"
	"strconv"
	"sync"
	"time"
)

// latencyProxy forwards TCP connections to a server with every byte
// delayed by half a round-trip time in each direction, as a network link
// of that latency and no bandwidth limit would: what a mail client meets
// on the way to its provider, where the bench's Dovecot is on the same
// machine (twoway -rtt). It runs in the bench's process and so takes some
// of the machine's CPU, for both peers alike.
type latencyProxy struct {
	ln    net.Listener
	to    string
	delay time.Duration // one way
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// startLatencyProxy listens on 127.0.0.1 and forwards each connection to
// the server at to with a round-trip time of rtt added.
func startLatencyProxy(to string, rtt time.Duration) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{ln: ln, to: to, delay: rtt / 2, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// addr is where clients connect.
func (p *latencyProxy) addr() (host string, port int) {
	h, ps, _ := net.SplitHostPort(p.ln.Addr().String())
	port, _ = strconv.Atoi(ps)
	return h, port
}

// via returns up with the proxy in the server's place.
func (p *latencyProxy) via(up upstream) upstream {
	up.Host, up.Port = p.addr()
	return up
}

// close stops listening, cuts the connections and waits for their
// goroutines.
func (p *latencyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *latencyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// track adds the connections to those close cuts.
func (p *latencyProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

// untrack closes the connections and forgets them.
func (p *latencyProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// handle forwards one connection both ways until both are done.
func (p *latencyProxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.to)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, server)
	defer p.untrack(client, server)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
}

// delayed is what one read gave, and when it may be written on.
type delayed struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each read written delay after it was read; at
// src's end, once all is written, it closes dst for writing. At most
// pipeDepth reads wait at once: beyond, src is not read (TCP's own flow
// control holds the sender back), so memory stays bounded.
func (p *latencyProxy) pipe(dst, src net.Conn) {
	q := make(chan delayed, pipeDepth)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- delayed{b[:n], time.Now().Add(p.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for d := range q {
		if failed {
			continue // drained, so that the reader ends
		}
		time.Sleep(time.Until(d.due))
		if _, err := dst.Write(d.b); err != nil {
			failed = true
			src.Close() // the reader's next Read fails
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok && !failed {
		tc.CloseWrite()
	}
}

// pipeDepth bounds the reads a pipe holds: 64 KiB each.
const pipeDepth = 256
