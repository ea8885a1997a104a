// PLACEHOLDER: replaced by part Q at merge
package index

// A stand-in for Part Q's outbox rows, with the contract's exported
// signatures (CONTRACTS-12.md), so that Part C's commands and the agent's
// wiring compile and run. It keeps its rows in a table of its own made on
// first use and writes each message file durably; it is not the real
// delivery sequence. The functions named Placeholder* exist only for the
// placeholder sender in sync/outbox and go with it at merge.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// OutboxID identifies a queued message.
type OutboxID int64

// Envelope is an outgoing message's SMTP envelope.
type Envelope struct {
	From string   // MAIL FROM address (no angle brackets)
	To   []string // RCPT TO addresses, Bcc recipients included
}

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
	State       string // "queued" | "sending" | "failed"
	Path        string // the message file, absolute
}

// OutboxRecipient is one recipient of a queued message.
type OutboxRecipient struct {
	Addr  string
	State string // "pending" | "sent" | "failed"
	Reply string
}

// outboxQueuedPlaceholder is the change the placeholder announces on the
// feed for a new outbox row (Part Q names its own).
const outboxQueuedPlaceholder ChangeKind = 200

const placeholderOutboxTable = `CREATE TABLE IF NOT EXISTS placeholder_outbox(
	id INTEGER PRIMARY KEY, account TEXT NOT NULL, sender TEXT NOT NULL, rcpts TEXT NOT NULL,
	subject TEXT NOT NULL, message_id TEXT NOT NULL, size INTEGER NOT NULL, queued INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0, next_attempt INTEGER NOT NULL, last_reply TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL DEFAULT 'queued', path TEXT NOT NULL)`

// Enqueue stores a message for account durably and returns once its rows
// are committed; it announces the new row on the change feed.
func (s *Store) Enqueue(ctx context.Context, account string, env Envelope, r io.Reader) (*OutboxMessage, error) {
	if s.root == "" {
		return nil, errNoRoot
	}
	dir := filepath.Join(s.root, ".postfach", "outbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	f, err := os.CreateTemp(dir, "tmp-*")
	if err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	size, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	subject, msgID := placeholderHeader(tmp)
	now := time.Now()
	m := &OutboxMessage{Account: account, From: env.From, Subject: subject, MessageID: msgID, Size: size,
		Queued: now, NextAttempt: now, State: "queued"}
	for _, a := range env.To {
		m.Recipients = append(m.Recipients, OutboxRecipient{Addr: a, State: "pending"})
	}
	rcpts, _ := json.Marshal(m.Recipients)
	err = s.Write(ctx, func(tx *Tx) error {
		if _, err := tx.exec(placeholderOutboxTable); err != nil {
			return err
		}
		acct, err := tx.EnsureAccount(account)
		if err != nil {
			return err
		}
		if err := tx.queryRow(`INSERT INTO placeholder_outbox(account, sender, rcpts, subject, message_id, size, queued, next_attempt, path)
			VALUES(?,?,?,?,?,?,?,?,'') RETURNING id`, account, env.From, string(rcpts), subject, msgID, size, now.UnixNano(), now.UnixNano()).Scan(&m.ID); err != nil {
			return err
		}
		m.Path = filepath.Join(dir, fmt.Sprintf("%d.eml", m.ID))
		if err := os.Rename(tmp, m.Path); err != nil {
			return err
		}
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
		if _, err := tx.exec(`UPDATE placeholder_outbox SET path=? WHERE id=?`, m.Path, m.ID); err != nil {
			return err
		}
		tx.record(Change{Kind: outboxQueuedPlaceholder, Account: acct})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	return m, nil
}

func placeholderHeader(path string) (subject, msgID string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		return "", ""
	}
	subject = msg.Header.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = d
	}
	return subject, strings.TrimSpace(msg.Header.Get("Message-ID"))
}

// OutboxList returns the queued and failed messages of account ("" =
// every account), oldest first.
func (tx *ReadTx) OutboxList(account string) ([]*OutboxMessage, error) {
	return placeholderList(tx, account, false, time.Time{})
}

func placeholderList(tx *ReadTx, account string, dueOnly bool, now time.Time) ([]*OutboxMessage, error) {
	q := `SELECT id, account, sender, rcpts, subject, message_id, size, queued, attempts, next_attempt, last_reply, state, path
		FROM placeholder_outbox WHERE (?='' OR account=?)`
	args := []any{account, account}
	if dueOnly {
		q += ` AND state='queued' AND next_attempt<=?`
		args = append(args, now.UnixNano())
	}
	rows, err := tx.tx.Query(q+` ORDER BY id`, args...)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil
		}
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	defer rows.Close()
	var out []*OutboxMessage
	for rows.Next() {
		m := &OutboxMessage{}
		var rcpts string
		var queued, next int64
		if err := rows.Scan(&m.ID, &m.Account, &m.From, &rcpts, &m.Subject, &m.MessageID, &m.Size, &queued,
			&m.Attempts, &next, &m.LastReply, &m.State, &m.Path); err != nil {
			return nil, err
		}
		json.Unmarshal([]byte(rcpts), &m.Recipients)
		m.Queued, m.NextAttempt = time.Unix(0, queued), time.Unix(0, next)
		out = append(out, m)
	}
	return out, rows.Err()
}

// OutboxDelete removes a queued or failed message (row and file); an
// error wrapping ErrNotFound when there is none with that id.
func (s *Store) OutboxDelete(ctx context.Context, id OutboxID) error {
	var path string
	err := s.Write(ctx, func(tx *Tx) error {
		if _, err := tx.exec(placeholderOutboxTable); err != nil {
			return err
		}
		err := tx.queryRow(`DELETE FROM placeholder_outbox WHERE id=? RETURNING path`, id).Scan(&path)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("index: outbox message %d: %w", id, ErrNotFound)
		}
		return err
	})
	if err == nil {
		os.Remove(path)
	}
	return err
}

// PlaceholderOutboxDue returns account's messages to send now: the due
// ones, or all queued ones with all. Placeholder only.
func (s *Store) PlaceholderOutboxDue(ctx context.Context, account string, all bool, now time.Time) ([]*OutboxMessage, error) {
	var out []*OutboxMessage
	err := s.Read(ctx, func(tx *ReadTx) error {
		var err error
		if all {
			now = time.Unix(0, 1<<62)
		}
		out, err = placeholderList(tx, account, true, now)
		return err
	})
	return out, err
}

// PlaceholderOutboxResult records an attempt: state "sent" removes the
// message. Placeholder only.
func (s *Store) PlaceholderOutboxResult(ctx context.Context, m *OutboxMessage) error {
	rcpts, _ := json.Marshal(m.Recipients)
	err := s.Write(ctx, func(tx *Tx) error {
		if m.State == "sent" {
			_, err := tx.exec(`DELETE FROM placeholder_outbox WHERE id=?`, m.ID)
			return err
		}
		_, err := tx.exec(`UPDATE placeholder_outbox SET rcpts=?, attempts=?, next_attempt=?, last_reply=?, state=? WHERE id=?`,
			string(rcpts), m.Attempts, m.NextAttempt.UnixNano(), m.LastReply, m.State, m.ID)
		return err
	})
	if err == nil && m.State == "sent" {
		os.Remove(m.Path)
	}
	return err
}
