package outbox

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// testHookReplied, when set (by tests), runs after the relay's reply to
// the end of DATA, before it is recorded; true stops the pass there, as a
// crash would (the message stays "sending").
var testHookReplied func(id index.OutboxID) bool

// errCrash is how a pass stopped by testHookReplied ends.
var errCrash = errors.New("outbox: stopped by a test hook (a simulated crash)")

// addr is the relay's address for messages.
func (s *Sender) addr() string {
	return net.JoinHostPort(s.o.Relay.Host, strconv.Itoa(s.o.Relay.Port))
}

// helloName is the name the client gives in EHLO.
func helloName() string {
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && !strings.ContainsAny(h, " \t\r\n") {
		return h
	}
	return "localhost"
}

// dial connects to the relay, with TLS as configured, and signs in.
func (s *Sender) dial(ctx context.Context) (*relayConn, error) {
	r := s.o.Relay
	cfg := &tls.Config{}
	if r.TLSConfig != nil {
		cfg = r.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = r.Host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	tcp, err := d.DialContext(ctx, "tcp", s.addr())
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", s.addr(), err)
	}
	conn := &capConn{Conn: tcp}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var c *smtp.Client
	switch r.TLS {
	case "implicit":
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("relay %s: TLS: %w", s.addr(), err)
		}
		c = smtp.NewClient(tc)
	case "starttls":
		c, err = smtp.NewClientStartTLS(conn, cfg)
		if err != nil {
			conn.Close()
			if strings.Contains(err.Error(), "support STARTTLS") {
				return nil, fmt.Errorf("relay %s does not offer STARTTLS (tls = \"starttls\"): not sending in plaintext", s.addr())
			}
			return nil, fmt.Errorf("relay %s: STARTTLS: %w", s.addr(), err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	// EHLO (after STARTTLS: the first command over TLS, so a
	// certificate that does not verify fails here).
	if err := c.Hello(helloName()); err != nil {
		c.Close()
		return nil, fmt.Errorf("relay %s: %w", s.addr(), err)
	}
	if err := s.signIn(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	return &relayConn{Client: c, raw: conn}, nil
}

// signIn authenticates with the account's credentials, if it has any.
func (s *Sender) signIn(ctx context.Context, c *smtp.Client) error {
	r := s.o.Relay
	cr := r.Auth
	if cr.Username == "" {
		return nil
	}
	ok, params := c.Extension("AUTH")
	if !ok {
		return fmt.Errorf("relay %s offers no AUTH, and a username is configured", s.addr())
	}
	offered := strings.Fields(params)
	mech := cr.Choose(offered)
	if mech == "" {
		return fmt.Errorf("relay %s offers AUTH %s, none of which postfach can use with these credentials (%s)",
			s.addr(), strings.Join(offered, " "), strings.Join(cr.Mechanisms(), " "))
	}
	for try := 0; ; try++ {
		sc, err := cr.Client(ctx, mech, r.Host, r.Port)
		if err != nil {
			return fmt.Errorf("relay %s: credentials of %q: %w", s.addr(), cr.Username, err)
		}
		err = c.Auth(sc)
		if err == nil {
			return nil
		}
		var se *smtp.SMTPError
		// A token refused once is fetched again before giving up.
		if try == 0 && cr.Token != nil && errors.As(err, &se) && se.Code == 535 {
			continue
		}
		return fmt.Errorf("relay %s: AUTH %s as %q: %s", s.addr(), mech, cr.Username, describe(err))
	}
}

// describe is an SMTP error's reply as one line ("550 5.1.1 No such
// user"), or a network error's text.
func describe(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		msg := strings.Join(strings.Fields(se.Message), " ")
		if ec := se.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
			return fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], msg)
		}
		return fmt.Sprintf("%d %s", se.Code, msg)
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// permanent says whether err is a 5xx reply.
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500
}

// connLost says whether err leaves the connection unusable: anything
// but an SMTP reply, or 421 (the relay closes it).
func connLost(err error) bool {
	var se *smtp.SMTPError
	return !errors.As(err, &se) || se.Code == 421
}

