package pop3

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzParseListLine(f *testing.F) {
	for _, s := range []string{"1 120", "2 4500 extra", "0 1", "1", "-1 2", "1 99999999999999999999", "", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseListLine(line)
		if err != nil {
			return
		}
		if m.Num < 1 || m.Size < 0 || m.UID != "" {
			t.Fatalf("parseListLine(%q) = %+v", line, m)
		}
		// The canonical form of what it gave parses to the same.
		canon := strconv.Itoa(m.Num) + " " + strconv.FormatInt(m.Size, 10)
		if again, err := parseListLine(canon); err != nil || again != m {
			t.Fatalf("parseListLine(%q) = %+v, but %q gives %+v, %v", line, m, canon, again, err)
		}
	})
}

func FuzzParseUIDLLine(f *testing.F) {
	for _, s := range []string{"1 abc", "1 " + strings.Repeat("x", 71), "1 a b", "1 ", "x y", "1 \x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseUIDLLine(line)
		if err != nil {
			return
		}
		if m.Num < 1 || m.UID == "" || !strings.HasSuffix(line, " "+m.UID) {
			t.Fatalf("parseUIDLLine(%q) = %+v", line, m)
		}
		valid := len(m.UID) <= 70
		for i := 0; i < len(m.UID); i++ {
			valid = valid && m.UID[i] >= 0x21 && m.UID[i] <= 0x7e
		}
		if valid != (m.UIDProblem == "") {
			t.Fatalf("parseUIDLLine(%q): UIDProblem %q for a UID that is valid=%v", line, m.UIDProblem, valid)
		}
	})
}

// FuzzReadResponse feeds arbitrary server output to a client that runs
// through every command. It must return errors, never panic or hang.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"+OK ready <1.2@host>\r\n+OK\r\nSASL PLAIN\r\nPIPELINING\r\n.\r\n+OK\r\n+OK 2 30\r\n+OK\r\n1 10\r\n2 20\r\n.\r\n" +
			"+OK\r\n1 a\r\n2 b\r\n.\r\n+OK 1 a\r\n+OK\r\n..x\r\n.\r\n+OK\r\nhdr\r\n.\r\n+OK\r\nx\r\n.\r\n+OK\r\ny\r\n.\r\n+OK\r\n+OK\r\n",
		"+OK\r\n-ERR [SYS/TEMP] no\r\n+OK\r\n-ERR [AUTH] bad\r\n",
		"+OK\r\n+OK\r\nUSER\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n+OK 1 2\r\n+OK\r\n1\r\n.\r\n",
		"+OK\r\n+OK\r\nSASL PLAIN\r\n.\r\n+ \r\n+ \x00\r\n-ERR\r\n",
		"+OK\n+OK\n.\n+OK\n+OK\n+OK 0 0\n+OK\n.\n+OK\n.\n",
		"garbage",
		"+OK\r\n+OK\r\n" + strings.Repeat("x", 9000) + "\r\n",
		"+OK\r\n+OK\r\nPIPELINING\r\n.\r\n+OK\r\n+OK 1 1\r\n+OK\r\n1 1\r\n.\r\n+OK\r\n1 u\r\n.\r\n+OK 1 u\r\n+OK\r\nbody\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cl, srv := net.Pipe()
		done := make(chan struct{}, 2)
		go func() { // the client's commands
			_, _ = io.Copy(io.Discard, srv)
			done <- struct{}{}
		}()
		go func() { // the server's replies, then the end of the connection
			_, _ = srv.Write(data)
			srv.Close()
			done <- struct{}{}
		}()
		defer func() {
			cl.Close()
			<-done
			<-done
		}()

		c, err := NewClient(cl, &Options{Timeout: 2 * time.Second, PipelineDepth: 3})
		if err != nil {
			return
		}
		defer c.Close()
		exercise(t, c)
	})
}

// exercise runs every command once, ignoring errors.
func exercise(t *testing.T, c *Client) {
	ctx := t.Context()
	_, _ = c.Capa()
	_ = c.Login(ctx, "u", "p")
	_ = c.APOP("u", "p")
	_, _, _ = c.Stat()
	if msgs, err := c.List(); err == nil {
		for _, m := range msgs {
			if m.Num < 1 || m.Size < 0 {
				t.Fatalf("List gave %+v", m)
			}
		}
	}
	if msgs, err := c.UIDL(); err == nil {
		for _, m := range msgs {
			if m.Num < 1 || m.UID == "" {
				t.Fatalf("UIDL gave %+v", m)
			}
		}
	}
	_, _ = c.UIDLOne(1)
	if r, err := c.Retr(1); err == nil {
		_, _ = io.Copy(io.Discard, r)
	}
	if r, err := c.Top(1, 0); err == nil {
		_, _ = io.ReadFull(r, make([]byte, 2))
		_ = r.Close()
	}
	_ = c.RetrMany(ctx, []int{1, 2, 3}, func(num int, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	_ = c.DeleMany(ctx, []int{1, 2})
	_ = c.Dele(1)
	_ = c.Rset()
	_ = c.Noop()
	_ = c.Quit()
}
