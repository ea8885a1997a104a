// Package imapscript is a scripted IMAP server for unit tests of clients
// that speak the protocol on a net.Conn: it answers each command with the
// lines a test gives. Test harness only: production code never imports it.
package imapscript

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// Server answers an IMAP client over a pipe: each line the client
// sends (with literals read along) is matched by prefix against the
// script, which gives the lines to answer ("LITERAL n" sends n bytes of
// literal content).
func Server(t *testing.T, greeting string, script func(cmd string) []string) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		br := bufio.NewReader(server)
		fmt.Fprintf(server, "%s\r\n", greeting)
		for {
			var cmd strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimRight(line, "\r\n")
				cmd.WriteString(line)
				n, ok := literalSize(line)
				if !ok {
					break
				}
				io.CopyN(io.Discard, br, n)
			}
			tag, rest, _ := strings.Cut(cmd.String(), " ")
			for _, l := range script(rest) {
				// "LITERAL n": n bytes of literal content, streamed.
				if ns, ok := strings.CutPrefix(l, "LITERAL "); ok {
					n, _ := strconv.Atoi(ns)
					chunk := []byte(strings.Repeat("x", 32<<10))
					for ; n > 0; n -= len(chunk) {
						if _, err := server.Write(chunk[:min(n, len(chunk))]); err != nil {
							return
						}
					}
					continue
				}
				// The command's tag at the start, and quoted (an ESEARCH
				// correlator: (TAG "TAG")).
				if rest, ok := strings.CutPrefix(l, "TAG "); ok {
					l = tag + " " + rest
				}
				fmt.Fprintf(server, "%s\r\n", strings.ReplaceAll(l, `"TAG"`, `"`+tag+`"`))
			}
		}
	}()
	t.Cleanup(func() { client.Close() })
	return client
}

// literalSize reports the size of the literal a line announces at its
// end ("{123}" or "{123+}").
func literalSize(s string) (int64, bool) {
	i := strings.LastIndexByte(s, '{')
	if i < 0 || !strings.HasSuffix(s, "}") {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(s[i+1:len(s)-1], "+"), 10, 64)
	return n, err == nil && n >= 0
}
