package pop3

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The fake server replays a transcript, one step per line:
//
//	S: text      send text + CRLF
//	R: text      send text as a Go string literal body (escapes such as \r
//	             work), no CRLF added
//	C: text      expect the client to send text + CRLF
//	QUIET        expect the client to send nothing for 50ms
//	SLEEP 200ms  wait
//	HANG         send nothing more and wait (10s at most) for the client to
//	             close the connection, reading whatever it sends
//	TLS          start TLS on the connection (server side)
//	CLOSE        close the connection now
//	BIG n        send a RETR body of n octets (dot-stuffed), with the "."
//	FLOOD n text send text + CRLF over and over, n octets in all; if the
//	             client hangs up meanwhile, the script ends there (a hostile
//	             server's endless reply)
//
// Leading white space and empty lines are ignored. After the last step the
// server expects the client to send nothing more: QUIT must be scripted.
// Mismatches fail the test.

// startFake listens on 127.0.0.1, serves one connection with the script,
// and returns the address. With implicitTLS the connection is TLS from the
// start. The test waits for the server at its end.
func startFake(t *testing.T, script string, implicitTLS bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer conn.Close()
		if implicitTLS {
			conn = tls.Server(conn, serverTLS)
		}
		if err := replay(conn, script); err != nil {
			t.Errorf("fake server: %v", err)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("fake server did not finish")
		}
	})
	return ln.Addr().String()
}

// dialFake starts a fake server and connects a Client to it without TLS.
func dialFake(t *testing.T, script string, opts *Options) *Client {
	t.Helper()
	addr := startFake(t, script, false)
	o := Options{TLS: TLSNone, Timeout: 5 * time.Second}
	if opts != nil {
		o = *opts
		if o.TLS == "" {
			o.TLS = TLSNone
		}
		if o.Timeout == 0 {
			o.Timeout = 5 * time.Second
		}
	}
	c, err := Dial(t.Context(), addr, &o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func replay(conn net.Conn, script string) error {
	br := bufio.NewReader(conn)
	for _, step := range strings.Split(script, "\n") {
		step = strings.TrimSpace(step)
		if step == "" {
			continue
		}
		verb, arg, _ := strings.Cut(step, " ")
		switch verb {
		case "S:":
			if _, err := io.WriteString(conn, arg+"\r\n"); err != nil {
				return fmt.Errorf("sending %q: %w", arg, err)
			}
		case "R:":
			raw, err := strconv.Unquote(`"` + arg + `"`)
			if err != nil {
				return fmt.Errorf("bad R: step %q: %v", arg, err)
			}
			if _, err := io.WriteString(conn, raw); err != nil {
				return fmt.Errorf("sending %q: %w", raw, err)
			}
		case "C:":
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("want %q from client, got %q and %v", arg, line, err)
			}
			if line != arg+"\r\n" {
				return fmt.Errorf("want %q from client, got %q", arg+"\r\n", line)
			}
		case "QUIET":
			if br.Buffered() > 0 {
				return fmt.Errorf("client wrote ahead without PIPELINING")
			}
			_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := br.Peek(1); !isTimeout(err) {
				return fmt.Errorf("client wrote ahead without PIPELINING (%v)", err)
			}
		case "SLEEP":
			d, err := time.ParseDuration(arg)
			if err != nil {
				return err
			}
			time.Sleep(d)
		case "HANG":
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, br); isTimeout(err) {
				return errors.New("HANG: the client did not give up within 10s")
			}
			return nil
		case "TLS":
			tc := tls.Server(conn, serverTLS)
			if err := tc.Handshake(); err != nil {
				return fmt.Errorf("TLS handshake: %w", err)
			}
			conn, br = tc, bufio.NewReader(tc)
		case "CLOSE":
			return conn.Close()
		case "FLOOD":
			ns, text, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(ns)
			if err != nil {
				return err
			}
			chunk := []byte(strings.Repeat(text+"\r\n", max(1, (64<<10)/(len(text)+2))))
			for sent := 0; sent < n; sent += len(chunk) {
				if _, err := conn.Write(chunk); err != nil {
					flooded.Add(int64(sent))
					return nil // the client hung up
				}
			}
			flooded.Add(int64(n))
		case "BIG":
			n, err := strconv.Atoi(arg)
			if err != nil {
				return err
			}
			if err := writeBig(conn, n); err != nil {
				return fmt.Errorf("BIG: %w", err)
			}
		default:
			return fmt.Errorf("bad script step %q", step)
		}
	}
	// Nothing more may come from the client but the end of the connection.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := br.ReadString('\n'); err == nil || line != "" {
		return fmt.Errorf("unexpected %q from client after the script", line)
	}
	return nil
}

// flooded counts the octets FLOOD steps sent.
var flooded atomic.Int64

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bigLine is one line of the big message: it starts with a dot, so it is
// stuffed on the wire, and is 100 octets long unstuffed, CRLF included.
var bigLine = "." + strings.Repeat("x", 97) + "\r\n"

// writeBig sends a message of n octets (n a multiple of 100) made of
// bigLine, dot-stuffed, and the terminator.
func writeBig(w io.Writer, n int) error {
	chunk := []byte(strings.Repeat("."+bigLine, 1000))
	bw := bufio.NewWriterSize(w, 64<<10)
	for n >= 100*1000 {
		if _, err := bw.Write(chunk); err != nil {
			return err
		}
		n -= 100 * 1000
	}
	for ; n > 0; n -= 100 {
		if _, err := bw.WriteString("." + bigLine); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString(".\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// A self-signed certificate for 127.0.0.1, made once per test binary.
var (
	serverTLS *tls.Config
	clientTLS *tls.Config
)

func init() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pop3 test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	serverTLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	clientTLS = &tls.Config{RootCAs: pool}
}

// TestMain fails the run when a test leaves goroutines of this package
// behind (a server or a context watcher that never ended).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "postfach/sync/pop3.") &&
				!strings.Contains(g, "pop3.TestMain") && !strings.Contains(g, "pop3.checkLeaks") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked goroutines:\n%s", strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the Debug writer and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
