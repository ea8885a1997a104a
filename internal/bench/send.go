package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/agenttest"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/smtptest"
)

// The send scenario: outgoing mail. One private Postfix (package
// internal/smtptest: STARTTLS under a test CA, AUTH required, every message
// delivered to a sink in the bench's process) takes the same N messages
// from each peer, one process per message as a mail client runs its
// sendmail:
//
//   - msmtp (Debian's): `msmtp -C msmtprc -oi -t` per message, with tls on,
//     tls_starttls on, tls_trust_file = the relay's CA, auth on: each
//     process connects, does STARTTLS and AUTH, and hands the message over;
//   - postfach: `postfach send -oi -t` per message (the message is durable,
//     file and index row, before it exits 0), then `postfach queue --flush`
//     sends the queue over one connection (no agent runs);
//   - with -agent, postfach-agent: the same sends with `postfach run`
//     running on the store (its IMAP side unreachable, its sender
//     working): each send hands its message to the agent, which stores
//     it and sends what is queued while the sends go on (over one
//     connection it keeps open between messages). Its time ends when
//     the relay has delivered all and the agent has filed every copy in
//     Sent (the outbox directory is empty); the agent's CPU time and
//     peak RSS are logged.
//
// A peer's time is the user-visible total: from the start of its first
// process until the relay has delivered every recipient of every message
// (Postfix delivers in the background after it accepts). The messages are
// the corpus's (internal/corpus) with a header of several recipients: two
// in To, one in Cc, and a Bcc on every other message; each run and peer
// gets its own Message-IDs so that the deliveries can be told apart. After
// each peer's phase the bench checks, by content, that each message
// arrived exactly once per recipient (its envelope recipients), byte for
// byte as it must be sent (CRLF, the Bcc field removed), and nothing else.
//
// CPU time is summed over the peer's processes (rusage); the peak RSS is
// the largest of every 100th process (and the flush), measured with GNU
// time (see runProcess), the others run directly so that the wrapper's
// start-up is not counted a thousand times.

// sendOptions are the flags of the send scenario.
type sendOptions struct {
	benchOptions
	agent bool
}

// sendFrom is the sender of every message, and the account's address.
const sendFrom = "me@example.org"

