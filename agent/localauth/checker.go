package localauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAuthFailed is the answer to every refused login: wrong user name or
// password, an upstream password, or too many failures from the address.
// The endpoints turn it into their protocol's failure reply.
var ErrAuthFailed = errors.New("authentication failed")

// CheckerOptions configure a Checker.
type CheckerOptions struct {
	Username, Password string // the local login; neither may be ""
	// Upstream are the upstream accounts' passwords: refused whatever
	// the local login is. (Only their SHA-256 is kept.)
	Upstream []string
	// BaseDelay is the delay of an address's first failed login (default
	// 1 s); each further failure doubles it, up to MaxDelay (default 16 s).
	BaseDelay, MaxDelay time.Duration
	// Forget is how long after its last failure an address starts afresh
	// (default 15 minutes).
	Forget time.Duration
	Logger *slog.Logger
}

// maxAddrs bounds the addresses a Checker remembers.
const maxAddrs = 4096

// Checker checks the logins of the local endpoints. It is safe for
// concurrent use.
type Checker struct {
	user, pass [sha256.Size]byte
	upstream   [][sha256.Size]byte
	base, max  time.Duration
	forget     time.Duration
	log        *slog.Logger

	failures atomic.Int64

	mu    sync.Mutex
	addrs map[string]*penalty

	closeOnce sync.Once
	closed    chan struct{}

	// The clock, replaced by the tests.
	now   func() time.Time
	sleep func(time.Duration, <-chan struct{})
}

// penalty is what a Checker remembers of an address with failed logins.
type penalty struct {
	fails   int       // failed logins since the last success (or since forgotten)
	free    time.Time // when its next attempt may be checked
	refused bool      // an attempt was refused unchecked (logged once)
}

// NewChecker returns a Checker for the local login. It refuses a local
// password that is one of the upstream passwords.
func NewChecker(o CheckerOptions) (*Checker, error) {
	if o.Username == "" || o.Password == "" {
		return nil, errors.New("local login: user name and password must not be empty")
	}
	c := &Checker{
		user: sha256.Sum256([]byte(o.Username)), pass: sha256.Sum256([]byte(o.Password)),
		base: o.BaseDelay, max: o.MaxDelay, forget: o.Forget, log: o.Logger,
		addrs: map[string]*penalty{}, closed: make(chan struct{}),
		now: time.Now, sleep: sleepOrClose,
	}
	if c.base <= 0 {
		c.base = time.Second
	}
	if c.max <= 0 {
		c.max = 16 * time.Second
	}
	c.max = max(c.max, c.base)
	if c.forget <= 0 {
		c.forget = 15 * time.Minute
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, pw := range o.Upstream {
		if pw == "" {
			continue
		}
		h := sha256.Sum256([]byte(pw))
		if h == c.pass {
			return nil, errors.New("the local password is an upstream account's password: local clients must never learn it; set another [serve] password, or remove it and postfach generates one")
		}
		c.upstream = append(c.upstream, h)
	}
	return c, nil
}

func sleepOrClose(d time.Duration, closed <-chan struct{}) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-closed:
	}
}

// Failures returns how many logins the Checker refused.
func (c *Checker) Failures() int64 { return c.failures.Load() }

// Close ends every wait of a failed login at once (the endpoints are
// stopping); Checks after it still work, without delays.
func (c *Checker) Close() { c.closeOnce.Do(func() { close(c.closed) }) }

// Check returns nil when username and password are the local login, else
// ErrAuthFailed after the failure delay of the remote address. An
// upstream account's password is always refused.
func (c *Checker) Check(remote net.Addr, username, password string) error {
	key := addrKey(remote)
	wait, ok, first := c.reserve(key)
	if !ok {
		c.failures.Add(1)
		if first { // once per address, not once per attempt of a flood
			c.log.Warn("local logins refused unchecked: too many failed logins from this address; it must wait", "remote", key)
		}
		return ErrAuthFailed
	}
	c.sleep(wait, c.closed)

	u, p := sha256.Sum256([]byte(username)), sha256.Sum256([]byte(password))
	good := subtle.ConstantTimeCompare(u[:], c.user[:]) & subtle.ConstantTimeCompare(p[:], c.pass[:])
	upstream := 0
	for _, h := range c.upstream {
		upstream |= subtle.ConstantTimeCompare(p[:], h[:])
	}
	if good == 1 && upstream == 0 {
		c.mu.Lock()
		delete(c.addrs, key)
		c.mu.Unlock()
		return nil
	}

	c.failures.Add(1)
	c.mu.Lock()
	pen := c.penalty(key)
	pen.fails++
	d := c.delay(pen.fails)
	pen.free = later(pen.free, c.now().Add(d))
	fails := pen.fails
	c.mu.Unlock()
	if upstream == 1 {
		c.log.Warn("local login refused: the client sent an upstream account's password; local clients log in with the local credentials (postfach credentials)", "remote", key)
	} else {
		c.log.Info("local login failed", "remote", key, "failures", fails, "delay", d)
	}
	c.sleep(d, c.closed)
	return ErrAuthFailed
}

// reserve returns how long an attempt from key waits before it is
// checked, and reserves the turn after it; ok is false when the wait
// would exceed the longest delay (the attempt is refused unchecked), and
// first then tells the first such refusal of the address.
func (c *Checker) reserve(key string) (wait time.Duration, ok, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pen, found := c.addrs[key]
	if !found || pen.fails == 0 {
		return 0, true, false
	}
	now := c.now()
	if now.Sub(pen.free) > c.forget {
		delete(c.addrs, key)
		return 0, true, false
	}
	slot := later(now, pen.free)
	wait = slot.Sub(now)
	if wait > c.max {
		first, pen.refused = !pen.refused, true
		return 0, false, first
	}
	pen.refused = false
	// Should this attempt fail too, the next one waits for its delay.
	pen.free = slot.Add(c.delay(pen.fails + 1))
	return wait, true, false
}

// penalty returns the entry of key, making one (c.mu held).
func (c *Checker) penalty(key string) *penalty {
	if pen, ok := c.addrs[key]; ok {
		return pen
	}
	if len(c.addrs) >= maxAddrs {
		now := c.now()
		for k, pen := range c.addrs {
			if now.Sub(pen.free) > c.forget {
				delete(c.addrs, k)
			}
		}
		for k := range c.addrs { // still full: forget any one
			if len(c.addrs) < maxAddrs {
				break
			}
			delete(c.addrs, k)
		}
	}
	pen := &penalty{free: c.now()}
	c.addrs[key] = pen
	return pen
}

// delay is the wait after the n-th failure: BaseDelay doubled n-1 times,
// at most MaxDelay.
func (c *Checker) delay(n int) time.Duration {
	d := c.base
	for i := 1; i < n && d < c.max; i++ {
		d *= 2
	}
	return min(d, c.max)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// addrKey is the address whose failures count together: the IP address
// (an IPv6 one's /64), or the whole address when it is not TCP.
func addrKey(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		ip = net.ParseIP(host)
		if ip == nil {
			return host
		}
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
