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
	"sync"
	"time"

	"github.com/postfach/postfach/maildir"
)

// The sender's side of the outbox (see outbox.go): due messages, claims,
// outcomes, and the follow-ups filed after a send.

// OutboxDue returns account's queued messages due at now, the oldest
// first. With all, every queued message is due; with connFailed, those
// whose last attempt found no relay are too (the network may be back).
func (tx *ReadTx) OutboxDue(account string, now time.Time, all, connFailed bool) ([]*OutboxMessage, error) {
	switch {
	case all:
		return tx.outboxQuery(tx.outboxPath(), `a.name=? AND o.state='queued' ORDER BY o.queued, o.id`, account)
	case connFailed:
		return tx.outboxQuery(tx.outboxPath(), `a.name=? AND o.state='queued' AND (o.next_attempt<=? OR o.conn_failed)
			ORDER BY o.queued, o.id`, account, now.Unix())
	}
	return tx.outboxQuery(tx.outboxPath(), whereOutboxDue, account, now.Unix())
}

// The conditions of the queries every pass of a sender makes: each
// reads through an index what the pass needs, however long the queue
// (TestOutboxPassQueriesIndexed checks their plans).
const (
	// Without OutboxDue's OR, a range of outbox_due: the due rows only.
	whereOutboxDue = `a.name=? AND o.state='queued' AND o.next_attempt<=? ORDER BY o.queued, o.id`
	// outbox_followups holds only the rows with follow-ups.
	whereOutboxFollowups = `a.name=? AND o.followups<>0 AND o.state<>'sending' ORDER BY o.id`
	// One probe of outbox_waiting (the planner, without statistics,
	// would take outbox_due and read every queued row).
	sqlOutboxWaiting = `SELECT EXISTS (SELECT 1 FROM outbox o INDEXED BY outbox_waiting JOIN accounts a ON a.id=o.account_id
		WHERE a.name=? AND o.state='queued' AND o.conn_failed AND o.next_attempt>?)`
)

// OutboxWaitingForRelay says whether account has a queued message not
// due at now whose last attempt found no relay: those a nudge tries
// again once a relay answers (see OutboxDue). Asked, not read: while the
// relay stays down, a nudge leaves their rows as they are (one probe of
// the outbox_waiting index, however long the queue).
func (tx *ReadTx) OutboxWaitingForRelay(account string, now time.Time) (bool, error) {
	var found bool
	err := tx.queryRow(sqlOutboxWaiting, account, now.Unix()).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("index: outbox: %w", err)
	}
	return found, nil
}

// OutboxNext returns when account's next queued message is due (zero:
// none is queued).
func (tx *ReadTx) OutboxNext(account string) (time.Time, error) {
	var next sql.NullInt64
	err := tx.queryRow(`SELECT min(o.next_attempt) FROM outbox o JOIN accounts a ON a.id=o.account_id
		WHERE a.name=? AND o.state='queued'`, account).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return time.Unix(next.Int64, 0), nil
}

// OutboxFollowups returns account's messages with follow-ups to file.
func (tx *ReadTx) OutboxFollowups(account string) ([]*OutboxMessage, error) {
	return tx.outboxQuery(tx.outboxPath(), whereOutboxFollowups, account)
}