func runSend(args []string) error {
	var o sendOptions
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	o.addFlags(fs, 1000, 1, "number of messages each peer sends")
	fs.BoolVar(&o.agent, "agent", false, "also measure postfach send with postfach run running (it sends as messages come), as peer postfach-agent")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.messages <= 0 || o.runs <= 0 {
		return fmt.Errorf("-messages and -runs must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	msmtp, err := exec.LookPath("msmtp")
	if err != nil {
		return fmt.Errorf("msmtp is not installed (apt-get install msmtp): %v", err)
	}
	if _, _, err := smtptest.FindPostfix(); err != nil {
		return err
	}

	ws, err := newWorkspace(ctx, "send", "imap", o.dir, o.keep, o.postfach, args)
	if err != nil {
		return err
	}
	defer ws.close()
	rep, log := ws.rep, os.Stderr
	rep.Seed, rep.Runs = o.seed, o.runs

	rdir, err := smtptest.TempDir()
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(log, "bench: the relay's directory is kept:", rdir)
	} else {
		defer os.RemoveAll(rdir)
	}
	relay, err := smtptest.NewRelay(rdir, smtptest.RelayOptions{})
	if err != nil {
		return err
	}
	defer relay.Close()
	rep.Server = fmt.Sprintf("Postfix (internal/smtptest) on %s: STARTTLS with a test CA, AUTH required, queue in %s, delivering to a sink in the bench",
		relay.Addr(), filepath.Dir(rdir))

	msgs := sendMessages(o.seed, o.messages)
	rep.Corpus = corpusInfo{Messages: len(msgs)}
	for _, m := range msgs {
		rep.Corpus.Bytes += int64(len(m.raw))
	}
	ms := &msmtpSender{bin: msmtp, version: msmtpVersion(ctx, msmtp)}
	pf := &postfachSender{bin: ws.pf.bin, version: ws.pf.version}
	peers := []sendPeer{pf, ms}
	if o.agent {
		peers = append(peers, &agentSender{postfachSender: postfachSender{bin: ws.pf.bin, version: ws.pf.version}})
	}
	for _, p := range peers {
		rep.Peers = append(rep.Peers, peerInfo{Name: p.name(), Version: p.ver(), Notes: p.notes()})
	}
	return ws.measure(o.json, func() error {
		for r := range o.runs {
			for k := range peers {
				p := peers[(k+r)%len(peers)]
				dir := filepath.Join(ws.dir, fmt.Sprintf("run%d-%s", r+1, p.name()))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				if err := p.setup(ctx, dir, relay); err != nil {
					return fmt.Errorf("run %d, %s: %w", r+1, p.name(), err)
				}
				tag := fmt.Sprintf("r%d.%s", r+1, p.name())
				before, err := relay.Delivered()
				if err != nil {
					return err
				}
				s, err := sendPhase(ctx, p, relay, tag, msgs, len(before))
				if err != nil {
					return fmt.Errorf("run %d, %s: %w", r+1, p.name(), err)
				}
				note, err := p.done()
				if err != nil {
					return fmt.Errorf("run %d, %s: %w", r+1, p.name(), err)
				}
				if note != "" {
					s.detail += "; " + note
				}
				rep.add("send+deliver", len(msgs), p.name(), s.sample)
				if r == 0 {
					rep.Peers[indexOfPeer(peers, p)].Command = p.command()
				}
				fmt.Fprintf(log, "bench:   run %d %-9s %8.3f s total (%s; user %.2f s, sys %.2f s, max RSS %s), verified\n",
					r+1, p.name(), s.Wall.Seconds(), s.detail, s.User.Seconds(), s.Sys.Seconds(), kib(s.MaxRSSKiB))
			}
		}
		return nil
	})
}

func indexOfPeer(peers []sendPeer, p sendPeer) int {
	for i, q := range peers {
		if q == p {
			return i
		}
	}
	return -1
}

// outMessage is one message of the scenario.
type outMessage struct {
	raw   []byte   // as the client hands it over (CRLF), with its Bcc field
	sent  []byte   // as it must arrive: without the Bcc field
	rcpts []string // the envelope recipients
	id    string   // Message-ID (no <>), before tagging
}

// sendMessages makes n messages from the corpus: its header without From,
// To and Cc, and a header of our own on top (From sendFrom, two To, one
// Cc, a Bcc on every other message).
func sendMessages(seed int64, n int) []outMessage {
	out := make([]outMessage, n)
	for i := range n {
		c := corpus.At(seed, i, corpus.Options{Folders: []string{"INBOX"}})
		head, body, _ := bytes.Cut(c.Raw, []byte("\r\n\r\n"))
		var keep []string
		skip := false
		for _, line := range strings.Split(string(head), "\r\n") {
			if line != "" && (line[0] == ' ' || line[0] == '\t') {
				if !skip {
					keep[len(keep)-1] += "\r\n" + line
				}
				continue
			}
			name, _, _ := strings.Cut(line, ":")
			switch strings.ToLower(name) {
			case "from", "to", "cc", "bcc":
				skip = true
			default:
				skip = false
				keep = append(keep, line)
			}
		}
		to := []string{fmt.Sprintf("anna.%d@example.com", i), fmt.Sprintf("bert.%d@example.net", i)}
		cc := fmt.Sprintf("carla.%d@example.org", i)
		top := fmt.Sprintf("From: Postfach Tester <%s>\r\nTo: Anna <%s>, %s\r\nCc: Carla <%s>\r\n", sendFrom, to[0], to[1], cc)
		m := outMessage{id: c.MessageID, rcpts: append(to, cc)}
		rest := strings.Join(keep, "\r\n") + "\r\n\r\n" + string(body)
		m.sent = []byte(top + rest)
		if i%2 == 0 {
			bcc := fmt.Sprintf("dora.%d@example.com", i)
			m.rcpts = append(m.rcpts, bcc)
			m.raw = []byte(top + "Bcc: " + bcc + "\r\n" + rest)
		} else {
			m.raw = m.sent
		}
		out[i] = m
	}
	return out
}

// tagged returns m's bytes with its Message-ID made unique for tag.
func tagged(b []byte, id, tag string) []byte {
	return bytes.Replace(b, []byte("Message-ID: <"+id+">"), []byte("Message-ID: <"+tag+"."+id+">"), 1)
}

// sendPeer is one way of sending the messages.
type sendPeer interface {
	name() string
	ver() string
	notes() string
	command() string
	// setup prepares a fresh run in dir (untimed).
	setup(ctx context.Context, dir string, relay *smtptest.Relay) error
	// argv is the command line that sends one message (on stdin).
	argv() []string
	// finish is what runs after the last message is handed over (nil:
	// nothing).
	finish() []string
	// done ends the phase (untimed), after the deliveries are verified;
	// it returns a note for the log ("" for none).
	done() (string, error)
}

// sendSample is a peer's phase: the sample and a line of details.
type sendSample struct {
	sample
	detail string
}

// sendPhase sends msgs through p, one process each, runs its finish, waits
// until the relay delivered every message to every recipient, and checks
// what arrived (the deliveries after the first skip ones).
func sendPhase(ctx context.Context, p sendPeer, relay *smtptest.Relay, tag string, msgs []outMessage, skip int) (sendSample, error) {
	var s sendSample
	inputs := make([][]byte, len(msgs))
	for i, m := range msgs {
		inputs[i] = tagged(m.raw, m.id, tag)
	}
	argv := p.argv()
	syscall.Sync()
	start := time.Now()
	for i, in := range inputs {
		var ps sample
		var err error
		if i%100 == 0 {
			ps, err = measuredProcess(ctx, in, argv, true)
		} else {
			ps, err = plainProcess(ctx, in, argv, true)
		}
		if err != nil {
			return s, fmt.Errorf("message %d: %w", i, err)
		}
		s.User += ps.User
		s.Sys += ps.Sys
		s.MaxRSSKiB = max(s.MaxRSSKiB, ps.MaxRSSKiB)
	}
	handed := time.Since(start)
	var fin time.Duration
	if f := p.finish(); f != nil {
		t0 := time.Now()
		ps, err := measuredProcess(ctx, nil, f, false)
		if err != nil {
			return s, err
		}
		fin = time.Since(t0)
		s.User += ps.User
		s.Sys += ps.Sys
		s.MaxRSSKiB = max(s.MaxRSSKiB, ps.MaxRSSKiB)
	}
	t0 := time.Now()
	if err := waitSent(ctx, relay, tag, msgs, skip); err != nil {
		return s, err
	}
	if w, ok := p.(interface{ waitFiled(context.Context) error }); ok {
		if err := w.waitFiled(ctx); err != nil {
			return s, err
		}
	}
	s.Wall = time.Since(start)
	s.detail = fmt.Sprintf("%d processes %.3f s", len(msgs), handed.Seconds())
	if fin > 0 {
		s.detail += fmt.Sprintf(", %s %.3f s", p.finish()[len(p.finish())-2]+" "+p.finish()[len(p.finish())-1], fin.Seconds())
	}
	s.detail += fmt.Sprintf(", then delivered after %.3f s", time.Since(t0).Seconds())
	return s, verifySent(relay, tag, msgs, skip)
}

// plainProcess runs argv with stdin in, measuring CPU time only; quiet:
// it must print nothing.
func plainProcess(ctx context.Context, in []byte, argv []string, quiet bool) (sample, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var s sample
	if ps := cmd.ProcessState; ps != nil {
		s.User, s.Sys = ps.UserTime(), ps.SystemTime()
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w\n%s", shellQuote(argv), err, tail(out.String()))
	}
	if quiet && out.Len() > 0 {
		return s, fmt.Errorf("%s printed (and should not):\n%s", shellQuote(argv), tail(out.String()))
	}
	return s, nil
}

// measuredProcess runs argv with stdin in under GNU time (when installed)
// for its peak RSS.
func measuredProcess(ctx context.Context, in []byte, argv []string, quiet bool) (sample, error) {
	gt := gnuTime()
	if gt == "" {
		return plainProcess(ctx, in, argv, quiet)
	}
	f, err := os.CreateTemp("", "bench-rss-")
	if err != nil {
		return sample{}, err
	}
	f.Close()
	defer os.Remove(f.Name())
	s, err := plainProcess(ctx, in, append([]string{gt, "-o", f.Name(), "-f", "%M"}, argv...), quiet)
	if err != nil {
		return s, err
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return s, err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return s, fmt.Errorf("GNU time wrote no peak RSS")
	}
	s.MaxRSSKiB, err = strconv.ParseInt(fields[len(fields)-1], 10, 64)
	return s, err
}

// sentIndex maps a delivered message to its index in msgs by its tagged
// Message-ID; -1 when it is not one of tag's.
func sentIndex(data []byte, tag string, ids map[string]int) int {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Message-ID: <")); ok {
			id := strings.TrimSuffix(string(v), ">")
			if rest, ok := strings.CutPrefix(id, tag+"."); ok {
				if i, ok := ids[rest]; ok {
					return i
				}
			}
			return -1
		}
	}
	return -1
}

