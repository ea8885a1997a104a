package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

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
