package index_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestIMAPViewMatchesDovecot: for well-formed corpus mail (stored with LF
// line ends here, appended with CRLF there), ENVELOPE and BODYSTRUCTURE
// are byte for byte what Dovecot answers, in the form go-imap's writer
// gives them.
func TestIMAPViewMatchesDovecot(t *testing.T) {
	d := testenv.StartDovecot(t)
	c, err := net.Dial("tcp", net.JoinHostPort(d.Host, fmt.Sprint(d.IMAPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	// read returns the lines up to the tagged response (or a
	// continuation), a literal written as the quoted string it stands for.
	read := func(tag string) []string {
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading from Dovecot: %v", err)
			}
			l = strings.TrimRight(l, "\r\n")
			for strings.HasSuffix(l, "}") && strings.LastIndexByte(l, '{') >= 0 {
				var size int
				open := strings.LastIndexByte(l, '{')
				if _, err := fmt.Sscanf(l[open:], "{%d}", &size); err != nil {
					break
				}
				lit := make([]byte, size)
				if _, err := io.ReadFull(br, lit); err != nil {
					t.Fatal(err)
				}
				rest, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				l = l[:open] + fmt.Sprintf("%q", lit) + strings.TrimRight(rest, "\r\n")
			}
			lines = append(lines, l)
			if strings.HasPrefix(l, tag+" ") || strings.HasPrefix(l, "+ ") {
				return lines
			}
		}
	}
	read("*")
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", testenv.DefaultUser.Name, testenv.DefaultUser.Password)
	read("a")
	n := 40
	if testing.Short() {
		n = 15
	}
	msgs := corpus.Generate(5, n, corpus.Options{BigAttachmentEvery: 13, BigAttachmentSize: 20 << 10})
	fs := newFileStore(t)
	for i, m := range msgs {
		tag := fmt.Sprintf("b%d", i)
		fmt.Fprintf(c, "%s APPEND INBOX {%d}\r\n", tag, len(m.Raw))
		read(tag)
		c.Write(m.Raw)
		c.Write([]byte("\r\n"))
		if r := read(tag); !strings.HasPrefix(r[len(r)-1], tag+" OK") {
			t.Fatalf("APPEND: %v", r)
		}
	}
	fmt.Fprintf(c, "c SELECT INBOX\r\n")
	read("c")
	for i, m := range msgs {
		tag := fmt.Sprintf("d%d", i)
		fmt.Fprintf(c, "%s FETCH %d (ENVELOPE BODYSTRUCTURE)\r\n", tag, i+1)
		r := read(tag)
		env, bs := fs.view(fs.add("", lfOf(m.Raw), 0, nil, m.Date))
		want := fmt.Sprintf("* %d FETCH (ENVELOPE %s BODYSTRUCTURE %s)", i+1, wireEnv(env, false), wireBody(bs, false))
		if len(r) != 2 || r[0] != want {
			t.Errorf("message %d:\ndovecot %s\n   mine %s", i, r[0], want)
		}
	}
}
