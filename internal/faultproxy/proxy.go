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
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Dir is a direction of a proxied connection.
type Dir int

const (
	Up   Dir = iota // client to server
	Down            // server to client
)

func (d Dir) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Action is what a fault does when it fires.
type Action int

const (
	Drop  Action = iota // close both sides with FIN
	Reset               // close both sides with RST
	Stall               // hold the stream for Fault.For
	Hang                // hold the stream until the connection ends
	Call                // run Fault.Fn with the stream held
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	case Hang:
		return "hang"
	case Call:
		return "call"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Fault is one planned failure. Exactly one of At, Pattern and Literal
// places it (At when the other two are empty).
type Fault struct {
	Name string // for the records; default a description of the fault
	Conn int    // connection number (1 = the first accepted); 0: every connection
	Dir  Dir
	// Max > 0 is how often the fault may fire in all: with Conn 0 and Max
	// 1 it hits whichever connection reaches its position first.
	Max int

	// At is a byte offset in the stream.
	At int64
	// Pattern places the fault After bytes past the end of its Count-th
	// occurrence (Count 0 means 1).
	Pattern string
	Count   int
	// Literal > 0 places the fault inside the first literal of at least
	// Literal bytes: After bytes into its content, or in its middle when
	// After is 0 (an After past its end is its last byte).
	Literal int64
	After   int64

	Action Action
	For    time.Duration // Stall
	Fn     func()        // Call
}

func (f *Fault) String() string {
	if f.Name != "" {
		return f.Name
	}
	var where string
	switch {
	case f.Pattern != "":
		where = fmt.Sprintf("%q#%d+%d", f.Pattern, max(f.Count, 1), f.After)
	case f.Literal > 0:
		where = fmt.Sprintf("literal>=%d+%d", f.Literal, f.After)
	default:
		where = fmt.Sprintf("byte %d", f.At)
	}
	return fmt.Sprintf("%s conn %d %s at %s", f.Action, f.Conn, f.Dir, where)
}

// Event is a fault that fired.
type Event struct {
	Fault  string // Fault.String()
	Conn   int
	Dir    Dir
	Pos    int64 // position in the stream
	Action Action
	Time   time.Time
}

// Truncation is a literal whose stream ended (by a fault, or because a
// side closed) before all of it was delivered.
type Truncation struct {
	Conn      int
	Dir       Dir
	Size      int64 // announced by {n}
	Delivered int64 // bytes of it that were forwarded
}

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

// conn is one proxied connection.
type conn struct {
	p              *Proxy
	num            int
	client, server *net.TCPConn
	done           chan struct{} // closed by teardown

	mu      sync.Mutex
	ended   bool
	dropped bool          // Drop fired: read and discard until the peers close
	halves  int           // directions that reached their end
	half    chan struct{} // closed when the first direction ends
}

func (c *conn) run() {
	defer c.p.wg.Done()
	defer func() {
		c.p.mu.Lock()
		delete(c.p.live, c)
		c.p.mu.Unlock()
	}()
	d := net.Dialer{Timeout: 10 * time.Second}
	sc, err := d.Dial("tcp", c.p.upstream)
	if err != nil {
		c.client.Close()
		close(c.done)
		return
	}
	c.server = sc.(*net.TCPConn)
	if rb := c.p.ReadBuffer; rb > 0 {
		c.server.SetReadBuffer(rb)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(Up, c.client, c.server) }()
	go func() { defer wg.Done(); c.pump(Down, c.server, c.client) }()
	wg.Wait()
	c.teardown(false)
}

// teardown ends the connection: both sides closed, with RST when reset.
func (c *conn) teardown(reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.ended = true
	for _, s := range []*net.TCPConn{c.client, c.server} {
		if s == nil {
			continue
		}
		if reset {
			s.SetLinger(0)
		}
		s.Close()
	}
	close(c.done)
}

// drop half-closes both sides (FIN) and lets the pumps discard what
// follows until each peer closes.
func (c *conn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.dropped {
		return
	}
	c.dropped = true
	c.client.CloseWrite()
	c.server.CloseWrite()
}

func (c *conn) isDropped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// armed is a fault's matching state on one stream of one connection.
type armed struct {
	f     *Fault
	pos   int64 // firing position; -1 while unknown
	seen  int   // pattern occurrences so far
	fired bool
}

// stream is the state of one direction of a connection.
type stream struct {
	c   *conn
	dir Dir
	off int64 // bytes delivered so far
	lit literalScanner
	// the literal being delivered, for Truncations
	litStart, litSize int64
	ended             bool   // a truncation was recorded
	tail              []byte // last bytes scanned, for patterns across reads
	armed             map[*Fault]*armed
}

func (c *conn) pump(dir Dir, src, dst *net.TCPConn) {
	s := &stream{c: c, dir: dir, armed: map[*Fault]*armed{}, litStart: -1}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if c.isDropped() {
				continue // thrown away; the peers were told the end
			}
			if !s.deliver(buf[:n], dst) {
				s.truncated()
				if c.isDropped() {
					s.discard(src)
				} else {
					c.teardown(false)
				}
				return
			}
		}
		if err != nil {
			if c.isDropped() {
				return
			}
			s.truncated()
			if errors.Is(err, io.EOF) {
				// Pass the end on and let the other direction finish.
				dst.CloseWrite()
				c.halfDone()
				return
			}
			c.teardown(true) // a reset (or the end of the connection)
			return
		}
	}
}

