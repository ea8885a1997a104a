package outbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// followupBatch is how many messages' follow-ups are filed in one
// delivery (each copy to Sent holds its file open until then).
const followupBatch = 100

// followupRetry is how soon Run tries again to file follow-ups it left
// because a sync run of the account held its turn. A variable for tests.
var followupRetry = 10 * time.Second

// followups files what sends left to file (index.Follow*): the copy to
// Sent, failure and warning notices into INBOX, many in one delivery
// that also clears their bits (index.Store.OutboxFile). It never waits
// for a sync run of the account (the sender holds the outbox lock: no
// mail would leave meanwhile): while one holds the turn, the follow-ups
// stay recorded (filingLeft), and a later pass files them.
func (s *Sender) followups(ctx context.Context) error {
	return s.fileLeft(ctx, false)
}

// fileLeft is followups; held: the caller holds the account's
// local-change turn (fileAfterRun).
func (s *Sender) fileLeft(ctx context.Context, held bool) error {
	s.filingLeft.Store(false)
	var ms []*index.OutboxMessage
	if err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.OutboxFollowups(s.o.Account)
		return err
	}); err != nil {
		return err
	}
	for len(ms) > 0 {
		n := min(len(ms), followupBatch)
		if err := s.fileFollowups(ctx, ms[:n], held); errors.Is(err, index.ErrTurnTaken) {
			s.log.Debug("outbox: a sync run holds the account's turn: copies and notices filed later", "messages", len(ms))
			s.filingLeft.Store(true)
			return nil
		} else if err != nil {
			return err
		}
		ms = ms[n:]
	}
	return nil
}

func (s *Sender) fileFollowups(ctx context.Context, ms []*index.OutboxMessage, held bool) error {
	var fs []index.OutboxFiling
	done := map[index.OutboxID]int{}
	var inbox, sent index.FolderID
	for _, m := range ms {
		bits := m.Followups
		if bits&index.FollowSentCopy != 0 && s.o.SaveSent {
			f, err := os.Open(m.Path)
			switch {
			case errors.Is(err, os.ErrNotExist):
				// Gone (deleted meanwhile, or lost): no copy, but
				// the notices are still filed and the bits cleared.
				s.log.Warn("outbox: the sent message's file is gone: no copy in Sent", "id", m.ID)
			case err != nil:
				return err
			default:
				defer f.Close()
				if sent == 0 {
					if sent, err = s.sentFolder(ctx); err != nil {
						return err
					}
				}
				fs = append(fs, index.OutboxFiling{Folder: sent, R: f, Flags: maildir.FlagSeen, Date: s.o.Now(),
					Key: index.FollowupKey(m, index.FollowSentCopy)})
			}
		}
		failure := bits&index.FollowFailure != 0
		// A warning made moot by the failure notice is not filed.
		warning := bits&index.FollowWarning != 0 && !failure && m.State == index.OutboxQueuedState
		if failure || warning {
			if inbox == 0 {
				var err error
				if inbox, err = s.folder(ctx, "INBOX", ""); err != nil {
					return err
				}
			}
			bit := index.FollowWarning
			if failure {
				bit = index.FollowFailure
			}
			fs = append(fs, index.OutboxFiling{Folder: inbox, R: bytes.NewReader(s.notice(m, failure)), Date: s.o.Now(),
				Key: index.FollowupKey(m, bit)})
		}
		done[m.ID] = bits
	}
	if held {
		return s.o.Store.OutboxFileInTurn(ctx, fs, done)
	}
	return s.o.Store.OutboxFile(ctx, fs, done)
}

// fileAfterRun waits, not holding the outbox lock, for the sync run that
// holds the account's turn to end, and then, holding the turn (ahead of
// a next run, so the copies go up with it), takes the outbox lock and
// files what was left. Run starts it when a pass left follow-ups.
func (s *Sender) fileAfterRun(ctx context.Context) {
	var id index.AccountID
	if err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		id, err = tx.Account(s.o.Account)
		return err
	}); err != nil {
		return
	}
	release := s.o.Store.LocalChangeOf(id)
	defer release()
	if ctx.Err() != nil {
		return
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.turn }()
	unlock, err := s.o.Store.LockOutbox(ctx, s.o.Account)
	if err != nil {
		return
	}
	defer unlock()
	if err := s.fileLeft(ctx, true); err != nil {
		s.log.Warn("outbox: filing copies and notices (tried again later): " + err.Error())
	}
}

