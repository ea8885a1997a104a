package smtptest

import (
	"io"
	"net"
	"sync"
)

// proxy is the relay's front door: it listens on Relay.Port and passes
// every connection through, byte for byte, to Postfix's smtpd (a UNIX
// socket), so that Stop can close the port (and drop the open
// connections) without disturbing Postfix's queue and deliveries.
type proxy struct {
	target string // Postfix's smtpd socket

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// listen opens the front door on 127.0.0.1:port (0: a free port).
func (p *proxy) listen(port int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	ln, err := listenShared(port)
	if err != nil {
		return err
	}
	p.ln = ln
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
	}
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// port is the port it listens on (or last listened on).
func (p *proxy) port() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return 0
	}
	return p.ln.Addr().(*net.TCPAddr).Port
}

func (p *proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pass(c)
		}()
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// pass copies between the client c and a new connection to Postfix.
func (p *proxy) pass(c net.Conn) {
	if !p.track(c) {
		return
	}
	defer p.untrack(c)
	up, err := net.Dial("unix", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

// close closes the front door and every connection through it, and waits
// for its goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
