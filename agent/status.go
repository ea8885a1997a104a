package agent

import (
	"context"
	"errors"
	"time"

	"github.com/postfach/postfach/index"
)

// Status is what `postfach status --json` prints.
type Status struct {
	Accounts []AccountStatus `json:"accounts"`
	// Agent is the live state of the agent (postfach run) on the store;
	// nil (left out) when none runs.
	Agent *AgentStatus `json:"agent,omitempty"`
	// Backup is the last backup the agent took on [backup] schedule
	// (schedule.go); nil (left out) when none yet.
	Backup *BackupState `json:"backup,omitempty"`
	// BackupSchedule is [backup] schedule ("" none), NextBackup the next
	// time it names (RFC 3339, "" none).
	BackupSchedule string `json:"backup_schedule,omitempty"`
	NextBackup     string `json:"next_backup,omitempty"`
}

// AccountStatus is one account's state.
type AccountStatus struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Messages int    `json:"messages"`
	LastSync string `json:"last_sync"` // RFC 3339, "" if never
	Error    string `json:"error"`     // the last run's account-level error
	// Queued counts the local changes waiting to go upstream: queued
	// expunges and moves, messages to upload, flag changes to push
	// (index.ReadTx.QueuedUpstream).
	Queued int `json:"queued"`
	// Outbox counts the account's outgoing messages waiting to be sent
	// (queued, or being sent), OutboxFailed those the relay refused for
	// good (postfach queue lists both).
	Outbox       int            `json:"outbox"`
	OutboxFailed int            `json:"outbox_failed"`
	Folders      []FolderStatus `json:"folders"`
}

// FolderStatus is one folder's state.
type FolderStatus struct {
	Name       string `json:"name"`
	SpecialUse string `json:"special_use,omitempty"` // \Sent, \Drafts, \Trash, \Junk, \Archive... as the server marks it
	Messages   int    `json:"messages"`
	LastSync   string `json:"last_sync"` // RFC 3339, "" if never
	Error      string `json:"error"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// Status reports every configured account with its folders, from the
// index, and the live state of the agent when one runs on the store.
//
// The agent is asked first: it records a run's outcome in the index before
// it shows the account's new state, so an index read after its answer
// holds the error of an account it says is parked (read the other way
// round, a run ending in between showed state "error" with no error).
func (a *Agent) Status(ctx context.Context) (*Status, error) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ag, err := a.AgentStatus(actx)
	if err != nil && !errors.Is(err, ErrNoAgent) {
		// A busy or stuck agent does not keep status from the index.
		a.log.Warn("asking the agent for its state", "err", err)
	}
	st, err := a.indexStatus(ctx)
	if err != nil {
		return nil, err
	}
	st.Agent = ag
	if st.Backup, err = ReadBackupState(a.cfg.Store.Path); err != nil {
		a.log.Warn("reading the last backup's state", "err", err)
	}
	st.BackupSchedule = a.cfg.Backup.Schedule
	st.NextBackup = rfc3339(a.cfg.Backup.Next(time.Now()))
	return st, nil
}

func (a *Agent) indexStatus(ctx context.Context) (*Status, error) {
	st := &Status{Accounts: []AccountStatus{}}
	err := a.store.Read(ctx, func(tx *index.ReadTx) error {
		states, err := tx.Accounts()
		if err != nil {
			return err
		}
		byName := map[string]index.AccountState{}
		for _, s := range states {
			byName[s.Name] = s
		}
		queue, err := tx.OutboxList("")
		if err != nil {
			return err
		}
		for _, acct := range a.cfg.Accounts {
			as := AccountStatus{Name: acct.Name, Kind: acct.Kind, Folders: []FolderStatus{}}
			for _, m := range queue {
				switch {
				case m.Account != acct.Name:
				case m.State == "failed":
					as.OutboxFailed++
				default:
					as.Outbox++
				}
			}
			s, ok := byName[acct.Name]
			if ok {
				as.LastSync, as.Error = rfc3339(s.LastSync), s.LastError
				if as.Queued, err = tx.QueuedUpstream(s.ID); err != nil {
					return err
				}
				folders, err := tx.FolderCounts(s.ID)
				if err != nil && !errors.Is(err, index.ErrNotFound) {
					return err
				}
				for _, f := range folders {
					as.Messages += f.Messages
					as.Folders = append(as.Folders, FolderStatus{
						Name: f.Name, SpecialUse: f.SpecialUse, Messages: f.Messages, LastSync: rfc3339(f.LastSync), Error: f.LastError,
					})
				}
			}
			st.Accounts = append(st.Accounts, as)
		}
		return nil
	})
	return st, err
}
