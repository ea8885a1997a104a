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
	const timeout = 2 * time.Second
	for attempt := 1; ; attempt++ {
		gap, err := uploadSlowly(t, 6<<20, timeout)
		if err == nil {
			return
		}
		// The server's own pauses are 40 ms. One as long as the timeout
		// means this machine stalled the test's goroutines: try again.
		if gap < timeout || attempt == 3 {
			t.Fatalf("upload with a %v idle timeout, the server's longest pause %v: %v", timeout, gap.Round(time.Millisecond), err)
		}
		t.Logf("attempt %d: the server paused %v (a stalled machine): %v", attempt, gap.Round(time.Millisecond), err)
	}
}

// uploadSlowly uploads size bytes to slowServer over a pipe and returns
// the server's longest pause between two reads and the upload's error.
func uploadSlowly(t *testing.T, size int, timeout time.Duration) (time.Duration, error) {
	client, server := net.Pipe() // no buffers: a write waits for the read
	res := make(chan slowResult, 1)
	go slowServer(server, res)
	defer client.Close()

	up := &Uploader{}
	up.timeout.Store(int64(timeout))
	up.setConn(&progressConn{Conn: client}) // as Endpoint.open gives it
	if _, err := up.readLine(); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", size/80)
	start := time.Now()
	_, err := up.AppendMany(context.Background(), "INBOX", []UploadMsg{{Size: int64(len(body)),
		Write: func(w io.Writer) error { _, err := w.Write([]byte(body)); return err }}})
	took := time.Since(start)
	client.Close()
	r := <-res
	if err != nil {
		return r.gap, err
	}
	if r.read != int64(len(body)) {
		t.Fatalf("the server read %d bytes, want %d", r.read, len(body))
	}
	t.Logf("%d bytes in %v, the server's longest pause %v", len(body), took.Round(time.Millisecond), r.gap.Round(time.Millisecond))
	return r.gap, nil
}

type slowResult struct {
	read int64         // bytes of the literal
	gap  time.Duration // the longest time between two reads
}

// slowServer answers one uploader: MULTIAPPEND with LITERAL+, any login,
// and an APPEND whose literal it reads at about 1.6 MB/s (a pause of 40 ms,
// far below the idle timeout, after each 64 KiB); it sends what it read
// on res when the literal ends or the connection does.
func slowServer(c net.Conn, res chan<- slowResult) {
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
			var r slowResult
			buf := make([]byte, 64<<10)
			last := time.Now()
			for r.read < n {
				k, err := io.ReadFull(br, buf[:min(int64(len(buf)), n-r.read)])
				r.read += int64(k)
				r.gap = max(r.gap, time.Since(last))
				last = time.Now()
				if err != nil {
					res <- r
					return
				}
				time.Sleep(40 * time.Millisecond)
			}
			br.ReadString('\n')
			res <- r
			fmt.Fprintf(c, "%s OK appended\r\n", tag)
		case "LOGOUT":
			fmt.Fprintf(c, "* BYE\r\n%s OK bye\r\n", tag)
			return
		default:
			fmt.Fprintf(c, "%s BAD what?\r\n", tag)
		}
	}
}
