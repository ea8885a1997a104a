// PLACEHOLDER: replaced by part Q at merge

// Package outbox sends an account's queued mail (a stand-in with the
// contract's signatures: one connection per round, no copy to Sent, no
// notices, a fixed retry delay).
package outbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/auth"
)

// Relay is where and how an account's mail leaves.
type Relay struct {
	Host      string
	Port      int
	TLS       string      // "implicit" | "starttls" | "none"
	TLSConfig *tls.Config // verified; ServerName = Host
	Auth      auth.Credentials
}

// Options configure a Sender.
type Options struct {
	Store      *index.Store
	Account    string
	Relay      Relay
	SaveSent   bool
	SentFolder string
	Expiry     time.Duration
	Warn       time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Sender sends one account's queue.
type Sender struct {
	o    Options
	wake chan struct{}
	mu   sync.Mutex // one round at a time
}

// FlushReport counts what a Flush did.
type FlushReport struct{ Sent, Deferred, Failed int }

// NewSender makes the sender of o.Account.
func NewSender(o Options) (*Sender, error) {
	if o.Store == nil || o.Account == "" || o.Relay.Host == "" {
		return nil, errors.New("outbox: store, account and relay host are needed")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Sender{o: o, wake: make(chan struct{}, 1)}, nil
}

// Nudge asks Run to look at the queue now (non-blocking).
func (s *Sender) Nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends what is due, then waits for the next due time or a Nudge,
// until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	for {
		if _, err := s.round(ctx, false); err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("outbox", "err", err)
		}
		t := time.NewTimer(30 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Flush sends every queued message of the account now.
func (s *Sender) Flush(ctx context.Context) (FlushReport, error) { return s.round(ctx, true) }

func (s *Sender) round(ctx context.Context, all bool) (FlushReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep FlushReport
	msgs, err := s.o.Store.PlaceholderOutboxDue(ctx, s.o.Account, all, s.o.Now())
	if err != nil || len(msgs) == 0 {
		return rep, err
	}
	c, err := s.dial(ctx)
	if err != nil {
		for _, m := range msgs {
			m.Attempts++
			m.LastReply, m.NextAttempt = oneLine(err.Error()), s.o.Now().Add(30*time.Second)
			s.o.Store.PlaceholderOutboxResult(ctx, m)
			rep.Deferred++
		}
		return rep, nil
	}
	defer c.Close()
	for _, m := range msgs {
		switch s.send(c, m) {
		case "sent":
			rep.Sent++
		case "failed":
			rep.Failed++
		default:
			rep.Deferred++
		}
		if err := s.o.Store.PlaceholderOutboxResult(ctx, m); err != nil {
			return rep, err
		}
	}
	c.Quit()
	return rep, nil
}

func (s *Sender) dial(ctx context.Context) (*smtp.Client, error) {
	r := s.o.Relay
	addr := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	var c *smtp.Client
	var err error
	switch r.TLS {
	case "implicit":
		c, err = smtp.DialTLS(addr, r.TLSConfig)
	case "starttls":
		c, err = smtp.DialStartTLS(addr, r.TLSConfig)
	default:
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		return nil, err
	}
	if r.Auth.Username != "" {
		_, offered := c.Extension("AUTH")
		mech := r.Auth.Choose(strings.Fields(offered))
		sc, err := r.Auth.Client(ctx, mech, r.Host, r.Port)
		if err == nil {
			err = c.Auth(sc)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// send sends m and sets its state and recipients' states.
func (s *Sender) send(c *smtp.Client, m *index.OutboxMessage) string {
	m.Attempts++
	fail := func(err error) string {
		m.LastReply = oneLine(err.Error())
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			m.State = "failed"
			return m.State
		}
		m.NextAttempt = s.o.Now().Add(30 * time.Second)
		c.Reset()
		return "deferred"
	}
	if err := c.Mail(m.From, nil); err != nil {
		return fail(err)
	}
	var ok []int
	for i := range m.Recipients {
		rc := &m.Recipients[i]
		if rc.State != "pending" {
			continue
		}
		if err := c.Rcpt(rc.Addr, nil); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code >= 500 {
				rc.State, rc.Reply = "failed", oneLine(err.Error())
			}
			m.LastReply = oneLine(err.Error())
			continue
		}
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		c.Reset()
		return s.settle(m)
	}
	f, err := os.Open(m.Path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	w, err := c.Data()
	if err != nil {
		return fail(err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	for _, i := range ok {
		m.Recipients[i].State = "sent"
	}
	return s.settle(m)
}

// settle sets m's state from its recipients'.
func (s *Sender) settle(m *index.OutboxMessage) string {
	pending, failed := 0, 0
	for _, rc := range m.Recipients {
		switch rc.State {
		case "pending":
			pending++
		case "failed":
			failed++
		}
	}
	switch {
	case pending > 0:
		m.State, m.NextAttempt = "queued", s.o.Now().Add(30*time.Second)
		return "deferred"
	case failed > 0:
		m.State = "failed"
	default:
		m.State = "sent"
	}
	return m.State
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Submission is a message read for queueing: Bcc removed, addresses of
// its header fields.
type Submission struct {
	From        string
	To, Cc, Bcc []string
	Body        io.Reader
}

// ReadSubmission reads the header of a message from r (CRLF or LF line
// ends; the stored message uses CRLF). A malformed header is an error
// naming the line.
func ReadSubmission(r io.Reader) (*Submission, error) {
	br := bufio.NewReader(r)
	var fields []string // unfolded, without line end
	var out bytes.Buffer
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, err
		}
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			if line != "" {
				out.WriteString("\r\n")
			}
			break
		}
		switch {
		case trimmed[0] == ' ' || trimmed[0] == '\t':
			if len(fields) == 0 {
				return nil, fmt.Errorf("header line %d: continuation line without a field", n)
			}
			fields[len(fields)-1] += "\r\n" + trimmed
		case strings.IndexByte(trimmed, ':') > 0 && !strings.ContainsAny(trimmed[:strings.IndexByte(trimmed, ':')], " \t"):
			fields = append(fields, trimmed)
		default:
			return nil, fmt.Errorf("header line %d: not a header field: %q", n, trimmed)
		}
		if err == io.EOF {
			break
		}
	}
	sub := &Submission{}
	var head bytes.Buffer
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		addrs := func() []string {
			list, err := mail.ParseAddressList(strings.ReplaceAll(value, "\r\n", ""))
			if err != nil {
				return nil
			}
			var a []string
			for _, x := range list {
				a = append(a, x.Address)
			}
			return a
		}
		switch strings.ToLower(name) {
		case "bcc", "resent-bcc":
			sub.Bcc = append(sub.Bcc, addrs()...)
			continue
		case "to", "resent-to":
			sub.To = append(sub.To, addrs()...)
		case "cc", "resent-cc":
			sub.Cc = append(sub.Cc, addrs()...)
		case "from":
			if a := addrs(); len(a) > 0 {
				sub.From = a[0]
			}
		case "sender":
			if a := addrs(); len(a) > 0 && sub.From == "" {
				sub.From = a[0]
			}
		}
		head.WriteString(f + "\r\n")
	}
	head.Write(out.Bytes())
	sub.Body = io.MultiReader(&head, &crlfReader{r: br})
	return sub, nil
}

// crlfReader turns bare LF line ends into CRLF.
type crlfReader struct {
	r      *bufio.Reader
	prevCR bool
	buf    []byte
}

func (c *crlfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.buf) > 0 {
			k := copy(p[n:], c.buf)
			c.buf = c.buf[k:]
			n += k
			continue
		}
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b == '\n' && !c.prevCR {
			c.buf = []byte{'\r', '\n'}
		} else {
			c.buf = []byte{b}
		}
		c.prevCR = b == '\r'
	}
	return n, nil
}
