package imapsync

import (
	"context"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// prepare opens the folder's Maildir and decides, without a connection,
// whether the folder can be skipped: its LIST-STATUS equals the recorded
// state and nothing changed locally.
func (s *syncer) prepare(ctx context.Context, j *folderJob) (skip bool, err error) {
	o := &s.opts
	dir := j.dir
	if o.DryRun {
		// Not created; a real run would create it, then find it empty.
		if s.scans.peek(j.f.ID) == nil {
			if err := s.scanAsOpened(ctx, j); err != nil {
				return false, err
			}
		}
	} else if _, err = maildir.Open(dir.Path); err != nil {
		return false, err
	}
	// Leftovers of a killed run (the caller holds the store's sync lock),
	// and other programs' after the 36 hours the Maildir convention gives
	// them.
	if !o.DryRun {
		if _, err := dir.CleanLeftovers(36 * time.Hour); err != nil {
			return false, err
		}
	}
	if j.dirUV, err = dir.UIDValidity(); err != nil {
		return false, err
	}
	st := j.rf.Status
	if st != nil && st.UIDValidity != 0 && st.UIDValidity == j.f.UIDValidity && j.dirUV == st.UIDValidity &&
		st.UIDNext != 0 && uint32(st.UIDNext) == j.f.UIDNext && st.NumMessages != nil &&
		(st.HighestModSeq == j.f.HighestModSeq && st.HighestModSeq != 0) {
		// Normally read at the start of the run; else now, and kept for
		// the plan.
		if s.scans.peek(j.f.ID) == nil {
			if err := s.scanFolders(ctx, []*index.Folder{j.f}); err != nil {
				return false, err
			}
		}
		unchanged, err := unchangedLocally(ctx, o, j.f, int(*st.NumMessages), s.scans.peek(j.f.ID))
		if err != nil {
			return false, err
		}
		if unchanged {
			j.uidValidity, j.uidNext, j.highestModSeq = j.f.UIDValidity, j.f.UIDNext, j.f.HighestModSeq
			j.update(func(r *FolderResult) { r.Skipped = true })
			return true, nil
		}
	}
	return false, nil
}

// unchangedLocally reports, without loading the rows, whether the folder's
// Maildir still matches the index (same keys, same file names), its
// upstream message count is the server's, and nothing waits to be pushed.
func unchangedLocally(ctx context.Context, o *Options, f *index.Folder, serverCount int, sc *folderScan) (bool, error) {
	if sc == nil {
		return false, nil // the folder could not be read: its plan says why
	}
	if !sc.diff.clean() {
		return false, nil
	}
	c := sc.counts // read with the scan, at the start of the run
	if c == nil {
		err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			c, err = readSyncCounts(tx, f.ID)
			return err
		})
		if err != nil {
			return false, err
		}
	}
	return c.upstream == serverCount && !(o.push() && c.pending > 0), nil
}

// scanAsOpened caches, for a dry run, the folder's listing as a real run
// would find it after creating what is missing (maildir.Dir.ScanAsOpened),
// with its rows.
func (s *syncer) scanAsOpened(ctx context.Context, j *folderJob) error {
	entries, err := j.dir.ScanAsOpened()
	if err != nil {
		return err
	}
	var rows []index.FileRow
	if err := s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		rows, err = tx.FileRowList(j.f.ID)
		return err
	}); err != nil {
		return err
	}
	sc := newFolderScan(entries, rows)
	sc.entries, sc.listed = entries, true
	s.scans.put(j.f.ID, sc)
	return nil
}