// sendAll sends the due messages over one connection (one the relay
// drops is not opened again: the rest wait for their next attempt), and
// once the relay answers, the messages whose last attempt found none
// (some of them perhaps not due yet: when no relay answers, those keep
// their rows and schedule, and are not counted as tried). due may be
// empty: a nudged pass then only looks for a relay.
func (s *Sender) sendAll(ctx context.Context, due []*index.OutboxMessage, b *batch) error {
	var err error
	c, reused := s.reuseIdle()
	if !reused {
		c, err = s.dial(ctx)
		if ctx.Err() == nil {
			s.dialed(err, len(due))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.deferAll(due, err.Error(), b)
			return nil
		}
	}
	keep := false
	defer func() {
		if !keep {
			c.Close()
		}
	}()
	// A stop closes the connection, but never between the final "." and
	// its reply (relayConn): the relay may be taking the message.
	unwatch := c.watch(ctx)
	defer unwatch()
	// A relay that answers: the messages that found none before go too.
	due, err = s.withConnFailed(ctx, due)
	if err != nil {
		return err
	}
	utf8, _ := c.Extension("SMTPUTF8")
	tried := map[index.OutboxID]bool{}
	for len(due) > 0 {
		for i, m := range due {
			if ctx.Err() != nil {
				return nil // the rest stay due
			}
			tried[m.ID] = true
			lost, dirty, err := s.sendOne(ctx, c, m, utf8, b)
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil // stopped: the rest stay due
			}
			if lost == "" && dirty {
				if err := c.Reset(); err != nil {
					lost = describe(err)
				}
			}
			if lost != "" {
				s.deferAll(due[i+1:], lost, b)
				return nil
			}
		}
		// Messages queued while these were sent (a mail client's burst
		// of `postfach send`, each nudging the agent) go over this
		// connection too, not over one of their own each.
		if due, err = s.queuedMeanwhile(ctx, tried); err != nil {
			return err
		}
	}
	// The last outcome is committed before QUIT: its round trip is no
	// part of the window in which a crash resends a message.
	if err := s.commit(ctx, b, 0); err != nil {
		return err
	}
	// Kept unless a stop came (unwatch false: it closed c).
	if s.running.Load() && s.o.IdleConn > 0 && unwatch() {
		keep = true
		s.idle, s.idleAt = c, time.Now()
		return nil
	}
	_ = c.Quit()
	return nil
}

// reuseIdle takes the connection an earlier pass left open (see
// Sender.idle), if it has not expired and still answers NOOP; one that
// does not is closed (nothing of a message was sent over it yet).
func (s *Sender) reuseIdle() (*relayConn, bool) {
	c := s.idle
	if c == nil {
		return nil, false
	}
	s.idle = nil
	if time.Since(s.idleAt) >= s.o.IdleConn || c.Noop() != nil {
		c.Close()
		return nil, false
	}
	return c, true
}

// queuedMeanwhile returns the messages due now that this pass has not
// tried yet.
func (s *Sender) queuedMeanwhile(ctx context.Context, tried map[index.OutboxID]bool) ([]*index.OutboxMessage, error) {
	var due []*index.OutboxMessage
	if err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		ms, err := tx.OutboxDue(s.o.Account, s.o.Now(), false, false)
		for _, m := range ms {
			if !tried[m.ID] {
				due = append(due, m)
			}
		}
		return err
	}); err != nil {
		return nil, err
	}
	return due, nil
}

// withConnFailed adds to due the queued messages whose last attempt
// found no relay.
func (s *Sender) withConnFailed(ctx context.Context, due []*index.OutboxMessage) ([]*index.OutboxMessage, error) {
	var more []*index.OutboxMessage
	if err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		more, err = tx.OutboxDue(s.o.Account, s.o.Now(), false, true)
		return err
	}); err != nil {
		return nil, err
	}
	in := map[index.OutboxID]bool{}
	for _, m := range due {
		in[m.ID] = true
	}
	for _, m := range more {
		if !in[m.ID] {
			due = append(due, m)
		}
	}
	return due, nil
}

// deferAll records a failed attempt (reply) of messages not claimed.
func (s *Sender) deferAll(ms []*index.OutboxMessage, reply string, b *batch) {
	for _, m := range ms {
		res := map[string]index.OutboxRecipient{}
		for _, r := range m.Recipients {
			if r.State == index.RcptPending {
				res[r.Addr] = index.OutboxRecipient{Addr: r.Addr, State: index.RcptPending, Reply: reply}
			}
		}
		s.finish(m, res, reply, false, true, b)
	}
}

