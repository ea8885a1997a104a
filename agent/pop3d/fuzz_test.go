package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER me", "PASS a b  c", "list 1", "TOP 1 10", "AUTH PLAIN AGZvbwBiYXI=", "STAT",
		"", " ", "AB", "ABCDE", "RETR\t1", "NOOP\x00", "DELE  1 ", "QUIT\r", "P\xc3\xa4SS x", "PASS \xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseCommand(line)
		if err != nil {
			return
		}
		if len(c.Verb) < 3 || len(c.Verb) > 4 || strings.ToUpper(c.Verb) != c.Verb ||
			strings.IndexFunc(c.Verb, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
			t.Fatalf("parseCommand(%q): verb %q", line, c.Verb)
		}
		if len(c.Args) > maxArgs {
			t.Fatalf("parseCommand(%q): %d arguments", line, len(c.Args))
		}
		for _, a := range c.Args {
			if a == "" || strings.ContainsAny(a, " \t\r\n\x00") {
				t.Fatalf("parseCommand(%q): argument %q", line, a)
			}
		}
		if strings.ContainsAny(c.Rest, "\r\n\x00") {
			t.Fatalf("parseCommand(%q): rest %q", line, c.Rest)
		}
		// The canonical form parses to the same verb and arguments.
		canon := strings.Join(append([]string{c.Verb}, c.Args...), " ")
		again, err := parseCommand(canon)
		if err != nil || again.Verb != c.Verb || strings.Join(again.Args, " ") != strings.Join(c.Args, " ") {
			t.Fatalf("parseCommand(%q) = %+v, but %q gives %+v, %v", line, c, canon, again, err)
		}
		for _, a := range c.Args {
			if n, ok := parseNum(a); ok && (n < 0 || len(a) > 9) {
				t.Fatalf("parseNum(%q) = %d", a, n)
			}
		}
		if authzid, authcid, _, ok := decodePlain(c.Rest); ok && (authcid == "" || strings.Contains(authzid+authcid, "\x00")) {
			t.Fatalf("decodePlain(%q) = %q, %q", c.Rest, authzid, authcid)
		}
	})
}

// wireLines is an independent model of what RETR and TOP send of a
// stored message m (before stuffing): CRLF line ends, a final line end if
// m has none; for TOP (lines >= 0), up to and including the first empty
// line, then lines more.
func wireLines(m []byte, lines int) []byte {
	var w bytes.Buffer
	for i, b := range m {
		if b == '\n' && (i == 0 || m[i-1] != '\r') {
			w.WriteByte('\r')
		}
		w.WriteByte(b)
	}
	full := w.Bytes()
	switch {
	case len(full) == 0 || full[len(full)-1] == '\n':
	case full[len(full)-1] == '\r':
		full = append(full, '\n')
	default:
		full = append(full, '\r', '\n')
	}
	if lines < 0 {
		return full
	}
	var out []byte
	inBody := false
	for len(full) > 0 {
		i := bytes.IndexByte(full, '\n')
		line := full[:i+1]
		full = full[i+1:]
		if inBody {
			if lines == 0 {
				break
			}
			lines--
		}
		out = append(out, line...)
		if !inBody && string(line) == "\r\n" {
			inBody = true
		}
	}
	return out
}

// unstuff reads a multi-line reply: every line ends with CRLF, the last
// one is ".", and the others lose a leading '.'.
func unstuff(t *testing.T, reply []byte) []byte {
	t.Helper()
	var out []byte
	for len(reply) > 0 {
		i := bytes.IndexByte(reply, '\n')
		if i < 1 || reply[i-1] != '\r' {
			t.Fatalf("reply line without CRLF in %q", reply)
		}
		line := reply[:i+1]
		reply = reply[i+1:]
		if string(line) == ".\r\n" {
			if len(reply) != 0 {
				t.Fatalf("%q after the end of the reply", reply)
			}
			return out
		}
		out = append(out, bytes.TrimPrefix(line, []byte("."))...)
	}
	t.Fatal("reply without its final \".\"")
	return nil
}

func FuzzDotWriter(f *testing.F) {
	f.Add([]byte("Subject: x\n\n.\n..\nbody\n"), 3, -1)
	f.Add([]byte("Subject: x\r\n\r\nbody\r\nmore"), 5, 1)
	f.Add([]byte("a\r"), 1, -1)
	f.Add([]byte("\r\n.\r\n"), 1, 0)
	f.Add([]byte(""), 0, 2)
	f.Add([]byte("h: 1\nno body"), 4, 0)
	f.Fuzz(func(t *testing.T, m []byte, split, lines int) {
		if lines < -1 {
			lines = -1
		}
		var buf bytes.Buffer
		bw := bufio.NewWriterSize(&buf, 16)
		d := newDotWriter(bw, lines)
		// Written in pieces of split bytes (as copyMessage's reads come).
		step := max(1, split%64+1)
		for p := m; len(p) > 0 && !d.done; {
			n := min(step, len(p))
			if _, err := d.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		got := unstuff(t, buf.Bytes())
		if want := wireLines(m, lines); !bytes.Equal(got, want) {
			t.Fatalf("message %q, TOP %d: sent %q, want %q", m, lines, got, want)
		}
	})
}

// FuzzSession feeds arbitrary client input to a session over a small
// maildrop (logged in or not, as the input goes): the server must answer
// with CRLF lines, the first "+OK", and end the session when the input
// ends, whatever it is sent.
func FuzzSession(f *testing.F) {
	ts := newTestStore(f)
	ts.deliver(f, "acct", "INBOX", corpus(100)[:3]...)
	s, err := newServer(Options{
		Store:    ts.st,
		Accounts: []string{"acct"},
		Auth: func(_ net.Addr, u, p string) error {
			if u == testUser && p == testPass {
				return nil
			}
			return io.EOF
		},
	}, nopExpunger{})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(ln)
	f.Cleanup(func() { s.Close() })
	f.Add([]byte("USER me\r\nPASS secret pass\r\nSTAT\r\nLIST\r\nUIDL 1\r\nTOP 1 1\r\nRETR 2\r\nDELE 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n"))
	f.Add([]byte("AUTH PLAIN\r\nAG1lAHNlY3JldCBwYXNz\r\nLIST 9\r\nCAPA\r\nNOOP\r\nTOP 3 0\r\nRETR 1"))
	f.Add([]byte("CAPA\r\nSTLS\r\nAUTH\r\nAPOP x y\r\n\x00\xff\r\nUSER\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.Write(input)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("session did not end: %v", err)
		}
		if !bytes.HasPrefix(out, []byte("+OK ")) {
			t.Fatalf("greeting %q", out)
		}
		for len(out) > 0 {
			i := bytes.IndexByte(out, '\n')
			if i < 1 || out[i-1] != '\r' {
				if err != nil && i < 0 {
					break // cut by the reset
				}
				t.Fatalf("reply line without CRLF: %q", out)
			}
			out = out[i+1:]
		}
	})
}

type nopExpunger struct{}

func (nopExpunger) Expunge(context.Context, []*index.Message) error { return nil }