// sentFolder is the folder the copies of sent messages go into.
func (s *Sender) sentFolder(ctx context.Context) (index.FolderID, error) {
	if s.o.SentFolder != "" {
		return s.folder(ctx, s.o.SentFolder, "")
	}
	return s.folder(ctx, "Sent", `\Sent`)
}

// folder returns the account's folder: the one with special use (if
// not ""), else the one named name (INBOX in any case), created if none.
func (s *Sender) folder(ctx context.Context, name, special string) (index.FolderID, error) {
	st := s.o.Store
	var acct index.AccountID
	var found index.FolderID
	if err := st.Write(ctx, func(tx *index.Tx) error {
		var err error
		if acct, err = tx.EnsureAccount(s.o.Account); err != nil {
			return err
		}
		fs, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if special != "" && strings.EqualFold(f.SpecialUse, special) {
				found = f.ID
				return nil
			}
		}
		for _, f := range fs {
			if f.Name == name || (strings.EqualFold(name, "INBOX") && strings.EqualFold(f.Name, "INBOX")) {
				found = f.ID
				return nil
			}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if found != 0 {
		return found, nil
	}
	f, err := st.CreateFolder(ctx, acct, name, nil)
	if err != nil {
		return 0, err
	}
	return f.ID, nil
}

var enhanced = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[245][0-9][0-9] ([245]\.[0-9]{1,3}\.[0-9]{1,3})\b`)
})

// status is a recipient's RFC 3464 Status for its reply.
func status(reply string, failed bool) string {
	if strings.HasPrefix(reply, "expired ") {
		return "4.4.7"
	}
	if m := enhanced().FindStringSubmatch(reply); m != nil {
		return m[1]
	}
	if len(reply) >= 3 && (reply[0] == '4' || reply[0] == '5') && reply[1] >= '0' && reply[1] <= '9' {
		return reply[:1] + ".0.0"
	}
	if failed {
		return "5.0.0"
	}
	return "4.0.0"
}

// notice is a short RFC 3464 report on m: the failed recipients (failed)
// or the pending ones (a warning), with the original's header.
func (s *Sender) notice(m *index.OutboxMessage, failed bool) []byte {
	host := helloName()
	now := s.o.Now()
	var b bytes.Buffer
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	boundary := "postfach-" + hex.EncodeToString(rb[:])
	subj, action, want := "Undelivered mail", "failed", index.RcptFailed
	if !failed {
		subj, action, want = "Delayed mail (still being retried)", "delayed", index.RcptPending
	}
	if m.Subject != "" {
		subj += ": " + m.Subject
	}
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	if m.From != "" {
		fmt.Fprintf(&b, "To: <%s>\r\n", m.From)
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subj))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%d.%s@%s>\r\n", action, m.ID, hex.EncodeToString(rb[:6]), host)
	b.WriteString("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	what := "could not be delivered to these recipients:"
	if !failed {
		what = fmt.Sprintf("has not been delivered yet to these recipients; postfach keeps trying until it is %s old:", s.o.Expiry)
	}
	fmt.Fprintf(&b, "Your message %q (queued %s through account %q) %s\r\n\r\n",
		m.Subject, m.Queued.Format(time.RFC1123Z), s.o.Account, what)
	for _, r := range m.Recipients {
		if r.State == want {
			fmt.Fprintf(&b, "  <%s>: %s\r\n", r.Addr, r.Reply)
		}
	}
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n", host, m.Queued.Format(time.RFC1123Z))
	for _, r := range m.Recipients {
		if r.State != want {
			continue
		}
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n", r.Addr, action, status(r.Reply, failed))
		fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", s.o.Relay.Host)
		if len(r.Reply) >= 3 && r.Reply[0] >= '2' && r.Reply[0] <= '5' {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", r.Reply)
		}
		if !failed {
			fmt.Fprintf(&b, "Will-Retry-Until: %s\r\n", m.Queued.Add(s.o.Expiry).Format(time.RFC1123Z))
		}
	}
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	b.Write(originalHeader(m.Path))
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// originalHeader is the header of the queued message (at most 64 KiB),
// with CRLF line ends.
func originalHeader(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var b bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() && b.Len() < 64<<10 {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}
