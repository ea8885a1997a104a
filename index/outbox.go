// PLACEHOLDER: replaced by part Q at merge

package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
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
	Subject     string
	MessageID   string
	Size        int64
	Queued      time.Time
	Attempts    int
	NextAttempt time.Time
	LastReply   string
	State       string // "queued" | "sending" | "failed"
	Path        string // the message file, absolute
}

// OutboxRecipient is one recipient of a queued message.
type OutboxRecipient struct {
	Addr  string
	State string // "pending" | "sent" | "failed"
	Reply string
}

// Enqueue (placeholder) writes the message durably under
// <root>/.postfach/outbox/ and records it in a stand-in table.
func (s *Store) Enqueue(ctx context.Context, account string, env Envelope, r io.Reader) (*OutboxMessage, error) {
	dir := filepath.Join(s.root, ".postfach", "outbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "tmp-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	m := &OutboxMessage{Account: account, From: env.From, Size: n, Queued: time.Now(), NextAttempt: time.Now(), State: "queued"}
	for _, to := range env.To {
		m.Recipients = append(m.Recipients, OutboxRecipient{Addr: to, State: "pending"})
	}
	if rf, err := os.Open(f.Name()); err == nil {
		if msg, err := mail.ReadMessage(rf); err == nil {
			m.Subject, m.MessageID = msg.Header.Get("Subject"), msg.Header.Get("Message-Id")
		}
		rf.Close()
	}
	err = s.Write(ctx, func(tx *Tx) error {
		if _, err := tx.tx.Exec(`CREATE TABLE IF NOT EXISTS placeholder_outbox (id INTEGER PRIMARY KEY, account TEXT, json TEXT)`); err != nil {
			return err
		}
		res, err := tx.tx.Exec(`INSERT INTO placeholder_outbox (account, json) VALUES (?, '')`, account)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		m.ID = OutboxID(id)
		m.Path = filepath.Join(dir, strconv.FormatInt(id, 10)+".eml")
		if err := os.Rename(f.Name(), m.Path); err != nil {
			return err
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = tx.tx.Exec(`UPDATE placeholder_outbox SET json = ? WHERE id = ?`, string(b), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// OutboxList (placeholder) returns the queued messages of account ("" =
// every account), oldest first.
func (tx *ReadTx) OutboxList(account string) ([]*OutboxMessage, error) {
	rows, err := tx.tx.Query(`SELECT json FROM placeholder_outbox WHERE ? = '' OR account = ? ORDER BY id`, account, account)
	if err != nil {
		return nil, nil // no table yet: nothing queued
	}
	defer rows.Close()
	var ms []*OutboxMessage
	for rows.Next() {
		var js string
		if err := rows.Scan(&js); err != nil {
			return nil, err
		}
		m := new(OutboxMessage)
		if err := json.Unmarshal([]byte(js), m); err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// OutboxDelete (placeholder) removes a queued message (row and file).
func (s *Store) OutboxDelete(ctx context.Context, id OutboxID) error {
	return s.Write(ctx, func(tx *Tx) error {
		var js string
		err := tx.tx.QueryRow(`SELECT json FROM placeholder_outbox WHERE id = ?`, id).Scan(&js)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("index: outbox message %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		var m OutboxMessage
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			return err
		}
		os.Remove(m.Path)
		_, err = tx.tx.Exec(`DELETE FROM placeholder_outbox WHERE id = ?`, id)
		return err
	})
}
