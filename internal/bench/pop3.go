package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pop3Options are the flags of the pop3 scenario.
type pop3Options struct {
	benchOptions
	corpus string
}

// pop3DovecotConf keeps the server's mailbox the same for every peer and
// run: by default Dovecot sets \Seen on the messages a POP3 session
// retrieved (at QUIT, renaming 10000 files), so the first peer of a run
// would leave the next a different mailbox, and pay for it.
const pop3DovecotConf = "pop3_no_flag_updates = yes\n"

func runPOP3(args []string) error {
	var o pop3Options
	fs := flag.NewFlagSet("pop3", flag.ExitOnError)
	o.addFlags(fs, 10000, 3, "number of messages in the corpus (all in INBOX)")
	addCorpusFlag(fs, &o.corpus)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs <= 0 {
		return fmt.Errorf("-messages and -runs must be positive")
	}
	copts, err := corpusOptions(o.corpus, []string{"INBOX"})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ws, err := newWorkspace(ctx, "pop3", "pop3", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return err
	}
	defer ws.close()
	work, rep, pf := ws.dir, ws.rep, ws.pf
	log := os.Stderr
	rep.Seed, rep.Runs, rep.CorpusKind = o.seed, o.runs, corpusDescription(copts)
	fmt.Fprintln(log, "bench: building maildeliver (fetchmail's MDA)")
	fm, err := newFetchmail(ctx, ws.binDir)
	if err != nil {
		return err
	}
	peers := []peer{pf, fm}
	if err := checkDisk(work, o.seed, o.messages, copts, 1+len(peers)*o.runs, "Dovecot's and one per tool and run"); err != nil {
		return err
	}

	srv, err := startDovecot(filepath.Join(work, "dovecot"), pop3DovecotConf)
	if err != nil {
		return err
	}
	defer srv.Stop()
	rep.Server = fmt.Sprintf("Dovecot %s, POP3 on %s:%d (plaintext, mail_fsync=never, pop3_no_flag_updates=yes)",
		srv.d.Version, srv.d.Host, srv.d.POP3Port)

	t0 := time.Now()
	var base mirror
	rep.Corpus, base, err = seedAll(ctx, []*dovecotServer{srv}, o.seed, o.messages, copts)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(log, "bench: seeded %d messages (%s) in %s\n", rep.Corpus.Messages, mib(rep.Corpus.Bytes), time.Since(t0).Round(time.Millisecond))
	// The server must hold the corpus, message by message.
	want, err := verifyServer(srv, base, false)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	t0 = time.Now()
	n, size, err := srv.warmPOP3(ctx)
	if err != nil {
		return fmt.Errorf("warming Dovecot: %w", err)
	}
	if n != o.messages {
		return fmt.Errorf("seeding: Dovecot's POP3 lists %d messages, want %d", n, o.messages)
	}
	fmt.Fprintf(log, "bench: Dovecot indexed and warm in %s: %d messages, %s over POP3\n", time.Since(t0).Round(time.Millisecond), n, mib(size))

	up := srv.upstream()
	up.Port = srv.d.POP3Port
	b := &bench{srv: srv, peers: peers, rep: rep, log: log, want: want, up: up}
	ws.addPeers(peers)
	return ws.measure(o.json, func() error {
		for r := range o.runs {
			if err := b.runPOP3(ctx, r, work, o); err != nil {
				return err
			}
		}
		return nil
	})
}

// runPOP3 is one repetition of the pop3 scenario: fresh replicas, the
// initial fetch of every peer, then every peer's rerun with nothing new.
// After each fetch the server must still hold b.want (keep: nobody deletes
// or changes anything there) and the peer's Maildir the same messages
// without flags or keywords, which POP3 does not carry.
func (b *bench) runPOP3(ctx context.Context, r int, work string, o pop3Options) error {
	order, reps, err := b.replicas(r, o.runs, work)
	if err != nil {
		return err
	}
	local := b.want.withoutFlags()
	if err := b.phase(ctx, r, "initial", o.messages, order, reps, fetching(replica.Initial, o.messages), b.want, local); err != nil {
		return err
	}
	return b.phase(ctx, r, "rerun", o.messages, order, reps, fetching(replica.Resync, 0), b.want, local)
}

