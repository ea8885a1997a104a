package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

const (
	testUser = "me"
	testPass = "secret pass"
)

// testStore is a store with a real Maildir root and the served folders.
type testStore struct {
	root string
	st   *index.Store
}

func newTestStore(t testing.TB) *testStore {
	t.Helper()
	ts := &testStore{root: t.TempDir()}
	ts.open(t)
	return ts
}

func (ts *testStore) open(t testing.TB) {
	t.Helper()
	st, err := index.OpenStore(ts.root)
	if err != nil {
		t.Fatal(err)
	}
	ts.st = st
	t.Cleanup(func() { st.Close() })
}

// folder returns (creating) folder name of account.
func (ts *testStore) folder(t testing.TB, account, name string) *index.Folder {
	t.Helper()
	var f *index.Folder
	err := ts.st.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount(account)
		if err != nil {
			return err
		}
		rel, err := index.FolderPath(account, name)
		if err != nil {
			return err
		}
		f, err = tx.EnsureFolder(a, name, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ts.st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := maildir.Open(d.Path); err != nil {
		t.Fatal(err)
	}
	return f
}

// deliver stores messages into account's folder through the door. Every
// other one gets its RFC822Size from the caller (as a sync would), the
// others none (the endpoint counts it).
func (ts *testStore) deliver(t testing.TB, account, folder string, msgs ...string) {
	t.Helper()
	f := ts.folder(t, account, folder)
	d, err := ts.st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	var as []*index.Arrival
	for i, m := range msgs {
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, m); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		a := &index.Arrival{Folder: f, File: w}
		if i%2 == 0 {
			a.Row.RFC822Size = int64(len(wireForm(m))) - trailer(m)
		}
		a.Row.Header = index.ParseHeader(w.Header())
		a.Row.DeferText = true
		a.Row.InternalDate = time.Now()
		as = append(as, a)
	}
	if err := ts.st.Deliver(context.Background(), &index.Batch{Arrivals: as}); err != nil {
		t.Fatal(err)
	}
}

// trailer is the line end the wire form adds to a message that does not
// end with one (not part of its size).
func trailer(m string) int64 {
	if strings.HasSuffix(m, "\n") {
		return 0
	}
	return 2
}

