package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/postfach/postfach/maildir"
)

// The outbox: mail queued to leave through an account's SMTP relay
// (sync/outbox sends it). A message is a file in the outbox Maildir,
// <root>/.postfach/outbox/cur/ (mode 0600), and an outbox row with its
// envelope, one outbox_rcpts row per recipient (sql/010_outbox.sql).
// Enqueue stores both through the door's delivery sequence (Store.file;
// the file made durable by one fsync of its own, maildir.DeliverSync):
// the file is durable and named before the rows commit, so a message is
// queued exactly when its row is; a crash before the commit leaves a file
// without a row in outbox/ (never sent, never listed; CleanOutbox
// removes it).
//
// A sender, holding the account's outbox lock (LockOutbox), recovers the
// rows a crash left "sending" (OutboxRecover: back to "queued", counted in
// interrupted), claims a message before its MAIL FROM (OutboxSending:
// "sending", one attempt more), and records the relay's final replies per
// recipient (OutboxRecord; OutboxCommit records a message's outcome with
// the claim of the next one, in one commit). So the only window for a duplicate is a
// crash between the relay's reply to the end of DATA and that commit: the
// recipients it took are still pending then and get the message again
// (the row's Interrupted counts such resends).
//
// What must be filed locally after a send (the copy to Sent, a failure
// or warning notice) is recorded in the same commit as the result
// (followups) and cleared in the commit that files it (OutboxFile): it
// is filed once. Its file's Maildir key is derived from the queue
// file's (FollowupKey), so after a crash between the delivery's renames
// and its commit (the folder's next scan indexes the renamed file while
// the follow-up is still due) the next filing finds it by key and files
// no second copy. A sent message's row and file go when its follow-ups
// are done; a failed one stays, listed, until OutboxDelete.
// The sender's side is in outboxsend.go.

// OutboxID identifies a queued message.
type OutboxID int64

// Envelope is an outgoing message's SMTP envelope.
type Envelope struct {
	From string   // MAIL FROM address (no angle brackets)
	To   []string // RCPT TO addresses, Bcc recipients included
}

// Outbox states (OutboxMessage.State) and recipient states
// (OutboxRecipient.State).
const (
	OutboxQueuedState  = "queued"
	OutboxSendingState = "sending"
	OutboxFailedState  = "failed"
	OutboxSentState    = "sent"

	RcptPending = "pending"
	RcptSent    = "sent"
	RcptFailed  = "failed"
)

// Follow-ups of an outbox message (OutboxMessage.Followups): what is
// still to be filed in the account's local folders.
const (
	FollowSentCopy = 1 << iota // the copy to Sent
	FollowFailure              // the failure notice, to INBOX
	FollowWarning              // the warning notice (still trying), to INBOX
)

// OutboxMessage is one queued message, as `postfach queue` lists it.
type OutboxMessage struct {
	ID          OutboxID
	Account     string
	From        string
	Recipients  []OutboxRecipient
	Subject     string // decoded Subject field, for listings
	MessageID   string // Message-ID field
	Size        int64
	Queued      time.Time
	Attempts    int
	NextAttempt time.Time
	LastReply   string // the relay's last reply (or the network error), one line
	State       string // "queued" | "sending" | "failed" (and "sent" for the sender)
	Path        string // the message file, absolute

	// Interrupted counts the sends of this message a crash cut off after
	// it was claimed, and those whose reply to the final "." was lost
	// (RFC 1047): each was followed by a resend to the recipients still
	// pending, who may have got it twice.
	Interrupted int
	Warned      bool // the warning notice was due
	Followups   int  // Follow* bits still to file
}

// OutboxRecipient is one recipient of a queued message.
type OutboxRecipient struct {
	Addr  string
	State string // "pending" | "sent" | "failed"
	Reply string
}

// OutboxDir returns the outbox's Maildir, creating it if missing.
func (s *Store) OutboxDir() (*maildir.Dir, error) {
	if s.root == "" {
		return nil, errNoRoot
	}
	return maildir.Open(filepath.Join(s.root, ".postfach", "outbox"))
}

// checkAddr refuses an envelope address that could not go into a MAIL
// or RCPT command.
func checkAddr(what, a string) error {
	if strings.ContainsAny(a, "<>\r\n\x00 \t") {
		return fmt.Errorf("index: enqueue: %s address %q is malformed", what, a)
	}
	return nil
}