// waitSent waits until every recipient of every message of tag has had
// a delivery.
func waitSent(ctx context.Context, relay *smtptest.Relay, tag string, msgs []outMessage, skip int) error {
	ids := map[string]int{}
	want := 0
	for i, m := range msgs {
		ids[m.id] = i
		want += len(m.rcpts)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	got, seen := 0, skip
	for {
		ds, err := relay.WaitDelivered(ctx, seen+1)
		if err != nil {
			return fmt.Errorf("waiting for the relay's deliveries (%d of %d recipients so far): %w", got, want, err)
		}
		for _, d := range ds[seen:] {
			if sentIndex(d.Data, tag, ids) >= 0 {
				got += len(d.To)
			}
		}
		seen = len(ds)
		if got >= want {
			return nil
		}
	}
}

// verifySent checks the relay's deliveries after the first skip ones: each
// message of tag exactly once per recipient, from sendFrom, byte for byte
// as it must be sent; nothing else.
func verifySent(relay *smtptest.Relay, tag string, msgs []outMessage, skip int) error {
	ds, err := relay.Delivered()
	if err != nil {
		return err
	}
	return checkSent(ds[skip:], tag, msgs)
}

// checkSent checks deliveries ds against msgs (see verifySent).
func checkSent(ds []smtptest.Delivered, tag string, msgs []outMessage) error {
	ids := map[string]int{}
	for i, m := range msgs {
		ids[m.id] = i
	}
	got := make([]map[string]int, len(msgs))
	var diffs []string
	for _, d := range ds {
		i := sentIndex(d.Data, tag, ids)
		if i < 0 {
			diffs = append(diffs, fmt.Sprintf("a delivery that is not one of this phase's messages (to %v)", d.To))
			continue
		}
		m := msgs[i]
		if want := tagged(m.sent, m.id, tag); !bytes.Equal(d.Data, want) {
			diffs = append(diffs, fmt.Sprintf("message %d (%s): content differs (%d bytes, want %d)%s", i, m.id, len(d.Data), len(want), firstDiff(d.Data, want)))
		}
		if d.From != sendFrom {
			diffs = append(diffs, fmt.Sprintf("message %d: envelope sender %q, want %q", i, d.From, sendFrom))
		}
		if got[i] == nil {
			got[i] = map[string]int{}
		}
		for _, to := range d.To {
			got[i][strings.ToLower(to)]++
		}
	}
	for i, m := range msgs {
		for _, r := range m.rcpts {
			if n := got[i][r]; n != 1 {
				diffs = append(diffs, fmt.Sprintf("message %d (%s): delivered %d times to %s, want once", i, m.id, n, r))
			}
			delete(got[i], r)
		}
		for r := range got[i] {
			diffs = append(diffs, fmt.Sprintf("message %d (%s): delivered to %s, not a recipient", i, m.id, r))
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("... and %d more", len(diffs)-10))
		}
		return fmt.Errorf("the relay's deliveries are not the messages sent:\n  %s", strings.Join(diffs, "\n  "))
	}
	return nil
}

