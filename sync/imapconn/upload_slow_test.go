package imapconn

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestUploaderSlowLink: the uploader's deadline is an idle timeout, as
// go-imap's are (progressConn): an upload that takes several times the
// timeout goes through as long as bytes keep moving. (Its deadline was
// once set once per command: a 16 MiB command on a link slower than
// 140 KB/s failed every run; and a message body handed to the connection
// in one write had one deadline for all of it.)
func TestUploaderSlowLink(t *testing.T) {
	const size = 6 << 20
	client, server := net.Pipe() // no buffers: a write waits for the read
	got := make(chan int64, 1)
	go slowServer(server, got)
	defer client.Close()

	up := &Uploader{timeout: time.Second}
	up.setConn(&progressConn{Conn: client}) // as Endpoint.open gives it
	if _, err := up.readLine(); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", size/80)
	start := time.Now()
	_, err := up.AppendMany(context.Background(), "INBOX", []UploadMsg{{Size: int64(len(body)),
		Write: func(w io.Writer) error { _, err := w.Write([]byte(body)); return err }}})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("upload of %d bytes in %v with a 1 s idle timeout: %v", len(body), took.Round(time.Millisecond), err)
	}
	if n := <-got; n != int64(len(body)) {
		t.Fatalf("the server read %d bytes, want %d", n, len(body))
	}
	t.Logf("%d bytes in %v", len(body), took.Round(time.Millisecond))
}

// slowServer answers one uploader: MULTIAPPEND with LITERAL+, any login,
// and an APPEND whose literal it reads at about 3 MB/s; it sends the
// literal's size on got.
func slowServer(c net.Conn, got chan<- int64) {
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "* OK ready\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		tag, cmd, _ := strings.Cut(line, " ")
		verb, _, _ := strings.Cut(cmd, " ")
		switch verb {
		case "CAPABILITY":
			fmt.Fprintf(c, "* CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND\r\n%s OK done\r\n", tag)
		case "LOGIN":
			for n, ok := literalSize(line); ok; n, ok = literalSize(line) { // user, password
				io.CopyN(io.Discard, br, n)
				if line, err = br.ReadString('\n'); err != nil {
					return
				}
				line = strings.TrimRight(line, "\r\n")
			}
			fmt.Fprintf(c, "%s OK logged in\r\n", tag)
		case "APPEND":
			n, _ := literalSize(line)
			var read int64
			buf := make([]byte, 128<<10)
			for read < n {
				k, err := io.ReadFull(br, buf[:min(int64(len(buf)), n-read)])
				read += int64(k)
				if err != nil {
					return
				}
				time.Sleep(40 * time.Millisecond)
			}
			br.ReadString('\n')
			got <- read
			fmt.Fprintf(c, "%s OK appended\r\n", tag)
		case "LOGOUT":
			fmt.Fprintf(c, "* BYE\r\n%s OK bye\r\n", tag)
			return
		default:
			fmt.Fprintf(c, "%s BAD what?\r\n", tag)
		}
	}
}
