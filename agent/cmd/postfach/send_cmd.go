package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/outbox"
)

// Exit statuses of `postfach send`, from sysexits.h, as mail clients
// expect of a sendmail.
const (
	exUsage    = 64 // EX_USAGE: bad arguments, no recipient
	exDataErr  = 65 // EX_DATAERR: the message's header is malformed
	exNoUser   = 67 // EX_NOUSER: no account sends as the sender
	exIOErr    = 74 // EX_IOERR: reading the message failed
	exCantCrea = 73 // EX_CANTCREAT: the store cannot be opened
	exTempFail = 75 // EX_TEMPFAIL: the message could not be queued (try again)
	exConfig   = 78 // EX_CONFIG: the config file is missing or has errors
)

// maxSendSize bounds a message read by send (the submission endpoint's
// default limit).
const maxSendSize = 35 << 20

func newSendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "send [-t] [-i|-oi] [-f FROM] [-F NAME] [RCPT...] < message",
		Short: "Queue a message for sending (a sendmail for mail clients, git send-email, cron)",
		Long: `Read a message on standard input and queue it in the store's outbox; it
returns as soon as the message is stored. With an agent (postfach run)
running, the agent stores it and sends it at once; without one, postfach
send stores it, and postfach queue --flush or the next postfach run sends
it. It takes sendmail's arguments, so it can be the sendmail
of mutt, neomutt, aerc, git send-email or cron:

  -t         recipients from the To, Cc and Bcc fields (and the arguments)
  -i, -oi    a line with a single "." does not end the message
  -f FROM    envelope sender (default: the From field's address); it
             chooses the account, as the account's addresses say
  -F NAME    full name for the From field added when there is none
  RCPT...    recipients (without -t, the only ones)

Other sendmail options mail programs pass (-oem, -odi, -oep, -B 8BITMIME,
-N, -R, -V, -em, -U, -v ...) are accepted and ignored. Bcc fields are
removed from the stored message. A From, Date or Message-ID field the
message lacks is added.

Exit status (sysexits.h): 0 queued; 64 bad usage or no recipient; 65 a
malformed header; 67 no account sends as the sender; 73 the store cannot
be opened (none yet: run postfach sync or postfach run once); 74 reading
the message failed; 75 it could not be stored (try again); 78 the config
file is missing or has errors.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := parseSendArgs(args)
			if err != nil {
				return sendFail(cmd, exUsage, err)
			}
			if opts.help {
				return cmd.Help()
			}
			if opts.config != "" {
				g.configPath = opts.config
			}
			if opts.cpuProfile != "" { // the global flag, parsed here
				f, err := os.Create(opts.cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			g.verbose = g.verbose || opts.verbose
			return runSend(cmd, g, opts, cmd.InOrStdin())
		},
	}
}

// sendFail prints err in one line and ends the command with code.
func sendFail(cmd *cobra.Command, code int, err error) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "postfach: send:", safe(err.Error()))
	return exitError{code}
}

// sendOptions are send's arguments.
type sendOptions struct {
	headerRcpts bool     // -t
	ignoreDots  bool     // -i, -oi
	from        string   // -f, -r
	fullName    string   // -F
	rcpts       []string // the arguments
	config      string   // --config, -c (the global flag, parsed here)
	cpuProfile  string   // --cpuprofile (the global flag, parsed here)
	verbose     bool     // -v, --verbose
	help        bool
}

// sendmail's options that take a value (the rest of the argument, or the
// next one) and are ignored: -B body type, -N DSN notify, -R DSN return,
// -V envelope id, -X log file, -L syslog tag, -h hop count, -p protocol,
// -C config file, -O option=value, -A (-Am, -Ac), -d debug, -e error mode
// (-em, -ep, ...), -o option (-oem, -odi, ...; -oi is -i).
const ignoredValueOpts = "BNRVXLhpCOAde"

// parseSendArgs parses sendmail's command line (getopt style: clustered
// letters, values attached or in the next argument, "--" ends options;
// options and recipients may mix).
func parseSendArgs(args []string) (*sendOptions, error) {
	o := &sendOptions{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		n := 0
		var err error
		switch {
		case a == "--":
			o.rcpts = append(o.rcpts, args[i+1:]...)
			return o, nil
		case strings.HasPrefix(a, "--") || a == "-c":
			n, err = o.longOption(args[i:])
		case len(a) < 2 || a[0] != '-':
			o.rcpts = append(o.rcpts, a)
		default:
			n, err = o.cluster(args[i:])
		}
		if err != nil {
			return nil, err
		}
		i += n
	}
	return o, nil
}

// longOption parses the global flags send takes (args[0] is one) and
// returns how many arguments after it it used.
func (o *sendOptions) longOption(args []string) (int, error) {
	name, value, inline := strings.Cut(args[0], "=")
	var dst *string
	switch name {
	case "--help":
		o.help = true
	case "--verbose":
		o.verbose = true
	case "--config", "-c":
		dst = &o.config
	case "--cpuprofile":
		dst = &o.cpuProfile
	default:
		return 0, fmt.Errorf("unknown option %s", name)
	}
	switch {
	case dst == nil:
		return 0, nil
	case inline:
		*dst = value
		return 0, nil
	case len(args) < 2:
		return 0, fmt.Errorf("%s needs a file", name)
	}
	*dst = args[1]
	return 1, nil
}

// cluster parses a cluster of sendmail's option letters (args[0]: -ti,
// -oi, -fme@example.org, -f me@...) and returns how many arguments after
// it it used (a value in the next one).
func (o *sendOptions) cluster(args []string) (int, error) {
	a, used := args[0], 0
	for j := 1; j < len(a); j++ {
		c := a[j]
		value := func() (string, error) {
			rest := a[j+1:]
			j = len(a)
			switch {
			case rest != "":
				return rest, nil
			case len(args) < 2:
				return "", fmt.Errorf("option -%c needs a value", c)
			}
			used = 1
			return args[1], nil
		}
		var v string
		var err error
		if strings.IndexByte("frFob"+ignoredValueOpts, c) >= 0 && !(c == 'h' && len(a) == 2 && (len(args) < 2 || !isDigits(args[1]))) {
			if v, err = value(); err != nil {
				return 0, err
			}
		}
		switch {
		case c == 't':
			o.headerRcpts = true
		case c == 'i' || c == 'o' && v == "i":
			o.ignoreDots = true
		case c == 'v':
			o.verbose = true
		case c == 'h' && v == "":
			o.help = true // -h alone; -h N is sendmail's hop count
		case c == 'f' || c == 'r':
			o.from = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "<"), ">")
		case c == 'F':
			o.fullName = v
		case c == 'b' && v != "m":
			return 0, fmt.Errorf("-b%s is not supported: postfach send only queues mail (-bm)", v)
		case strings.IndexByte("nmUGob"+ignoredValueOpts, c) >= 0:
			// -n no aliasing, -m me too, -U initial submission, -G
			// gateway submission, -bm, and the ignored options with a
			// value: nothing to do here.
		default:
			return 0, fmt.Errorf("unknown option -%c", c)
		}
	}
	return used, nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// runSend queues the message read from in.
func runSend(cmd *cobra.Command, g *globals, o *sendOptions, in io.Reader) error {
	ctx := cmd.Context()
	cfg, err := g.load()
	if err != nil {
		var ee exitError
		if !errors.As(err, &ee) {
			fmt.Fprintln(cmd.ErrOrStderr(), "postfach: send:", safe(err.Error()))
		}
		return exitError{exConfig}
	}
	raw, err := readMessage(in, o.ignoreDots)
	if err != nil {
		code := exIOErr
		if errors.Is(err, errTooLarge) {
			code = exDataErr
		}
		return sendFail(cmd, code, err)
	}
	msg, err := prepareMessage(cfg, o, raw, time.Now())
	if err != nil {
		return sendFail(cmd, msg.code, err)
	}
	// With an agent running, it queues the message (and sends it at
	// once); without one, or when it refused, this process does.
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Minute)
	id, handoff := agent.QueueThroughAgent(hctx, cfg, msg.account, msg.env, msg.data)
	hcancel()
	switch err := handoff; {
	case err == nil:
		if g.verbose {
			fmt.Fprintf(cmd.ErrOrStderr(), "postfach: send: queued as %d for %s by the agent, which sends it now\n", id, safe(msg.account))
		}
		return nil
	case errors.Is(err, agent.ErrAgentRefused):
		if g.verbose {
			fmt.Fprintf(cmd.ErrOrStderr(), "postfach: send: %s; queueing it here\n", safe(err.Error()))
		}
	case !errors.Is(err, agent.ErrNoAgent):
		// The agent had the message and stopped answering: it may have
		// queued it. A failure (EX_TEMPFAIL) lets the mail client keep
		// it; queueing it here could send it twice.
		return sendFail(cmd, exTempFail, fmt.Errorf("%w (the message may be queued: postfach queue shows it)", err))
	}
	m, err := agent.QueueMessage(ctx, cfg, msg.account, msg.env, bytes.NewReader(msg.data))
	if err != nil {
		if errors.Is(err, agent.ErrNoStore) {
			return sendFail(cmd, exCantCrea, err)
		}
		return sendFail(cmd, exTempFail, err)
	}
	// The message is stored: from here on, nothing fails the command.
	// An agent that refused the hand-off is told; none ran a moment ago
	// (an agent starting now sends what is queued when it starts).
	err = handoff // ErrNoAgent or ErrAgentRefused
	if errors.Is(err, agent.ErrAgentRefused) {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err = agent.NudgeOutbox(nctx, cfg, []string{msg.account})
	}
	if g.verbose {
		switch {
		case err == nil:
			fmt.Fprintf(cmd.ErrOrStderr(), "postfach: send: queued as %d for %s; the agent sends it now\n", m.ID, safe(msg.account))
		case errors.Is(err, agent.ErrNoAgent):
			fmt.Fprintf(cmd.ErrOrStderr(), "postfach: send: queued as %d for %s; no agent runs: postfach queue --flush or the next postfach run sends it\n", m.ID, safe(msg.account))
		default:
			fmt.Fprintf(cmd.ErrOrStderr(), "postfach: send: queued as %d for %s; the agent was not told: %s\n", m.ID, safe(msg.account), safe(err.Error()))
		}
	}
	return nil
}

var errTooLarge = fmt.Errorf("the message is larger than %d MiB", maxSendSize>>20)

// readMessage reads the message from r: to its end, or without
// ignoreDots to a line holding a single "." (as sendmail does).
func readMessage(r io.Reader, ignoreDots bool) ([]byte, error) {
	lr := &io.LimitedReader{R: r, N: maxSendSize + 1}
	var data []byte
	var err error
	if ignoreDots {
		data, err = io.ReadAll(lr)
	} else {
		br := bufio.NewReader(lr)
		var buf bytes.Buffer
		for {
			line, rerr := br.ReadBytes('\n')
			if t := bytes.TrimRight(line, "\r\n"); len(t) == 1 && t[0] == '.' && len(line) > 1 {
				break
			}
			buf.Write(line)
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				err = rerr
				break
			}
		}
		data = buf.Bytes()
	}
	if err != nil {
		return nil, fmt.Errorf("reading the message: %w", err)
	}
	if len(data) > maxSendSize {
		return nil, errTooLarge
	}
	return data, nil
}

// preparedMessage is a message ready for the queue.
type preparedMessage struct {
	account string
	env     index.Envelope
	data    []byte // as it is stored: Bcc removed, CRLF
	code    int    // the exit status when prepareMessage failed
}

// prepareMessage works out the account, the envelope and the stored form
// of raw: the sender from -f or the From field, the recipients from the
// arguments (and with -t the header's), a From, Date and Message-ID field
// added where missing, Bcc removed, every line ending in CRLF.
func prepareMessage(cfg *configs.Config, o *sendOptions, raw []byte, now time.Time) (*preparedMessage, error) {
	p := &preparedMessage{code: exDataErr}
	raw = crlf(raw) // ReadSubmission makes the header's lines CRLF, not the body's
	if bytes.HasPrefix(raw, []byte("From ")) {
		// An mbox separator (ReadSubmission drops it too): off before
		// fields are added above the header.
		_, raw, _ = bytes.Cut(raw, []byte("\n"))
	}
	sub, err := outbox.ReadSubmission(bytes.NewReader(raw))
	if err != nil {
		return p, err
	}
	var rcpts []string
	seen := map[string]bool{}
	add := func(addr string) {
		if k := strings.ToLower(addr); addr != "" && !seen[k] {
			seen[k] = true
			rcpts = append(rcpts, addr)
		}
	}
	if o.headerRcpts {
		for _, list := range [][]string{sub.To, sub.Cc, sub.Bcc} {
			for _, a := range list {
				add(a)
			}
		}
	}
	for _, arg := range o.rcpts {
		addrs, err := argAddresses(arg)
		if err != nil {
			p.code = exUsage
			return p, err
		}
		for _, a := range addrs {
			add(a)
		}
	}
	if len(rcpts) == 0 {
		p.code = exUsage
		if o.headerRcpts {
			return p, errors.New("no recipients: the message has no To, Cc or Bcc field and none is given as an argument")
		}
		return p, errors.New("no recipients: name them as arguments, or use -t to take them from the message")
	}
	from := o.from
	if from == "" {
		from = sub.From
	}
	acct, err := agent.AccountForSender(cfg, from)
	if err != nil {
		p.code = exNoUser
		return p, err
	}
	if from == "" {
		if from = agent.SenderAddress(acct); from == "" {
			p.code = exNoUser
			return p, fmt.Errorf("no sender address: the message has no From field, -f is not given, and account %q has no addresses", acct.Name)
		}
	}
	var extra bytes.Buffer
	has := headerFields(raw)
	if !has["from"] {
		fmt.Fprintf(&extra, "From: %s\r\n", (&mail.Address{Name: o.fullName, Address: from}).String())
	}
	if !has["date"] {
		fmt.Fprintf(&extra, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if !has["message-id"] {
		fmt.Fprintf(&extra, "Message-ID: %s\r\n", newMessageID(from, now))
	}
	if extra.Len() > 0 {
		if sub, err = outbox.ReadSubmission(io.MultiReader(&extra, bytes.NewReader(raw))); err != nil {
			return p, err
		}
	}
	data, err := io.ReadAll(sub.Body)
	if err != nil {
		return p, err
	}
	p.account, p.env, p.data, p.code = acct.Name, index.Envelope{From: from, To: rcpts}, data, 0
	return p, nil
}

// crlf returns b with every bare LF made CRLF: the stored message's line
// ends.
func crlf(b []byte) []byte {
	n := bytes.Count(b, []byte("\n")) - bytes.Count(b, []byte("\r\n"))
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// argAddresses returns the addresses of a recipient argument: an address,
// "Name <address>", a comma-separated list of them, or a local name
// ("root", as cron writes it), passed on as it is.
func argAddresses(arg string) ([]string, error) {
	if list, err := mail.ParseAddressList(arg); err == nil {
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.Address
		}
		return out, nil
	}
	if arg != "" && !strings.ContainsFunc(arg, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("<>,;:\"()[]\\", r) }) {
		return []string{arg}, nil
	}
	return nil, fmt.Errorf("recipient %q is not an address", arg)
}

// headerFields returns the lower-case names of the fields in raw's header.
func headerFields(raw []byte) map[string]bool {
	has := map[string]bool{}
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			has[strings.ToLower(strings.TrimSpace(string(name)))] = true
		}
	}
	return has
}

// newMessageID makes a Message-ID in the sender's domain.
func newMessageID(from string, now time.Time) string {
	domain := "localhost"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	b := make([]byte, 10)
	rand.Read(b)
	return fmt.Sprintf("<%d.%s.postfach@%s>", now.Unix(), hex.EncodeToString(b), domain)
}
