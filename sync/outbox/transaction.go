package outbox

import (
	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/index"
)

// transaction is one message's mail transaction with the relay: what
// each recipient came to.
type transaction struct {
	s        *Sender
	m        *index.OutboxMessage
	b        *batch
	res      map[string]index.OutboxRecipient // by address
	accepted []string                         // the recipients the relay took (RCPT TO)
	lost     string                           // the error text when the connection was lost
	dirty    bool                             // a transaction left open
}

// envelope sends MAIL FROM and RCPT TO for every pending recipient. It
// reports whether the content is to be sent (some recipient accepted);
// otherwise the outcome is recorded.
func (t *transaction) envelope(c *relayConn, utf8 bool) bool {
	m := t.m
	if err := c.Mail(m.From, &smtp.MailOptions{Size: m.Size, UTF8: utf8}); err != nil {
		reply := describe(err)
		if permanent(err) {
			t.s.failAll(m, reply, true, t.b)
			return false
		}
		t.pendingAll(reply)
		if connLost(err) {
			t.lost = reply
		}
		t.s.finish(m, t.res, reply, true, t.lost != "", t.b)
		return false
	}
	last := ""
	for _, r := range m.Recipients {
		if r.State != index.RcptPending {
			continue
		}
		err := c.Rcpt(r.Addr, nil)
		switch {
		case err == nil:
			t.accepted = append(t.accepted, r.Addr)
		case permanent(err):
			last = describe(err)
			t.res[r.Addr] = index.OutboxRecipient{Addr: r.Addr, State: index.RcptFailed, Reply: last}
		default:
			last = describe(err)
			t.res[r.Addr] = index.OutboxRecipient{Addr: r.Addr, State: index.RcptPending, Reply: last}
			if connLost(err) {
				t.pendingAll(last)
				t.lost = last
				t.s.finish(m, t.res, last, true, true, t.b)
				return false
			}
		}
	}
	if len(t.accepted) == 0 {
		t.s.finish(m, t.res, last, true, false, t.b)
		t.dirty = true
		return false
	}
	return true
}

// pendingAll leaves every pending recipient without a result yet
// pending, with reply.
func (t *transaction) pendingAll(reply string) {
	for _, r := range t.m.Recipients {
		if _, done := t.res[r.Addr]; !done && r.State == index.RcptPending {
			t.res[r.Addr] = index.OutboxRecipient{Addr: r.Addr, State: index.RcptPending, Reply: reply}
		}
	}
}

// outcome records what the relay's answer to DATA or to the end of the
// message does to the accepted recipients.
func (t *transaction) outcome(reply string, started, finalLost bool, err error) {
	state := index.RcptSent
	switch {
	case err == nil:
	case permanent(err):
		state = index.RcptFailed
	default:
		state = index.RcptPending
		if connLost(err) {
			t.lost = reply
		}
	}
	for _, a := range t.accepted {
		t.res[a] = index.OutboxRecipient{Addr: a, State: state, Reply: reply}
	}
	if finalLost {
		// RFC 1047: the relay had the whole message and may have
		// taken it; the resend to the pending recipients is counted.
		t.s.log.Warn("outbox: the relay's reply to the end of the message was lost: its recipients may get it twice", "id", t.m.ID, "error", reply)
	}
	t.s.finish(t.m, t.res, reply, true, t.lost != "", t.b)
	if finalLost {
		t.b.pending[len(t.b.pending)-1].Interrupted = true
	}
	t.dirty = !started
}