// sendOne sends m over c. It returns the error text when the connection
// is lost (the caller defers the rest), whether a mail transaction was
// left open (the caller resets it), and an error only for the store.
func (s *Sender) sendOne(ctx context.Context, c *relayConn, m *index.OutboxMessage, utf8 bool, b *batch) (lost string, dirty bool, err error) {
	f, needs, eightBit, err := openMessage(m)
	if err != nil {
		// The file is gone or unreadable: nothing can be sent.
		s.failAll(m, fmt.Sprintf("the queued message cannot be read: %v", err), false, b)
		return "", false, nil
	}
	defer f.Close()
	if needs && !utf8 {
		s.failAll(m, fmt.Sprintf("the message needs SMTPUTF8 (non-ASCII addresses or header fields), and relay %s does not offer it", s.addr()), false, b)
		return "", false, nil
	}
	if ok, _ := c.Extension("8BITMIME"); eightBit && !ok {
		s.failAll(m, fmt.Sprintf("the message has 8-bit content, and relay %s does not offer 8BITMIME (a mail client sends it encoded, as quoted-printable or base64)", s.addr()), false, b)
		return "", false, nil
	}
	// Written ahead of MAIL FROM, with the outcome of the message before.
	if err := s.commit(ctx, b, m.ID); err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return "", false, s.commit(ctx, b, 0) // deleted meanwhile
		}
		return "", false, err
	}
	t := &transaction{s: s, m: m, b: b, res: map[string]index.OutboxRecipient{}}
	if !t.envelope(c, needs) {
		return t.lost, t.dirty, nil
	}
	w, reply, err := s.data(c, f)
	if err != nil {
		t.outcome(reply, w != nil, false, err)
		return t.lost, t.dirty, nil
	}
	err = s.endData(ctx, c, m, w, b, t.outcome)
	return t.lost, t.dirty, err
}

// data sends the DATA command and the message's content (CRLF line
// ends), all but the final "."; w is nil when the relay refused DATA,
// else the transaction is open (ended by endData, or cut off by the
// closed connection when the content could not be sent: err is set then).
func (s *Sender) data(c *relayConn, f *os.File) (w *smtp.DataCommand, reply string, err error) {
	w, err = c.Data()
	if err != nil {
		return nil, describe(err), err
	}
	if _, err := io.Copy(maildir.NewCRLFWriter(w), f); err != nil {
		// Never the final "." after a part of the message: the
		// connection goes, and the relay drops what it got.
		c.Close()
		return w, describe(err), fmt.Errorf("sending the message: %w", err)
	}
	return w, "", nil
}

// heldReplyLimit bounds how long endData holds the store's write lock
// waiting for the relay's reply to the end of a message (a relay answers
// in milliseconds; one that takes longer gets its reply recorded after
// it comes, with the next commit). A variable for tests.
var heldReplyLimit = 500 * time.Millisecond

// errLateReply rolls back endData's transaction when the reply takes
// longer than heldReplyLimit.
var errLateReply = errors.New("outbox: the relay's reply to the end of the message is late")

// endData sends the final "." of m (w: its open DATA) and has outcome
// record the relay's reply, committed at once: the store's write lock is
// taken before the "." goes out (index.Store.OutboxCommitAfter), so the
// window in which a crash would send m again, from the "." to the
// commit of the reply, holds the relay's own work and one fsync, never a
// wait for another writer. A reply later than heldReplyLimit, or a store
// that cannot begin the transaction, is recorded with the next commit;
// after one late reply, the connection's later messages are sent without
// the lock held.
func (s *Sender) endData(ctx context.Context, c *relayConn, m *index.OutboxMessage, w *smtp.DataCommand,
	b *batch, outcome func(reply string, started, finalLost bool, err error)) error {
	type answer struct {
		reply     string
		finalLost bool
		err       error
	}
	var got chan answer
	finalDot := func() {
		got = make(chan answer, 1)
		// From here on a stop waits for the reply (relayConn).
		c.awaitingFinal(true)
		go func() {
			resp, err := w.CloseWithResponse()
			c.awaitingFinal(false)
			var se *smtp.SMTPError
			switch {
			case err != nil:
				got <- answer{describe(err), !errors.As(err, &se), err}
			default:
				got <- answer{"250 " + strings.Join(strings.Fields(resp.StatusText), " "), false, nil}
			}
		}()
	}
	record := func(a answer) error {
		if testHookReplied != nil && testHookReplied(m.ID) {
			return errCrash
		}
		outcome(a.reply, true, a.finalLost, a.err)
		return nil
	}
	if c.slow {
		// A relay that took longer than heldReplyLimit once (a content
		// filter before its queue, say) would hold every writer of the
		// store that long per message: its replies are recorded with the
		// next commit, as they were before the lock was held.
		finalDot()
		return record(<-got)
	}
	err := s.commitAfter(ctx, b, 0, func() error {
		finalDot()
		t := time.NewTimer(heldReplyLimit)
		defer t.Stop()
		select {
		case a := <-got:
			return record(a)
		case <-t.C:
			return errLateReply
		}
	})
	switch {
	case err == nil || errors.Is(err, errCrash):
		return err
	case got == nil:
		// The transaction did not begin: the "." goes out without it.
		finalDot()
	case !errors.Is(err, errLateReply):
		// The commit failed after the reply was recorded: its outcome
		// stays pending (see batch), and the store's error stops the pass.
		return err
	default:
		c.slow = true
	}
	return record(<-got)
}

