package smtptest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
)

// policyServer is a Postfix policy service (SMTPD_POLICY_README) that
// answers RCPT TO for the recipients set by Reject, and DUNNO for the rest.
type policyServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	codes map[string]int // lower-case address -> reply code
	conns map[net.Conn]bool
}

func startPolicyServer() (*policyServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &policyServer{ln: ln, codes: map[string]int{}, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
				c.Close()
			}()
		}
	}()
	return p, nil
}

func (p *policyServer) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *policyServer) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *policyServer) set(addr string, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if code == 0 {
		delete(p.codes, strings.ToLower(addr))
		return
	}
	p.codes[strings.ToLower(addr)] = code
}

func (p *policyServer) serve(c net.Conn) {
	sc := bufio.NewScanner(c)
	attrs := map[string]string{}
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			if k, v, ok := strings.Cut(line, "="); ok {
				attrs[k] = v
			}
			continue
		}
		action := "DUNNO"
		if attrs["protocol_state"] == "RCPT" {
			rcpt := attrs["recipient"]
			p.mu.Lock()
			code := p.codes[strings.ToLower(rcpt)]
			p.mu.Unlock()
			if code != 0 {
				action = fmt.Sprintf("%d %d.7.1 <%s>: rejected by smtptest", code, code/100, sanitize(rcpt))
			}
		}
		if _, err := fmt.Fprintf(c, "action=%s\n\n", action); err != nil {
			return
		}
		clear(attrs)
	}
}
