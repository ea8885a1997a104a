package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/postfach/postfach/agent/backup"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

// The nightly backup: `postfach run` takes a backup (package backup, into
// [backup] path, keeping [backup] keep) at each time [backup] schedule
// names (configs.Backup.Next). A laptop asleep at that time has missed
// it: the scheduler looks at the wall clock once a minute (a monotonic
// timer does not run while the machine sleeps) and, when the last
// attempt is older than the latest scheduled time that has passed, takes
// the backup once, at once: on start, after a wake-up, after the clock
// jumped. A failed attempt counts as the slot's attempt (it is not tried
// again every minute; the next slot tries again). A last attempt dated
// after now (the clock ran ahead then, and was set right) is stale: the
// backup is taken at once, with a warning, and the schedule goes on from
// there (otherwise none would run until the clock reached that date).
//
// The outcome of the last attempt is kept in
// <store>/.postfach/backup-state.json (BackupState), written atomically;
// `postfach status` shows it.

// BackupStateFile is the last backup's outcome, below the store root.
const BackupStateFile = ".postfach/backup-state.json"

// BackupState is the outcome of the last backup the agent took.
type BackupState struct {
	At          time.Time `json:"at"`           // when it started
	Seconds     float64   `json:"seconds"`      // how long it took
	Snapshot    string    `json:"snapshot"`     // its directory ("" if it failed)
	Files       int       `json:"files"`        // files in the snapshot
	Copied      int       `json:"copied"`       // of them, new (not shared with the previous one)
	BytesAdded  int64     `json:"bytes_added"`  // bytes copied: what it added to the backup disk
	Error       string    `json:"error"`        // "" on success
	LastSuccess time.Time `json:"last_success"` // the last backup that succeeded (zero: none)
}

// ReadBackupState reads the store's last backup state; nil when no
// backup was taken by the agent yet.
func ReadBackupState(root string) (*BackupState, error) {
	data, err := os.ReadFile(filepath.Join(root, BackupStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st BackupState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(root, BackupStateFile), err)
	}
	return &st, nil
}

// writeBackupState replaces the state file: a temporary file, synced,
// renamed over it.
func writeBackupState(root string, st *BackupState) error {
	p := filepath.Join(root, BackupStateFile)
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// backupScheduler is the agent's backup service (see above).
type backupScheduler struct {
	root   string
	config func() configs.Backup // the current [backup] (reloads change it)
	log    *slog.Logger
	// now is the wall clock, tick the wait between looks at it
	// (default: time.Now, one minute); backup takes one backup
	// (default: backup.Backup of the store into [backup] path). Tests
	// inject them.
	now    func() time.Time
	tick   func(ctx context.Context) error
	backup func(ctx context.Context, b configs.Backup) (*backup.Result, error)
}

func newBackupScheduler(store *index.Store, root string, config func() configs.Backup, log *slog.Logger) *backupScheduler {
	return &backupScheduler{
		root: root, config: config, log: log, now: time.Now,
		tick: func(ctx context.Context) error {
			t := time.NewTimer(time.Minute)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		},
		backup: func(ctx context.Context, b configs.Backup) (*backup.Result, error) {
			return backup.Backup(ctx, backup.Options{Store: store, To: b.Path, Keep: b.Keep})
		},
	}
}

// Run takes the scheduled backups until ctx ends; it returns ctx's error.
func (s *backupScheduler) Run(ctx context.Context) error {
	for {
		if err := s.check(ctx); err != nil {
			s.log.Error("backup schedule", "err", err)
		}
		if err := s.tick(ctx); err != nil {
			return err
		}
	}
}

// check takes a backup when the latest scheduled time that has passed is
// after the last attempt, or the last attempt is dated after now (the
// clock was ahead then: a stale date, with a warning).
func (s *backupScheduler) check(ctx context.Context) error {
	b := s.config()
	now := s.now()
	due := lastScheduled(&b, now)
	if due.IsZero() || b.Path == "" {
		return nil
	}
	last, err := ReadBackupState(s.root)
	if err != nil {
		return err
	}
	if last != nil && last.At.After(now) {
		// A clock that once ran ahead dated the last attempt in the
		// future: taken as stale, or no backup would run until then.
		s.log.Warn("backup state is dated in the future: ignoring it", "at", last.At.Format(time.RFC3339),
			"now", now.Format(time.RFC3339))
	} else if last != nil && !last.At.Before(due) {
		return nil
	}
	st := &BackupState{At: now}
	if last != nil {
		st.LastSuccess = last.LastSuccess
	}
	s.log.Info("scheduled backup", "schedule", b.Schedule, "due", due.Format(time.RFC3339), "to", b.Path)
	begin := time.Now()
	res, err := s.backup(ctx, b)
	st.Seconds = time.Since(begin).Seconds()
	if err != nil {
		st.Error = err.Error()
		s.log.Error("scheduled backup failed", "err", err)
	} else {
		st.Snapshot, st.Files, st.Copied, st.BytesAdded = res.Snapshot, res.Files, res.Copied, res.CopiedBytes
		st.LastSuccess = now
		s.log.Info("scheduled backup done", "snapshot", res.Snapshot, "files", res.Files, "copied", res.Copied,
			"bytes", res.CopiedBytes, "took", time.Since(begin).Round(time.Millisecond))
	}
	return writeBackupState(s.root, st)
}

// lastScheduled returns the latest time the schedule names at or before
// now (zero: no schedule). Every schedule recurs within a week.
func lastScheduled(b *configs.Backup, now time.Time) time.Time {
	p := b.Next(now.Add(-8 * 24 * time.Hour))
	if p.IsZero() || p.After(now) {
		return time.Time{}
	}
	for {
		n := b.Next(p)
		if n.After(now) {
			return p
		}
		p = n
	}
}