// Enqueue stores a message for account durably, through the same
// delivery sequence as Deliver (file durable, rename, directory sync,
// then the rows committed), and returns once its rows are committed.
// The file lives under <root>/.postfach/outbox/ (mode 0600). r is the
// message as it must be stored and sent: the caller has removed Bcc.
// It announces the new row on the change feed (a Change of kind
// OutboxQueued, so the agent nudges the account's sender).
func (s *Store) Enqueue(ctx context.Context, account string, env Envelope, r io.Reader) (*OutboxMessage, error) {
	if s.dry != nil {
		return nil, errors.New("index: enqueue: a dry run stores nothing")
	}
	if len(env.To) == 0 {
		return nil, errors.New("index: enqueue: no recipients")
	}
	if err := checkAddr("sender", env.From); err != nil {
		return nil, err
	}
	for _, a := range env.To {
		if a == "" {
			return nil, errors.New("index: enqueue: empty recipient address")
		}
		if err := checkAddr("recipient", a); err != nil {
			return nil, err
		}
	}
	d, err := s.OutboxDir()
	if err != nil {
		return nil, err
	}
	dlv, err := d.NewDelivery()
	if err != nil {
		return nil, err
	}
	defer dlv.Abort() // nothing once renamed
	if _, err := io.Copy(dlv, r); err != nil {
		return nil, fmt.Errorf("index: enqueue: %w", err)
	}
	// One message: an fsync of its file (on the descriptor it was
	// written through), not the syncfs of a batch, which would write
	// back every dirty page of the file system (s.file then skips it).
	if err := d.DeliverSync(dlv); err != nil {
		return nil, err
	}
	if err := dlv.Close(); err != nil {
		return nil, err
	}
	size, err := maildir.FileCRLFSize(dlv.Path())
	if err != nil {
		return nil, err
	}
	h := ParseHeader(dlv.Header())
	now := time.Now()
	m := &OutboxMessage{Account: account, From: env.From, Subject: h.Subject, MessageID: h.MessageID,
		Size: size, Queued: time.Unix(now.Unix(), 0), NextAttempt: time.Unix(now.Unix(), 0), State: OutboxQueuedState}
	for _, a := range env.To {
		m.Recipients = append(m.Recipients, OutboxRecipient{Addr: a, State: RcptPending})
	}
	var file string
	f := filing{dir: d, file: dlv, flags: maildir.FlagSeen, named: func(name string) { file = name }}
	err = s.file(ctx, []filing{f}, nil, testHookEnqueue, func(tx *Tx) error {
		acct, err := tx.EnsureAccount(account)
		if err != nil {
			return err
		}
		if err := tx.queryRow(`INSERT INTO outbox(account_id, mail_from, key, file, size, message_id, subject, queued, next_attempt)
			VALUES(?,?,?,?,?,?,?,?,?) RETURNING id`, acct, env.From, dlv.Key(), file, size, h.MessageID, h.Subject,
			now.Unix(), now.Unix()).Scan(&m.ID); err != nil {
			return fmt.Errorf("index: enqueue: %w", err)
		}
		for i, a := range env.To {
			if _, err := tx.exec(`INSERT INTO outbox_rcpts(outbox_id, seq, addr) VALUES(?,?,?)`, m.ID, i, a); err != nil {
				return fmt.Errorf("index: enqueue: %w", err)
			}
		}
		tx.record(Change{Kind: OutboxQueued, Account: acct, Name: account})
		return nil
	})
	if err != nil {
		if file != "" { // renamed, not committed: no row will name it
			_ = os.Remove(filepath.Join(d.Path, filepath.FromSlash(file)))
		}
		return nil, err
	}
	m.Path = filepath.Join(d.Path, filepath.FromSlash(file))
	return m, nil
}

// testHookEnqueue, when set (by tests), is Enqueue's delivery hook (see
// Batch.Hook).
var testHookEnqueue func(stage string) error

// CleanOutbox removes what crashes left in the outbox directory: files
// in tmp/ and files in cur/ without a row, older than an hour (an
// Enqueue between its rename and its commit has a file without a row
// for a moment). It returns how many it removed.
func (s *Store) CleanOutbox(ctx context.Context) (int, error) {
	d, err := s.OutboxDir()
	if err != nil {
		return 0, err
	}
	n, err := d.CleanTmp(time.Hour)
	if err != nil {
		return n, err
	}
	keys := map[string]bool{}
	if err := s.Read(ctx, func(tx *ReadTx) error {
		rows, err := tx.query(`SELECT key FROM outbox`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			keys[k] = true
		}
		return rows.Err()
	}); err != nil {
		return n, fmt.Errorf("index: outbox: %w", err)
	}
	es, err := d.Scan()
	if err != nil {
		return n, err
	}
	for _, e := range es {
		p := d.FilePath(e)
		st, err := os.Stat(p)
		if keys[e.Key] || err != nil || time.Since(st.ModTime()) < time.Hour {
			continue
		}
		if os.Remove(p) == nil {
			n++
		}
	}
	return n, nil
}

