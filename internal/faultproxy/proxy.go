// Package faultproxy is a TCP proxy for tests that breaks connections on
// command. It sits between a client (postfach) and a real server (Dovecot
// IMAP or POP3) on 127.0.0.1 and forwards bytes both ways until a Fault
// says otherwise: it drops the connection at a chosen byte of either
// direction, resets it, stalls it for a while or for good, or runs a hook
// (say, killing the server's processes) with the stream held at that
// point. Tests aim at a protocol phase by position: a byte offset, the end
// of a pattern ("FETCH", "* 3 FETCH", "RETR", "+OK", "{123}\r\n") plus K
// bytes, or a point inside the first literal of at least some size (IMAP
// "{n}" or "{n+}" followed by CRLF: a cut there truncates the literal).
//
// # Positions
//
// Every connection has two byte streams, Up (client to server) and Down
// (server to client), counted from 0. A fault fires at position P of its
// stream: the bytes before P are delivered, then the action happens
// before byte P is. Faults name the connection they apply to by its number
// in accept order (1, 2, ...), or 0 for every connection; a fault fires at
// most once per connection. A fault added while a connection is under way
// applies to it from the bytes that follow (an At already passed fires at
// once).
//
// # Actions
//
//	Drop   both connections are closed the orderly way (FIN both ways);
//	       what either side sends afterwards is read and thrown away, so
//	       each side sees the end of its stream, not a reset
//	Reset  both connections are closed with RST (SO_LINGER 0)
//	Stall  the stream is held for Fault.For, then goes on
//	Hang   the stream is held until the connection ends (a side closes,
//	       or Close); then both sides are closed
//	Call   Fault.Fn runs with the stream held, then the stream goes on
//
// # Records
//
// The proxy records every fault that fired (Fired, Count) and every
// literal whose stream ended before its announced size had been delivered
// (Truncations), so a test can assert that a fault really landed where it
// aimed. Literal tracking reads the streams as IMAP: it is meaningless for
// POP3 (a message body may hold text that looks like a literal), where
// only patterns and byte offsets should be used.
//
// # Running cases
//
// RunCases runs a matrix of fault cases as subtests, several at a time,
// and Within runs one faulted operation under a short context, failing
// the test with the goroutines' stacks if the operation outlives it.
//
// The proxy is test harness code: it trusts its faults, keeps everything
// in memory, and listens on 127.0.0.1 only.
package faultproxy

import (
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from Addr to an upstream address. It is safe
// for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	// ReadBuffer, when set before the first connection, is the socket
	// receive buffer (SO_RCVBUF) of the proxy's upstream connections: a
	// small one keeps most of a large message in the server while the
	// proxy holds the stream, so that killing the server really cuts it.
	ReadBuffer int

	mu     sync.Mutex
	faults []*Fault
	fired  []Event
	times  map[*Fault]int // firings per fault
	truncs []Truncation
	nconn  int
	live   map[*conn]bool
	closed bool

	wg sync.WaitGroup
}

// Start listens on a free 127.0.0.1 port and forwards every connection to
// upstream ("host:port").
func Start(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, live: map[*conn]bool{}, times: map[*Fault]int{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Add arms faults.
func (p *Proxy) Add(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range faults {
		f := faults[i]
		p.faults = append(p.faults, &f)
	}
}

// Clear disarms every fault; connections under way go on unharmed (a
// stream held by Stall or Hang stays held until its time is up or its
// connection ends).
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Fired returns the faults that fired, in order.
func (p *Proxy) Fired() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.fired...)
}

// Count returns how often the fault with this name (Fault.String) fired.
func (p *Proxy) Count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.countName(name)
}

// CountWithin is Count once the fault named name fired, or once within passed:
// a fault on an answer nobody waits for (LOGOUT's, see imapconn.Logout)
// may fire after the run returned.
func (p *Proxy) CountWithin(name string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := p.Count(name)
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *Proxy) countName(name string) int {
	n := 0
	for _, e := range p.fired {
		if e.Fault == name {
			n++
		}
	}
	return n
}

// Truncations returns the literals cut short so far.
func (p *Proxy) Truncations() []Truncation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Truncation(nil), p.truncs...)
}

// Conns returns the number of connections accepted so far.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nconn
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines (a running Fault.Fn included) to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	live := make([]*conn, 0, len(p.live))
	for c := range p.live {
		live = append(live, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range live {
		c.teardown(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			cc.Close()
			return
		}
		p.nconn++
		c := &conn{p: p, num: p.nconn, client: cc.(*net.TCPConn), done: make(chan struct{}), half: make(chan struct{})}
		p.live[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run()
	}
}
