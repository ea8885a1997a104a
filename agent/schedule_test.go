package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postfach/postfach/agent/backup"
	"github.com/postfach/postfach/configs"
)

// TestBackupSchedule: with an injected clock, the scheduler takes the
// backup when a scheduled time passes, catches up once (not at every
// look) after the machine slept through one, counts a failed attempt as
// the slot's, and records each outcome for status.
func TestBackupSchedule(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".postfach"), 0o700); err != nil {
		t.Fatal(err)
	}
	loc := time.FixedZone("test", 3600)
	now := time.Date(2026, 3, 2, 1, 0, 0, 0, loc) // Monday 01:00
	var runs []time.Time
	fail := error(nil)
	s := &backupScheduler{
		root:   root,
		config: func() configs.Backup { return configs.Backup{Path: t.TempDir(), Schedule: "daily 02:30", Keep: 3} },
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:    func() time.Time { return now },
		backup: func(ctx context.Context, b configs.Backup) (*backup.Result, error) {
			runs = append(runs, now)
			if fail != nil {
				return nil, fail
			}
			return &backup.Result{Snapshot: filepath.Join(b.Path, "snap"), Files: 10, Copied: 2, CopiedBytes: 2048}, nil
		},
	}
	look := func(at time.Time) {
		t.Helper()
		now = at
		if err := s.check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	day := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, loc) }

	// First start at 01:00: yesterday's 02:30 was missed (never backed
	// up): caught up once, at once.
	look(day(2, 1, 0))
	look(day(2, 1, 1))
	look(day(2, 2, 29))
	if len(runs) != 1 || !runs[0].Equal(day(2, 1, 0)) {
		t.Fatalf("runs = %v, want one at start", runs)
	}
	// 02:30 passes: one backup, then none until tomorrow.
	for m := 30; m < 40; m++ {
		look(day(2, 2, m))
	}
	look(day(2, 23, 59))
	if len(runs) != 2 || !runs[1].Equal(day(2, 2, 30)) {
		t.Fatalf("runs = %v, want a second at 02:30", runs)
	}
	st, err := ReadBackupState(root)
	if err != nil || st == nil {
		t.Fatalf("state: %v, %v", st, err)
	}
	if !st.At.Equal(day(2, 2, 30)) || st.Files != 10 || st.Copied != 2 || st.BytesAdded != 2048 || st.Error != "" || !st.LastSuccess.Equal(day(2, 2, 30)) {
		t.Errorf("state = %+v", st)
	}
	// The laptop sleeps from 23:59 through two nights and wakes on
	// Wednesday at 09:00: one catch-up, not one per missed slot or look.
	look(day(4, 9, 0))
	look(day(4, 9, 1))
	look(day(4, 12, 0))
	if len(runs) != 3 || !runs[2].Equal(day(4, 9, 0)) {
		t.Fatalf("runs = %v, want one catch-up at wake-up", runs)
	}
	// A failure is recorded and not retried every minute; the last
	// success stays.
	fail = errors.New("disk full")
	look(day(5, 2, 30))
	look(day(5, 2, 31))
	if len(runs) != 4 {
		t.Fatalf("runs = %v, want the failed one once", runs)
	}
	st, _ = ReadBackupState(root)
	if st.Error != "disk full" || !st.LastSuccess.Equal(day(4, 9, 0)) || st.Snapshot != "" {
		t.Errorf("state after failure = %+v", st)
	}
	// The clock set back (a wrong clock corrected): the last attempt is
	// dated in the future, which is stale, so one backup is taken, and
	// only one.
	fail = nil
	look(day(5, 1, 0))
	look(day(5, 1, 1))
	if len(runs) != 5 || !runs[4].Equal(day(5, 1, 0)) {
		t.Errorf("runs = %v after the clock went back, want one at once", runs)
	}
	// No schedule: nothing.
	s.config = func() configs.Backup { return configs.Backup{Path: t.TempDir()} }
	look(day(9, 3, 0))
	if len(runs) != 5 {
		t.Errorf("runs = %v without a schedule", runs)
	}
}

// Run stops when its context ends, and looks at the clock once per tick.
func TestBackupScheduleRun(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, ".postfach"), 0o700)
	ctx, cancel := context.WithCancel(context.Background())
	n, looks := 0, 0
	now := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
	s := &backupScheduler{
		root:   root,
		config: func() configs.Backup { return configs.Backup{Path: t.TempDir(), Schedule: "hourly"} },
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:    func() time.Time { return now },
		tick: func(ctx context.Context) error {
			looks++
			now = now.Add(20 * time.Minute)
			if looks == 6 {
				cancel()
			}
			return ctx.Err()
		},
		backup: func(context.Context, configs.Backup) (*backup.Result, error) { n++; return &backup.Result{}, nil },
	}
	if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	// Looks at 03:00 (due at start) ... 04:40, 20 minutes apart: 03:00 and 04:00.
	if n != 2 {
		t.Errorf("%d backups, want 2 (03:00, 04:00)", n)
	}
}

// TestBackupScheduleClockAhead: a clock that once ran a month ahead left
// a backup state dated in the future. Once the clock is right again, the
// nightly backups go on (the future date is stale, with a warning), not
// only after the clock passes that date.
func TestBackupScheduleClockAhead(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".postfach"), 0o700); err != nil {
		t.Fatal(err)
	}
	var now time.Time
	var runs []time.Time
	s := &backupScheduler{
		root:   root,
		config: func() configs.Backup { return configs.Backup{Path: t.TempDir(), Schedule: "daily 02:30", Keep: 3} },
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:    func() time.Time { return now },
		backup: func(ctx context.Context, b configs.Backup) (*backup.Result, error) {
			runs = append(runs, now)
			return &backup.Result{Snapshot: "snap"}, nil
		},
	}
	ctx := context.Background()
	now = time.Date(2027, 1, 5, 3, 0, 0, 0, time.UTC) // the clock a month ahead
	if err := s.check(ctx); err != nil {
		t.Fatal(err)
	}
	for d := 6; d <= 30; d++ { // the clock right again: every night of December
		now = time.Date(2026, 12, d, 3, 0, 0, 0, time.UTC)
		if err := s.check(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.check(ctx); err != nil { // a second look the same night: nothing
			t.Fatal(err)
		}
		if got := runs[len(runs)-1]; !got.Equal(now) {
			t.Fatalf("night of December %d: last backup at %v, want one at %v", d, got, now)
		}
	}
	if len(runs) != 26 {
		t.Fatalf("%d backups, want 26 (one while the clock was ahead, then one a night for 25 nights)", len(runs))
	}
	st, err := ReadBackupState(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 12, 30, 3, 0, 0, 0, time.UTC); !st.At.Equal(want) {
		t.Fatalf("state dated %v, want %v", st.At, want)
	}
}