// rebuild deletes the index and indexes the Maildir again from the files
// (what a lost index costs): new rows, new local UIDs, same files.
func (ts *testStore) rebuild(t *testing.T, account string, folders ...string) {
	t.Helper()
	if err := ts.st.Close(); err != nil {
		t.Fatal(err)
	}
	p := index.DefaultPath(ts.root)
	for _, suf := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(p + suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	ts.open(t)
	for _, name := range folders {
		f := ts.folder(t, account, name)
		d, _ := ts.st.Dir(*f)
		es, err := d.Scan()
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ts.st.FileMessages(f, es, true)
		if err != nil {
			t.Fatal(err)
		}
		// Rows in a different order than the first time: numbering comes
		// from arrival here, UIDLs must not depend on it.
		slices.Reverse(rows)
		if err := ts.st.Write(context.Background(), func(tx *index.Tx) error {
			_, err := tx.AddMessages(rows)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// rows returns the rows of account's folder.
func (ts *testStore) rows(t *testing.T, account, folder string) []*index.Message {
	t.Helper()
	var ms []*index.Message
	err := ts.st.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account(account)
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, folder)
		if err != nil {
			return err
		}
		ms, err = tx.Messages(f.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// wireForm is what a client must receive of a message delivered as m: LF
// line ends turned CRLF, and a final line end if m has none.
func wireForm(m string) []byte {
	var b bytes.Buffer
	w := maildir.NewCRLFWriter(&b)
	io.WriteString(w, strings.ReplaceAll(m, "\r\n", "\n"))
	if !strings.HasSuffix(m, "\n") {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// fakeExpunger stands in for the store's Expunge (Part A's, merged
// later): the door's Remove, and a record of each call.
type fakeExpunger struct {
	st    func() *index.Store
	mu    sync.Mutex
	calls [][]string // keys per call
	err   error      // if set, returned instead
}

func (f *fakeExpunger) Expunge(ctx context.Context, msgs []*index.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	var keys []string
	for _, m := range msgs {
		keys = append(keys, m.Key)
	}
	f.calls = append(f.calls, keys)
	return f.st().Remove(ctx, msgs, nil)
}

func (f *fakeExpunger) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// testServer is a running Server on 127.0.0.1.
type testServer struct {
	*Server
	addr string
	ex   *fakeExpunger
	done chan error
}

// start runs a server over ts, accepting testUser/testPass, with opts
// changed by edit and its limits by tune.
func start(t *testing.T, ts *testStore, edit func(*Options), tune ...func(*limits)) *testServer {
	t.Helper()
	o := Options{
		Store:    ts.st,
		Accounts: []string{"acct", "other"},
		Auth: func(_ net.Addr, u, p string) error {
			if u == testUser && p == testPass {
				return nil
			}
			return errors.New("wrong")
		},
	}
	if testing.Verbose() {
		o.Logger = slogTest(t)
	}
	if edit != nil {
		edit(&o)
	}
	ex := &fakeExpunger{st: func() *index.Store { return ts.st }}
	s, err := newServer(o, ex)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tune {
		f(&s.lim)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tsv := &testServer{Server: s, addr: ln.Addr().String(), ex: ex, done: make(chan error, 1)}
	go func() { tsv.done <- s.Serve(ln) }()
	t.Cleanup(func() { tsv.stop(t) })
	return tsv
}

// stop closes the server and checks that Serve returned nil.
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	if s.done == nil {
		return
	}
	s.Close()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after Close")
	}
	s.done = nil
}

// conn is a raw client connection for protocol tests.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cn := &conn{t: t, c: c, br: bufio.NewReader(c)}
	cn.expect("+OK")
	return cn
}

// line reads one reply line (without CRLF), within 10 s.
func (c *conn) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads one line and checks that it starts with prefix.
func (c *conn) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want %q...", l, prefix)
	}
	return l
}

// send writes raw bytes.
func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a command line and checks the reply's first line.
func (c *conn) cmd(line, prefix string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(prefix)
}

// multi reads the lines of a multi-line reply up to ".", undoing the
// dot-stuffing.
func (c *conn) multi() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == "." {
			return out
		}
		out = append(out, strings.TrimPrefix(l, "."))
	}
}

// login logs in as login with testPass.
func (c *conn) login(login string) string {
	c.t.Helper()
	c.cmd("USER "+login, "+OK")
	return c.cmd("PASS "+testPass, "+OK")
}

// closed checks that the server closed the connection.
func (c *conn) closed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// A reset is a close too (the server closed with input unread).
	if l, err := c.br.ReadString('\n'); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("connection not closed: %q, %v", l, err)
	}
}

// testCert makes a self-signed certificate for 127.0.0.1 and returns the
// server's TLS config and the certificate's PEM (for clients to trust).
func testCert(t testing.TB) (*tls.Config, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, certPEM
}

// writeFile writes a file below dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// corpus is a set of messages with what trips POP3 servers up: lines
// starting with '.', a lone ".", CRLF and LF mixed, no final line end, an
// empty body, 8-bit bytes, a body line "From ", a long line.
func corpus(longLine int) []string {
	return []string{
		"From: a@x\nTo: b@y\nSubject: plain\nMessage-ID: <1@x>\n\nHello.\nSecond line.\n",
		"Subject: dots\nMessage-ID: <2@x>\n\n.\n..\n.leading dot\n...three\nend.\n",
		"Subject: crlf\r\nMessage-ID: <3@x>\r\n\r\nCRLF body\r\nand more\r\n",
		"Subject: no final newline\nMessage-ID: <4@x>\n\nlast line without end",
		"Subject: empty body\nMessage-ID: <5@x>\n\n",
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nMessage-ID: <6@x>\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus München\nFrom here\n>From there\n",
		"Subject: long\nMessage-ID: <7@x>\n\n" + strings.Repeat("x", longLine) + "\nshort\n",
		"Subject: only header\nMessage-ID: <8@x>\n",
		fmt.Sprintf("Subject: many lines\nMessage-ID: <9@x>\n\n%s", strings.Repeat("line\n", 500)),
	}
}

// slogTest logs to the test's output (with -v).
func slogTest(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