// A fetchReporter is a replica that says how many messages its last run
// downloaded.
type fetchReporter interface {
	Fetched() (n int, ok bool)
}

// fetching wraps a phase's action: when the replica reports how many
// messages it downloaded, that must be want. (Downloads count anyway: a
// message fetched twice is a second file, which the Maildir count after
// the phase sees.)
func fetching(do func(replica, context.Context) (sample, error), want int) func(replica, context.Context) (sample, error) {
	return func(rp replica, ctx context.Context) (sample, error) {
		s, err := do(rp, ctx)
		if err != nil {
			return s, err
		}
		if fr, ok := rp.(fetchReporter); ok {
			n, ok := fr.Fetched()
			if !ok {
				return s, fmt.Errorf("%s: cannot tell from its output how many messages it fetched", rp.Command())
			}
			if n != want {
				return s, fmt.Errorf("%s: fetched %d messages, want %d", rp.Command(), n, want)
			}
		}
		return s, nil
	}
}

// warmPOP3 runs one POP3 session that lists and retrieves every message,
// so that Dovecot's POP3 side (UIDLs, sizes) and the page cache are warm
// before any peer runs. It returns the number of messages and their total
// size as RETR sent them.
func (s *dovecotServer) warmPOP3(ctx context.Context) (n int, size int64, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.d.POP3Addr())
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := &pop3Conn{r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriter(conn)}
	if _, err := c.status(); err != nil {
		return 0, 0, fmt.Errorf("greeting: %w", err)
	}
	for _, cmd := range []string{"USER " + s.user, "PASS " + s.pass} {
		if _, err := c.cmd(cmd); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", strings.Fields(cmd)[0], err)
		}
	}
	st, err := c.cmd("STAT")
	if err != nil {
		return 0, 0, fmt.Errorf("STAT: %w", err)
	}
	if f := strings.Fields(st); len(f) < 1 {
		return 0, 0, fmt.Errorf("STAT: %q", st)
	} else if n, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("STAT: %q", st)
	}
	for _, cmd := range []string{"UIDL", "LIST"} {
		if _, err := c.cmd(cmd); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", cmd, err)
		}
		if _, err := c.multiLine(); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", cmd, err)
		}
	}
	// RETR in pipelined groups (Dovecot announces PIPELINING).
	const group = 64
	for first := 1; first <= n; first += group {
		last := min(first+group-1, n)
		for i := first; i <= last; i++ {
			fmt.Fprintf(c.w, "RETR %d\r\n", i)
		}
		if err := c.w.Flush(); err != nil {
			return 0, 0, err
		}
		for i := first; i <= last; i++ {
			if _, err := c.status(); err != nil {
				return 0, 0, fmt.Errorf("RETR %d: %w", i, err)
			}
			m, err := c.multiLine()
			if err != nil {
				return 0, 0, fmt.Errorf("RETR %d: %w", i, err)
			}
			size += m
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
	}
	if _, err := c.cmd("QUIT"); err != nil {
		return 0, 0, fmt.Errorf("QUIT: %w", err)
	}
	return n, size, nil
}

// pop3Conn is the little POP3 the warm-up needs.
type pop3Conn struct {
	r *bufio.Reader
	w *bufio.Writer
}

func (c *pop3Conn) cmd(line string) (string, error) {
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return "", err
	}
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.status()
}

// status reads a status line and returns the text after "+OK".
func (c *pop3Conn) status() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if rest, ok := strings.CutPrefix(line, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("server: %q", line)
}

// multiLine reads a multi-line body up to its "." line and returns its
// size in bytes as sent (CRLF line ends, before dot-unstuffing).
func (c *pop3Conn) multiLine() (int64, error) {
	var n int64
	start := true // at the start of a line
	for {
		line, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			n += int64(len(line))
			start = false // a long line: the rest follows
			continue
		}
		if err == io.EOF {
			return n, io.ErrUnexpectedEOF
		}
		if err != nil {
			return n, err
		}
		if start && string(line) == ".\r\n" {
			return n, nil
		}
		n += int64(len(line))
		start = true
	}
}