const outboxColumns = `o.id, a.name, o.mail_from, o.file, o.size, o.message_id, o.subject, o.queued,
	o.attempts, o.next_attempt, o.last_reply, o.state, o.interrupted, o.warned, o.followups`

// outboxSelect is the query of outbox rows meeting where.
func outboxSelect(where string) string {
	return `SELECT ` + outboxColumns + ` FROM outbox o JOIN accounts a ON a.id=o.account_id WHERE ` + where
}

// outboxQuery runs outboxSelect(where) and fills in the recipients.
func (tx *ReadTx) outboxQuery(dir, where string, args ...any) ([]*OutboxMessage, error) {
	rows, err := tx.query(outboxSelect(where), args...)
	if err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	var ms []*OutboxMessage
	byID := map[OutboxID]*OutboxMessage{}
	for rows.Next() {
		m := &OutboxMessage{}
		var file string
		var queued, next int64
		if err := rows.Scan(&m.ID, &m.Account, &m.From, &file, &m.Size, &m.MessageID, &m.Subject, &queued,
			&m.Attempts, &next, &m.LastReply, &m.State, &m.Interrupted, &m.Warned, &m.Followups); err != nil {
			rows.Close()
			return nil, fmt.Errorf("index: outbox: %w", err)
		}
		m.Queued, m.NextAttempt = fromUnix(queued), fromUnix(next)
		if dir != "" {
			m.Path = filepath.Join(dir, filepath.FromSlash(file))
		}
		ms = append(ms, m)
		byID[m.ID] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	rows.Close()
	if len(ms) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = strconv.FormatInt(int64(m.ID), 10)
	}
	rr, err := tx.query(`SELECT outbox_id, addr, state, reply FROM outbox_rcpts WHERE outbox_id IN (` +
		strings.Join(ids, ",") + `) ORDER BY outbox_id, seq`)
	if err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	defer rr.Close()
	for rr.Next() {
		var id OutboxID
		var r OutboxRecipient
		if err := rr.Scan(&id, &r.Addr, &r.State, &r.Reply); err != nil {
			return nil, fmt.Errorf("index: outbox: %w", err)
		}
		if m := byID[id]; m != nil {
			m.Recipients = append(m.Recipients, r)
		}
	}
	return ms, rr.Err()
}

// outboxPath is the outbox directory for the rows' Path (no directory is
// created: "" when the store has no root).
func (tx *ReadTx) outboxPath() string {
	if tx.root == "" {
		return ""
	}
	return filepath.Join(tx.root, ".postfach", "outbox")
}

// OutboxList returns the queued and failed messages of account ("" =
// every account), oldest first. Sent messages are not listed. (A message
// being sent is listed as "sending".) Path is set only for a store
// opened with OpenStore.
func (tx *ReadTx) OutboxList(account string) ([]*OutboxMessage, error) {
	dir := tx.outboxPath()
	if account == "" {
		return tx.outboxQuery(dir, `o.state<>'sent' ORDER BY o.queued, o.id`)
	}
	return tx.outboxQuery(dir, `a.name=? AND o.state<>'sent' ORDER BY o.queued, o.id`, account)
}

// OutboxMessage returns one outbox row (in any state), or an error
// wrapping ErrNotFound.
func (tx *ReadTx) OutboxMessage(id OutboxID) (*OutboxMessage, error) {
	ms, err := tx.outboxQuery(tx.outboxPath(), `o.id=?`, id)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("index: outbox message %d: %w", id, ErrNotFound)
	}
	return ms[0], nil
}

// OutboxDelete removes a queued or failed message (row and file). It
// returns an error wrapping ErrNotFound when there is none with that id;
// a message being sent right now is not removed (an error saying so).
func (s *Store) OutboxDelete(ctx context.Context, id OutboxID) error {
	var file string
	err := s.Write(ctx, func(tx *Tx) error {
		var state string
		err := tx.queryRow(`SELECT state, file FROM outbox WHERE id=?`, id).Scan(&state, &file)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && state == OutboxSentState) {
			return fmt.Errorf("index: outbox message %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("index: outbox: %w", err)
		}
		if state == OutboxSendingState {
			return fmt.Errorf("index: outbox message %d is being sent; try again once it is done", id)
		}
		_, err = tx.exec(`DELETE FROM outbox WHERE id=?`, id)
		return err
	})
	if err != nil {
		return err
	}
	return s.removeOutboxFile(file)
}

func (s *Store) removeOutboxFile(file string) error {
	if s.root == "" {
		return nil
	}
	p := filepath.Join(s.root, ".postfach", "outbox", filepath.FromSlash(file))
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("index: outbox: %w", err)
	}
	return nil
}
