package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSessionsParse: every embedded session parses and has a description.
func TestSessionsParse(t *testing.T) {
	ss, err := Sessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 14 {
		t.Fatalf("%d sessions, want the 14 written", len(ss))
	}
	for _, s := range ss {
		if len(s.Steps) == 0 {
			t.Errorf("%s: no steps", s.Name)
		}
	}
}

// TestDovecotAgainstItself: Dovecot compared with another Dovecot shows no
// difference in any session, so every difference a target shows is the
// target's.
func TestDovecotAgainstItself(t *testing.T) {
	ss, err := Sessions()
	if err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	CheckConformance(t, sharedEndpoint(0), sharedEndpoint(1), ss, &Options{UIDAnywhere: true})
}

// breakingProxy forwards IMAP between a client and upstream, passing each
// server line through mangle with the client's last command line.
type breakingProxy struct {
	ln     net.Listener
	mangle func(line, lastCmd string) string
	wg     sync.WaitGroup
}

func startBreakingProxy(t *testing.T, upstream string, mangle func(line, lastCmd string) string) *breakingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &breakingProxy{ln: ln, mangle: mangle}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			var mu sync.Mutex
			last := ""
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				defer u.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if line != "" {
						mu.Lock()
						last = line
						mu.Unlock()
						io.WriteString(u, line)
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer p.wg.Done()
				defer c.Close()
				r := bufio.NewReader(u)
				for {
					line, err := r.ReadString('\n')
					if line != "" {
						mu.Lock()
						cmd := last
						mu.Unlock()
						io.WriteString(c, p.mangle(line, cmd))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

var (
	existsRE   = regexp.MustCompile(`^\* \d+ EXISTS\r\n$`)
	copyMoveRE = regexp.MustCompile(`(?i)^\S+ (UID )?(COPY|MOVE) `)
	uidFirstRE = regexp.MustCompile(`^(\* \d+ FETCH \()UID (\d+) ([^\r]*)\)\r\n$`)
)

// TestBrokenTargetCaught: a proxy in front of the target Dovecot that
// breaks one thing the issue names must make the matching session differ
// at the command it broke, and only there.
func TestBrokenTargetCaught(t *testing.T) {
	t.Parallel()
	ss, err := Sessions()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Session{}
	for _, s := range ss {
		byName[s.Name] = s
	}
	cases := []struct {
		name, session string
		mangle        func(line, cmd string) string
		wantLine      string // the difference must name this command
		wantDiff      string // and show this reference line missing
		pop3          bool   // the proxy is in front of POP3, not IMAP
	}{{
		name: "no EXISTS after COPY or MOVE", session: "copy-move-selected",
		mangle: func(line, cmd string) string {
			if existsRE.MatchString(line) && copyMoveRE.MatchString(cmd) {
				return ""
			}
			return line
		},
		wantLine: "a2 COPY 1:2 INBOX", wantDiff: "- * 7 EXISTS",
	}, {
		name: `ENVELOPE "" for NIL`, session: "envelope",
		mangle: func(line, cmd string) string {
			if strings.Contains(line, "ENVELOPE (") {
				return strings.ReplaceAll(line, " NIL ", ` "" `)
			}
			return line
		},
		wantLine: "a2 FETCH 1:* ENVELOPE", wantDiff: "- * 2 FETCH (ENVELOPE (NIL \"\" ((NIL NIL nobody",
	}, {
		name: "UID last in FETCH", session: "fetch-parts",
		mangle: func(line, cmd string) string {
			return uidFirstRE.ReplaceAllString(line, "${1}${3} UID ${2})\r\n")
		},
		wantLine: "a2 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)", wantDiff: "UID-NOT-FIRST",
	}, {
		name: "POP3 login failure without [AUTH]", session: "pop3-auth", pop3: true,
		mangle: func(line, cmd string) string {
			return strings.Replace(line, "-ERR [AUTH] ", "-ERR ", 1)
		},
		wantLine: "PASS wrong-password", wantDiff: "- -ERR [AUTH]",
	}}
	ref, target := sharedEndpoint(0), sharedEndpoint(1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := byName[tc.session]
			r, g := ref(t), target(t)
			if tc.pop3 {
				g.POP3 = startBreakingProxy(t, g.POP3, tc.mangle).ln.Addr().String()
			} else {
				g.IMAP = startBreakingProxy(t, g.IMAP, tc.mangle).ln.Addr().String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			diffs, err := Differential(ctx, r, g, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			var all bytes.Buffer
			for _, d := range diffs {
				all.WriteString(d.String())
				if d.Step.Text == tc.wantLine && strings.Contains(d.String(), tc.wantDiff) {
					found = true
				}
			}
			if !found {
				t.Errorf("no difference at %q showing %q; differences:\n%s", tc.wantLine, tc.wantDiff, all.String())
			}
		})
	}
}