// firstDiff describes where a and b first differ.
func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	ctx := func(x []byte) string { return strconv.Quote(string(x[max(0, i-40):min(len(x), i+40)])) }
	return fmt.Sprintf(" at byte %d: got %s, want %s", i, ctx(a), ctx(b))
}

// msmtpSender is Debian's msmtp, one process per message.
type msmtpSender struct {
	bin, version, rc string
}

func (m *msmtpSender) name() string { return "msmtp" }
func (m *msmtpSender) ver() string  { return m.version }
func (m *msmtpSender) notes() string {
	return "one process per message: connect, STARTTLS (the relay's CA as tls_trust_file), AUTH, MAIL/RCPT/DATA, QUIT; Bcc removed (-t)"
}
func (m *msmtpSender) argv() []string        { return []string{m.bin, "-C", m.rc, "-oi", "-t"} }
func (m *msmtpSender) finish() []string      { return nil }
func (m *msmtpSender) done() (string, error) { return "", nil }
func (m *msmtpSender) command() string       { return shellQuote(m.argv()) + " < message" }

func (m *msmtpSender) setup(_ context.Context, dir string, relay *smtptest.Relay) error {
	m.rc = filepath.Join(dir, "msmtprc")
	rc := fmt.Sprintf(`defaults
tls on
tls_starttls on
tls_trust_file %s
auth on
syslog off

account bench
host %s
port %d
from %s
user %s
password %s

account default : bench
`, relay.CAFile, relay.Host, relay.Port, sendFrom, relay.Username, relay.Password)
	return os.WriteFile(m.rc, []byte(rc), 0o600)
}

func msmtpVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "msmtp (version unknown)"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if pkg, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", "msmtp").Output(); err == nil {
		return strings.TrimSpace(first) + " (Debian " + strings.TrimSpace(string(pkg)) + ")"
	}
	return strings.TrimSpace(first)
}

// postfachSender is postfach send per message, then postfach queue
// --flush.
type postfachSender struct {
	bin, version, conf string
}