// halfDone records that one direction ended; the second ends the
// connection.
func (c *conn) halfDone() {
	c.mu.Lock()
	c.halves++
	n := c.halves
	if n == 1 {
		close(c.half)
	}
	c.mu.Unlock()
	if n == 2 {
		c.teardown(false)
	}
}

// discard reads and throws away until src ends (after a Drop).
func (s *stream) discard(src *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := src.Read(buf); err != nil {
			s.c.teardown(false)
			return
		}
	}
}

// truncated records a literal under way when the stream ends.
func (s *stream) truncated() {
	if s.ended || s.litStart < 0 || s.off >= s.litStart+s.litSize {
		return
	}
	s.ended = true
	p := s.c.p
	p.mu.Lock()
	p.truncs = append(p.truncs, Truncation{Conn: s.c.num, Dir: s.dir, Size: s.litSize, Delivered: s.off - s.litStart})
	p.mu.Unlock()
}

// faults returns the faults that apply to this stream now.
func (s *stream) faults() []*armed {
	p := s.c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*armed
	for _, f := range p.faults {
		if f.Dir != s.dir || (f.Conn != 0 && f.Conn != s.c.num) {
			continue
		}
		if f.Max > 0 && p.times[f] >= f.Max {
			continue
		}
		a := s.armed[f]
		if a == nil {
			a = &armed{f: f, pos: -1}
			if f.Pattern == "" && f.Literal <= 0 {
				a.pos = max(f.At, s.off)
			}
			s.armed[f] = a
		}
		if !a.fired {
			out = append(out, a)
		}
	}
	return out
}

// deliver forwards b (which follows s.off in the stream) to dst, firing
// the faults placed within it. It returns false when the stream must end.
func (s *stream) deliver(b []byte, dst *net.TCPConn) bool {
	faults := s.faults()
	end := s.off + int64(len(b))
	// Scan the new bytes: literal starts and pattern ends.
	lits := s.lit.feed(b, s.off)
	for _, a := range faults {
		switch {
		case a.f.Pattern != "" && a.pos < 0:
			s.findPattern(a, b)
		case a.f.Literal > 0 && a.pos < 0:
			for _, l := range lits {
				if l.size >= a.f.Literal {
					at := a.f.After
					if at <= 0 {
						at = l.size / 2
					}
					a.pos = l.start + min(at, l.size-1)
					break
				}
			}
		}
	}
	s.keepTail(b)
	for {
		// The earliest fault placed within what is left.
		var next *armed
		for _, a := range faults {
			if !a.fired && a.pos >= 0 && a.pos <= end && (next == nil || a.pos < next.pos) {
				next = a
			}
		}
		if next == nil {
			return s.write(dst, b, end, lits)
		}
		cut := max(next.pos, s.off)
		k := cut - s.off
		if !s.write(dst, b[:k], cut, lits) {
			return false
		}
		b = b[k:]
		next.fired = true
		if !s.fire(next.f, cut) {
			return false
		}
	}
}

// write forwards b, which ends at stream position to.
func (s *stream) write(dst *net.TCPConn, b []byte, to int64, lits []literal) bool {
	if len(b) > 0 {
		if _, err := dst.Write(b); err != nil {
			s.c.teardown(true)
			return false
		}
	}
	for _, l := range lits {
		if l.start <= to {
			s.litStart, s.litSize = l.start, l.size
		}
	}
	s.off = to
	return true
}

// fire carries out a fault at position pos; false: the stream ends.
func (s *stream) fire(f *Fault, pos int64) bool {
	p := s.c.p
	p.mu.Lock()
	if f.Max > 0 && p.times[f] >= f.Max {
		p.mu.Unlock()
		return true // another connection took its last firing
	}
	p.times[f]++
	p.fired = append(p.fired, Event{Fault: f.String(), Conn: s.c.num, Dir: s.dir, Pos: pos, Action: f.Action, Time: time.Now()})
	p.mu.Unlock()
	switch f.Action {
	case Drop:
		s.truncated() // recorded before a side can see the end
		s.c.drop()
		return false
	case Reset:
		s.truncated()
		s.c.teardown(true)
		return false
	case Stall:
		t := time.NewTimer(f.For)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-s.c.done:
			return false
		}
	case Hang:
		select {
		case <-s.c.done:
		case <-s.c.half: // a side left: nobody waits for this stream
		}
		return false
	case Call:
		if f.Fn != nil {
			f.Fn()
		}
		return true
	}
	return true
}

// findPattern looks for a's pattern in the bytes scanned before (the tail)
// and b, setting a.pos once the Count-th occurrence is found.
func (s *stream) findPattern(a *armed, b []byte) {
	pat := []byte(a.f.Pattern)
	want := max(a.f.Count, 1)
	hay := append(append([]byte(nil), s.tail...), b...)
	base := s.off - int64(len(s.tail)) // stream position of hay[0]
	// Only occurrences ending in b are new: the others were counted
	// before.
	for i := max(0, len(s.tail)-len(pat)+1); i+len(pat) <= len(hay); i++ {
		if string(hay[i:i+len(pat)]) != a.f.Pattern {
			continue
		}
		a.seen++
		if a.seen == want {
			a.pos = base + int64(i+len(pat)) + a.f.After
			return
		}
	}
}

// maxPattern bounds the length of a pattern (the tail kept for patterns
// split across reads).
const maxPattern = 256

func (s *stream) keepTail(b []byte) {
	t := append(s.tail, b...)
	if len(t) > maxPattern-1 {
		t = t[len(t)-(maxPattern-1):]
	}
	s.tail = append([]byte(nil), t...)
}