// openMessage opens m's file and says whether sending it needs SMTPUTF8
// (a non-ASCII envelope address or header byte, RFC 6531) and whether it
// has 8-bit content anywhere (which only a relay offering 8BITMIME may
// be sent, RFC 6152; go-smtp then says BODY=8BITMIME).
func openMessage(m *index.OutboxMessage) (f *os.File, needs, eightBit bool, err error) {
	needs = !ascii(m.From)
	for _, r := range m.Recipients {
		if !ascii(r.Addr) {
			needs = true
		}
	}
	f, err = os.Open(m.Path)
	if err != nil {
		return nil, false, false, err
	}
	br := bufio.NewReader(f)
	header := true
	for {
		line, err := br.ReadSlice('\n')
		if !ascii(string(line)) {
			eightBit = true
			if header {
				needs = true
			}
		}
		if err == nil && header && (len(line) == 1 || string(line) == "\r\n") {
			header = false
		}
		if (err != nil && !errors.Is(err, bufio.ErrBufferFull)) || (eightBit && !header) {
			break
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, false, false, err
	}
	return f, needs, eightBit, nil
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// failAll fails every pending recipient of m with reason.
func (s *Sender) failAll(m *index.OutboxMessage, reason string, claimed bool, b *batch) {
	res := map[string]index.OutboxRecipient{}
	for _, r := range m.Recipients {
		if r.State == index.RcptPending {
			res[r.Addr] = index.OutboxRecipient{Addr: r.Addr, State: index.RcptFailed, Reply: reason}
		}
	}
	s.log.Warn("outbox: message failed", "id", m.ID, "reason", reason)
	s.finish(m, res, reason, claimed, false, b)
}

// finish records an attempt's results res (by address) and what follows
// from them: rescheduling with backoff, expiry, notices, the copy to
// Sent, to commit with the next claim (batch.pending; counted in the
// report once committed). claimed: the
// attempt was counted by OutboxSending.
func (s *Sender) finish(m *index.OutboxMessage, res map[string]index.OutboxRecipient, reply string, claimed, conn bool, b *batch) {
	now := s.o.Now()
	attempts := m.Attempts + 1
	o := index.OutboxOutcome{ID: m.ID, LastReply: reply, Attempt: !claimed, ConnFailed: conn}
	// A message tried before its time (a nudge, a flush) that finds no
	// relay keeps its schedule: how often the relay is nudged while down
	// does not stretch the wait once it is back.
	early := !claimed && conn && m.NextAttempt.After(now)
	if early {
		o.Attempt = false
	}
	sentBefore, sentNow, failedNow, pending := false, false, false, 0
	for _, r := range m.Recipients {
		if r.State == index.RcptSent {
			sentBefore = true
		}
	}
	age := now.Sub(m.Queued)
	expired := age >= s.o.Expiry
	for i := range m.Recipients {
		r := &m.Recipients[i]
		nr, ok := res[r.Addr]
		if !ok {
			continue
		}
		if nr.State == index.RcptPending && expired {
			nr.State = index.RcptFailed
			nr.Reply = fmt.Sprintf("expired after %s in the queue; last reply: %s", age.Round(time.Minute), nr.Reply)
		}
		switch nr.State {
		case index.RcptSent:
			sentNow = true
		case index.RcptFailed:
			failedNow = true
		}
		*r = nr
		o.Recipients = append(o.Recipients, nr)
	}
	failedAny := false
	for _, r := range m.Recipients {
		switch r.State {
		case index.RcptPending:
			pending++
		case index.RcptFailed:
			failedAny = true
		}
	}
	if pending > 0 || failedNow {
		// The reply that explains why it is not sent (yet).
		for _, r := range o.Recipients {
			if r.State != index.RcptSent {
				o.LastReply = r.Reply
			}
		}
	}
	switch {
	case pending > 0:
		o.State = index.OutboxQueuedState
		o.NextAttempt = now.Add(s.backoff(attempts))
		if early {
			o.NextAttempt = m.NextAttempt
		}
		if !m.Warned && age >= s.o.Warn {
			o.Warned, o.Followups = true, o.Followups|index.FollowWarning
		}
	case failedAny:
		o.State = index.OutboxFailedState
	default:
		o.State = index.OutboxSentState
	}
	if failedNow {
		o.Followups |= index.FollowFailure
	}
	if sentNow && !sentBefore && s.o.SaveSent {
		o.Followups |= index.FollowSentCopy
	}
	if early {
		s.log.Debug("outbox: still no relay", "id", m.ID, "reply", o.LastReply)
	} else {
		s.log.Info("outbox: attempt", "id", m.ID, "state", o.State, "reply", o.LastReply)
	}
	b.pending = append(b.pending, o)
}