func (p *postfachSender) name() string { return "postfach" }
func (p *postfachSender) ver() string  { return p.version }
func (p *postfachSender) notes() string {
	return "postfach send per message (durable in the outbox, file and index row, before it exits), then postfach queue --flush: one connection, STARTTLS, AUTH; copies filed in the local Sent folder (save_sent default)"
}
func (p *postfachSender) argv() []string {
	return []string{p.bin, "--config", p.conf, "send", "-oi", "-t"}
}
func (p *postfachSender) finish() []string {
	return []string{p.bin, "--config", p.conf, "queue", "--flush"}
}
func (p *postfachSender) done() (string, error) { return "", nil }
func (p *postfachSender) command() string {
	return shellQuote(p.argv()) + " < message (each), then " + shellQuote(p.finish())
}

// setup writes a config whose one account sends through relay and makes
// its store (postfach queue, untimed): send queues only into a store that
// exists. The account's IMAP side is never contacted.
func (p *postfachSender) setup(ctx context.Context, dir string, relay *smtptest.Relay) error {
	p.conf = filepath.Join(dir, "postfach.toml")
	text := fmt.Sprintf(`[store]
path = %s

[[accounts]]
name = %s
kind = "imap"
host = "127.0.0.1"
port = 1
tls = "none"
username = "nobody"
password = "unused"
addresses = [%s]

  [accounts.smtp]
  host = %s
  port = %d
  tls = "starttls"
  ca_file = %s
  username = %s
  password = %s
`, tomlString(filepath.Join(dir, "store")), tomlString(postfachAccount), tomlString(sendFrom),
		tomlString(relay.Host), relay.Port, tomlString(relay.CAFile), tomlString(relay.Username), tomlString(relay.Password))
	if err := os.WriteFile(p.conf, []byte(text), 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, p.bin, "--config", p.conf, "queue").CombinedOutput()
	if err != nil {
		return fmt.Errorf("making the store (postfach queue): %w\n%s", err, out)
	}
	return nil
}

// agentSender is postfach send per message with postfach run running on
// the store: each send nudges the agent, whose sender sends what is
// queued (over one connection while messages keep coming).
type agentSender struct {
	postfachSender
	agent *agenttest.Agent
	cpu0  time.Duration
}

func (a *agentSender) name() string { return "postfach-agent" }
func (a *agentSender) notes() string {
	return "postfach send per message with postfach run running: each send hands its message to the agent (durable before the send exits), which sends what is queued; the time ends when the relay has delivered all and the agent has filed every copy in Sent; the agent's CPU is in its detail line"
}
func (a *agentSender) finish() []string { return nil }
func (a *agentSender) command() string {
	return shellQuote(a.argv()) + " < message (each), with " + shellQuote([]string{a.bin, "--config", a.conf, "run"}) + " running"
}

func (a *agentSender) setup(ctx context.Context, dir string, relay *smtptest.Relay) error {
	if err := a.postfachSender.setup(ctx, dir, relay); err != nil {
		return err
	}
	ag, err := agenttest.StartAgent(a.bin, a.conf, nil)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		st, err := ag.Status(ctx)
		if err == nil && st.Agent != nil {
			break
		}
		if time.Now().After(deadline) {
			ag.Kill()
			return fmt.Errorf("postfach run does not answer: %v\n%s", err, tail(ag.Log().String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.agent = ag
	a.cpu0, err = procCPU(ag.PID())
	return err
}

// waitFiled waits until the agent has filed every sent message's copy
// in Sent (the outbox's files go once their follow-ups are done), so that
// the agent's time, like queue --flush's, includes them.
func (a *agentSender) waitFiled(ctx context.Context) error {
	cur := filepath.Join(filepath.Dir(a.conf), "store", ".postfach", "outbox", "cur")
	for deadline := time.Now().Add(time.Minute); ; {
		ents, err := os.ReadDir(cur)
		if err != nil {
			return err
		}
		if len(ents) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the agent left %d messages in the outbox a minute after the relay delivered them", len(ents))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (a *agentSender) done() (string, error) {
	cpu, err := procCPU(a.agent.PID())
	if err != nil {
		a.agent.Kill()
		return "", err
	}
	hwm, err := procHWM(a.agent.PID())
	if err != nil {
		a.agent.Kill()
		return "", err
	}
	if _, err := a.agent.Stop(30 * time.Second); err != nil {
		return "", err
	}
	return fmt.Sprintf("the agent: CPU %.2f s, peak RSS %s", (cpu - a.cpu0).Seconds(), kib(hwm)), nil
}
