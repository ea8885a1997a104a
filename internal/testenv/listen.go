package testenv

import (
	"net"
	"sync"
	"testing"
)

// Serve listens on a loopback port for the test's lifetime and hands each
// connection to handle on a goroutine of its own; it returns the address.
// The listener and every connection are closed when the test ends.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// SilentServer is a server that accepts connections and never writes a
// byte (a web server's port, to a mail client): it returns the address.
func SilentServer(t testing.TB) string {
	return Serve(t, func(net.Conn) {})
}
