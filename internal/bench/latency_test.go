package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestLatencyProxy: through the proxy, a round trip takes at least its
// RTT, bytes arrive intact and in order both ways, and a client's end of
// writing reaches the server (the echo server's end comes back).
func TestLatencyProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c) // echo until the client stops writing
			}()
		}
	}()
	const rtt = 30 * time.Millisecond
	p, err := startLatencyProxy(ln.Addr().String(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	host, port := p.addr()
	c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t0 := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if d := time.Since(t0); d < rtt {
		t.Errorf("round trip took %s, less than the RTT %s", d, rtt)
	}

	want := make([]byte, 4<<20)
	for i := range want {
		want[i] = byte(rand.IntN(256))
	}
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c) // to the echo server's end, after ours
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back, want the %d sent, in order", len(got), len(want))
	}
}