// OutboxRecover puts account's messages a crash left "sending" back in
// the queue, due now, each counted as interrupted (their pending
// recipients may have the message already), and returns how many. Call
// it holding the account's outbox lock (LockOutbox), before sending.
func (tx *Tx) OutboxRecover(account string) (int, error) {
	res, err := tx.exec(`UPDATE outbox SET state='queued', interrupted=interrupted+1
		WHERE state='sending' AND account_id=(SELECT id FROM accounts WHERE name=?)`, account)
	if err != nil {
		return 0, fmt.Errorf("index: outbox: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// OutboxSending claims a queued message for sending (written ahead of
// MAIL FROM): state "sending", one attempt more. A message no longer
// queued (deleted meanwhile) is an error wrapping ErrNotFound.
func (tx *Tx) OutboxSending(id OutboxID) error {
	res, err := tx.exec(`UPDATE outbox SET state='sending', attempts=attempts+1 WHERE id=? AND state='queued'`, id)
	if err != nil {
		return fmt.Errorf("index: outbox: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("index: outbox message %d is not queued: %w", id, ErrNotFound)
	}
	return nil
}

// OutboxOutcome is what a send attempt (or giving up) did to a message.
type OutboxOutcome struct {
	ID OutboxID
	// Recipients: the new state and reply of the recipients listed (by
	// Addr); the others keep theirs.
	Recipients  []OutboxRecipient
	LastReply   string
	State       string    // "queued" (NextAttempt set), "failed" or "sent"
	NextAttempt time.Time // when State is "queued"
	Attempt     bool      // count an attempt (a message deferred without OutboxSending)
	ConnFailed  bool      // the attempt failed for want of a relay (see OutboxDue)
	Warned      bool      // set the warned mark
	Followups   int       // Follow* bits to add
	// Interrupted counts the attempt in the message's Interrupted: the
	// final "." went out and no reply came (RFC 1047), so the pending
	// recipients may have it already.
	Interrupted bool
}

// OutboxRecord records an outcome in one statement group (call it in
// the transaction that must hold it).
func (tx *Tx) OutboxRecord(o OutboxOutcome) error {
	for _, r := range o.Recipients {
		if _, err := tx.exec(`UPDATE outbox_rcpts SET state=?, reply=? WHERE outbox_id=? AND addr=?`,
			r.State, oneLine(r.Reply), o.ID, r.Addr); err != nil {
			return fmt.Errorf("index: outbox: %w", err)
		}
	}
	attempt := 0
	if o.Attempt {
		attempt = 1
	}
	res, err := tx.exec(`UPDATE outbox SET state=?, last_reply=?, next_attempt=CASE WHEN ?<>0 THEN ? ELSE next_attempt END,
		attempts=attempts+?, warned=max(warned,?), followups=followups|?, conn_failed=?, interrupted=interrupted+? WHERE id=?`,
		o.State, oneLine(o.LastReply), unix(o.NextAttempt), unix(o.NextAttempt), attempt, o.Warned, o.Followups, o.ConnFailed, o.Interrupted, o.ID)
	if err != nil {
		return fmt.Errorf("index: outbox: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("index: outbox message %d: %w", o.ID, ErrNotFound)
	}
	return nil
}

// OutboxCommit records outcomes and then, if claim is not 0, claims
// that message for sending (OutboxSending), all in one commit: a sender
// records a message's result with the claim of the next it sends over
// the same connection. A sent message with nothing left to file goes
// (row, then file). A claim of a message no longer queued is an error
// wrapping ErrNotFound, and nothing is committed then.
func (s *Store) OutboxCommit(ctx context.Context, outcomes []OutboxOutcome, claim OutboxID) error {
	return s.OutboxCommitAfter(ctx, func() ([]OutboxOutcome, error) { return outcomes, nil }, claim)
}

// OutboxCommitAfter is OutboxCommit of the outcomes that before returns,
// with before run inside the transaction, once the store's write lock is
// taken: a sender ends a message's DATA in before, so that the relay's
// reply is committed one fsync after it comes, with no wait for the lock
// in between (that wait is what would widen the window in which a crash
// sends the message again). before holds up every writer of the store
// while it runs: it must be quick or give up (its error rolls the
// transaction back and is returned; nothing is committed).
func (s *Store) OutboxCommitAfter(ctx context.Context, before func() ([]OutboxOutcome, error), claim OutboxID) error {
	var gone []string
	err := s.Write(ctx, func(tx *Tx) error {
		outcomes, err := before()
		if err != nil {
			return err
		}
		for _, o := range outcomes {
			if err := tx.OutboxRecord(o); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue // deleted while it was sent
				}
				return err
			}
			if o.State != OutboxSentState || o.Followups != 0 {
				continue
			}
			var file string
			err := tx.queryRow(`DELETE FROM outbox WHERE id=? AND followups=0 RETURNING file`, o.ID).Scan(&file)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("index: outbox: %w", err)
			}
			if file != "" {
				gone = append(gone, file)
			}
		}
		if claim != 0 {
			return tx.OutboxSending(claim)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range gone {
		if err := s.removeOutboxFile(f); err != nil {
			return err
		}
	}
	return nil
}

// oneLine keeps a reply to one line of printable text.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// OutboxFollowupDone clears follow-up bits of a message (OutboxFile
// with nothing to file); a sent message whose follow-ups are all done
// goes (row, then file: a crash in between leaves a file without a row
// in outbox/, never sent; CleanOutbox removes it).
func (s *Store) OutboxFollowupDone(ctx context.Context, id OutboxID, bits int) error {
	return s.OutboxFile(ctx, nil, map[OutboxID]int{id: bits})
}

// LockOutbox waits for the account's outbox lock (an flock on
// <root>/.postfach/outbox/lock.<account id>, so senders of two processes
// take turns too, and an in-process lock, so the senders of one process
// do even on a file system without flock) and returns its release.
// Whoever holds it is the only sender of the account: a row it finds
// "sending" was left by a crash.
func (s *Store) LockOutbox(ctx context.Context, account string) (func(), error) {
	d, err := s.OutboxDir()
	if err != nil {
		return nil, err
	}
	var acct AccountID
	if err := s.Write(ctx, func(tx *Tx) error {
		acct, err = tx.EnsureAccount(account)
		return err
	}); err != nil {
		return nil, err
	}
	p := filepath.Join(d.Path, "lock."+strconv.FormatInt(int64(acct), 10))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("index: outbox lock: %w", err)
	}
	f.Close()
	unhold, err := s.outboxHeld.acquire(ctx, acct)
	if err != nil {
		return nil, err
	}
	release, err := lockDir(p)
	if err != nil {
		unhold()
		return nil, err
	}
	return func() { release(); unhold() }, nil
}

// accountSem is a lock per account, waited for with a context.
type accountSem struct {
	mu sync.Mutex
	m  map[AccountID]chan struct{}
}

// acquire waits for acct's lock (or ctx) and returns its release.
func (a *accountSem) acquire(ctx context.Context, acct AccountID) (func(), error) {
	a.mu.Lock()
	if a.m == nil {
		a.m = map[AccountID]chan struct{}{}
	}
	ch := a.m[acct]
	if ch == nil {
		ch = make(chan struct{}, 1)
		a.m[acct] = ch
	}
	a.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return sync.OnceFunc(func() { <-ch }), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// OutboxFiling is a message filed in a local folder for an outbox
// message: its copy in Sent, a notice in INBOX.
type OutboxFiling struct {
	Folder FolderID
	R      io.Reader // the message (CRLF or LF line ends)
	Flags  maildir.Flags
	Date   time.Time // internal date; zero = now
	// Key, if set, is the file's Maildir key, the same at each try
	// (FollowupKey): a filing whose key the folder has already is not
	// made again.
	Key string
}

// FollowupKey is the Maildir key of follow-up bit (one Follow*) of m:
// its queue file's key and the follow-up, so the same at each try.
func FollowupKey(m *OutboxMessage, bit int) string {
	return followupKey(filepath.Base(m.Path), bit)
}

func followupKey(file string, bit int) string {
	e, ok := maildir.ParseName(filepath.Base(file))
	if !ok {
		return "" // a fresh key, then
	}
	return e.Key + ".f" + strconv.Itoa(bit)
}

// leftovers is what a crash left filed of the outbox's follow-ups: per
// folder, the keys (FollowupKey) of the follow-ups still due whose file
// is in the folder already. A crash between a filing's renames and its
// commit leaves them; the folder's next scan indexes them, so they are
// not filed again. Each folder is read once per Store (a crash means a
// new process): at its first filing, and again after a filing into it
// failed.
type leftovers struct {
	mu      sync.Mutex
	folders map[FolderID]map[string]bool
}

// followupsFiled returns the keys of follow-ups still due that folder d
// has already.
func (s *Store) followupsFiled(ctx context.Context, folder FolderID, d *maildir.Dir) (map[string]bool, error) {
	l := s.followupsLeft
	l.mu.Lock()
	defer l.mu.Unlock()
	if have, ok := l.folders[folder]; ok {
		return have, nil
	}
	due := map[string]bool{}
	if err := s.Read(ctx, func(tx *ReadTx) error {
		rows, err := tx.query(`SELECT file, followups FROM outbox WHERE followups<>0`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var file string
			var bits int
			if err := rows.Scan(&file, &bits); err != nil {
				return err
			}
			for bit := 1; bit <= bits; bit <<= 1 {
				if bits&bit != 0 {
					due[followupKey(file, bit)] = true
				}
			}
		}
		return rows.Err()
	}); err != nil {
		return nil, fmt.Errorf("index: outbox: %w", err)
	}
	have := map[string]bool{}
	if len(due) > 0 {
		es, err := d.Scan()
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if due[e.Key] {
				have[e.Key] = true
			}
		}
	}
	l.folders[folder] = have
	return have, nil
}

// forgetFiled makes the next filing into folders read them again.
func (s *Store) forgetFiled(folders []FolderID) {
	l := s.followupsLeft
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range folders {
		delete(l.folders, f)
	}
}

// OutboxFile files fs (as Append does: UID 0, the sync uploads them;
// full text deferred), all in one delivery, and in its transaction
// clears the follow-up bits done[id] of outbox messages: so a follow-up
// is filed once. A crash between the delivery's renames and its commit
// leaves files in the folders while their follow-ups are still due: a
// filing with a Key that its folder has already (read once per folder
// and Store, see leftovers) is not made again, its bits are cleared all
// the same. A sent message whose follow-ups are all done goes (row,
// then file). It takes the accounts' local-change turn around the
// delivery without waiting for it (the sender holds its outbox lock,
// and a sync run holds the turn for minutes): while a run holds it,
// nothing is filed and the error wraps ErrTurnTaken.
func (s *Store) OutboxFile(ctx context.Context, fs []OutboxFiling, done map[OutboxID]int) error {
	return s.outboxFile(ctx, fs, done, false)
}

// OutboxFileInTurn is OutboxFile for a caller that holds the local-change
// turn of the folders' accounts already (LocalChangeOf: it waited for a
// sync run to end, not holding the outbox lock).
func (s *Store) OutboxFileInTurn(ctx context.Context, fs []OutboxFiling, done map[OutboxID]int) error {
	return s.outboxFile(ctx, fs, done, true)
}

func (s *Store) outboxFile(ctx context.Context, fs []OutboxFiling, done map[OutboxID]int, held bool) error {
	if s.dry != nil {
		return errors.New("index: outbox: a dry run stores nothing")
	}
	if len(fs) > 0 && !held {
		accts, err := s.folderAccounts(ctx, fs)
		if err != nil {
			return err
		}
		release, ok := s.TryLocalChangeOf(accts...)
		if !ok {
			return fmt.Errorf("index: outbox: filing %d messages: %w", len(fs), ErrTurnTaken)
		}
		defer release()
	}
	as, err := s.outboxArrivals(ctx, fs)
	defer func() {
		for _, a := range as {
			a.File.Abort() // nothing once delivered
		}
	}()
	if err != nil {
		return err
	}
	var gone []string
	rows := func(tx *Tx) (err error) {
		gone, err = tx.clearFollowups(done)
		return err
	}
	if len(as) == 0 {
		err = s.Write(ctx, rows)
	} else {
		err = s.Deliver(ctx, &Batch{Arrivals: as, WithRows: func(tx *Tx, _ []MessageID) error { return rows(tx) }})
	}
	if err != nil {
		// Some may be renamed into their folders: the next try reads them.
		ids := make([]FolderID, len(fs))
		for i, f := range fs {
			ids[i] = f.Folder
		}
		s.forgetFiled(ids)
		return err
	}
	for _, f := range gone {
		if err := s.removeOutboxFile(f); err != nil {
			return err
		}
	}
	return nil
}

// folderAccounts returns the accounts of fs's folders.
func (s *Store) folderAccounts(ctx context.Context, fs []OutboxFiling) ([]AccountID, error) {
	ids := make([]FolderID, len(fs))
	for i, f := range fs {
		ids[i] = f.Folder
	}
	var folders map[FolderID]*Folder
	if err := s.Read(ctx, func(tx *ReadTx) (err error) {
		folders, err = tx.foldersByID(ids...)
		return err
	}); err != nil {
		return nil, err
	}
	accts := make([]AccountID, 0, len(folders))
	for _, f := range folders {
		accts = append(accts, f.Account)
	}
	return accts, nil
}

// outboxArrivals writes fs into their folders' tmp/ and returns their
// arrivals (those written so far, also on error: the caller aborts
// them).
func (s *Store) outboxArrivals(ctx context.Context, fs []OutboxFiling) ([]*Arrival, error) {
	ids := make([]FolderID, len(fs))
	for i, f := range fs {
		ids[i] = f.Folder
	}
	folders, dirs, err := s.foldersAndDirs(ctx, ids...)
	if err != nil {
		return nil, err
	}
	as := make([]*Arrival, 0, len(fs))
	for _, f := range fs {
		var dlv *maildir.Delivery
		if f.Key == "" {
			dlv, err = dirs[f.Folder].NewDelivery()
		} else {
			have, ferr := s.followupsFiled(ctx, f.Folder, dirs[f.Folder])
			if ferr != nil {
				return as, ferr
			}
			if have[f.Key] {
				continue // filed before a crash took the commit
			}
			dlv, err = dirs[f.Folder].NewDeliveryKey(f.Key)
		}
		if err != nil {
			return as, err
		}
		if _, err := io.Copy(dlv, f.R); err != nil {
			dlv.Abort()
			return as, fmt.Errorf("index: outbox: filing into %q: %w", folders[f.Folder].Name, err)
		}
		if err := dlv.Close(); err != nil {
			dlv.Abort()
			return as, err
		}
		date := f.Date
		if date.IsZero() {
			date = time.Now()
		}
		a, err := localArrival(folders[f.Folder], dlv, f.Flags, nil, date)
		if err != nil {
			dlv.Abort()
			return as, err
		}
		as = append(as, a)
	}
	return as, nil
}

// clearFollowups clears the follow-up bits done[id] and removes the rows
// of sent messages left with none; it returns their files (for removal
// after the commit).
func (tx *Tx) clearFollowups(done map[OutboxID]int) ([]string, error) {
	var gone []string
	for id, bits := range done {
		var state, file string
		var left int
		err := tx.queryRow(`UPDATE outbox SET followups=followups & ~? WHERE id=? RETURNING state, followups, file`, bits, id).
			Scan(&state, &left, &file)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("index: outbox: %w", err)
		}
		if state == OutboxSentState && left == 0 {
			if _, err := tx.exec(`DELETE FROM outbox WHERE id=?`, id); err != nil {
				return nil, fmt.Errorf("index: outbox: %w", err)
			}
			gone = append(gone, file)
		}
	}
	return gone, nil
}
