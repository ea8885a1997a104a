package imapsync

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// reconciled is the index's view of a folder after comparing it with the
// Maildir on disk. In an incremental run its rows are Partial (see
// index.ReadTx.FileRows) except those the run is known to touch: rows not
// upstream yet, rows with unsynced flags, renamed files and gone rows; the
// other upstream rows whose file exists are quiet, their UID and id alone
// (quietRows). The plan fills in Partial rows (with fill) before it reads
// more than their key, file and UID, and loads quiet ones (quietRows.take)
// when it touches them.
type reconciled struct {
	rows        []*index.Message // rows whose file exists, but the quiet ones
	quiet       *quietRows       // rows whose file exists that the run has not loaded (see quietRows)
	gone        []*index.Message // rows whose file is gone (deleted by the user or another program)
	added       []*index.Message // rows created from files on disk (crash leftovers, lost index, other programs)
	flagChanged int              // files renamed by another program
}

// reconcile compares the folder's Maildir with its index rows and fixes the
// index: unknown files get rows (their ,U= tag is used only if trustTags),
// and renamed files update flags. Rows without a file are returned in gone:
// what that means (a deletion to push, or a message to fetch again) is the
// plan's decision.
//
// sc is the folder's listing and rows when the caller has them from this
// run (nil: read them now). With full, every row is loaded whole (a first
// run, a lost state: everything is compared with the server); otherwise
// only the rows the run is known to touch are.
func reconcile(ctx context.Context, store *index.Store, f *index.Folder, dir *maildir.Dir, trustTags bool, sc *folderScan, full bool) (*reconciled, error) {
	var entries []maildir.Entry
	var listing *maildir.Listing // read here, compared by diffRows
	var scanned *scanDiff
	switch {
	case sc != nil && !full:
		scanned = sc.diff
	case sc != nil && sc.listed:
		entries = sc.entries
	case full:
		var err error
		if entries, err = dir.Scan(); err != nil {
			return nil, err
		}
	default:
		l, err := dir.List()
		if err != nil {
			return nil, err
		}
		listing = &l
	}
	var diff *listingDiff[*index.Message]
	var quiet *quietRows
	var image *index.RowImage // to record
	if err := store.Read(ctx, func(tx *index.ReadTx) error {
		if full {
			rows, err := tx.SyncRows(f.ID)
			diff = diffMessages(entries, rows)
			return err
		}
		switch {
		case listing != nil:
			rows, _, err := tx.RowsStamp(f.ID)
			if err != nil {
				return err
			}
			if scanned, image, _, err = diffRows(tx, f.ID, rows, *listing); err != nil {
				return err
			}
		case scanned == nil:
			c := newRowDiffer(entries)
			if err := tx.FileRowChunks(f.ID, rowChunk, func(rows []index.FileRow) error { c.rows(rows); return nil }); err != nil {
				return err
			}
			scanned = c.done()
		}
		pending, err := tx.PendingRows(f.ID)
		diff, quiet = messages(scanned, f.ID, pending)
		return err
	}); err != nil {
		return nil, err
	}
	if image != nil {
		// Only a help to the next run (which reads the rows without
		// it); in a dry run's view, rolled back with the rest.
		_ = store.SetRowImage(ctx, f.ID, image)
	}
	rec := &reconciled{rows: diff.present, gone: diff.gone, quiet: quiet}
	touched := slices.Clone(diff.gone)
	for _, c := range diff.renamed {
		touched = append(touched, diff.present[c.i])
	}
	if err := fill(ctx, store, touched); err != nil {
		return nil, err
	}
	changes, orphans := diff.renamed, diff.unknown
	// Files the door is storing right now (a local endpoint's APPEND):
	// their rows are on the way; the next run sees them.
	orphans = slices.DeleteFunc(slices.Clone(orphans), func(e maildir.Entry) bool { return store.Delivering(e.Key) })
	added, err := store.FileMessages(f, orphans, trustTags)
	if err != nil {
		return nil, err
	}
	takeovers := claimTags(rec, added)
	if len(changes)+len(added) == 0 {
		return rec, nil
	}
	err = store.Write(ctx, func(tx *index.Tx) error {
		for _, m := range takeovers {
			if err := tx.DeleteMessage(m.ID); err != nil {
				return err
			}
		}
		for _, c := range changes {
			file, m := c.e.Sub+"/"+c.e.Name, diff.present[c.i]
			var err error
			if c.e.Flags != m.Flags {
				err = tx.SetFileFlags(m.ID, f.ID, file, c.e.Flags, m.Keywords)
				m.Flags = c.e.Flags
				rec.flagChanged++
			} else {
				err = tx.SetFile(m.ID, file)
			}
			if err != nil {
				return err
			}
			m.File = file
		}
		// A file whose delivery committed its row after the rows were
		// read above has it now: not indexed twice.
		fresh := added[:0:0]
		for _, nm := range added {
			if _, err := tx.MessageIDByKey(f.ID, nm.Key); errors.Is(err, index.ErrNotFound) {
				fresh = append(fresh, nm)
			} else if err != nil {
				return err
			}
		}
		added = fresh
		_, err := tx.AddMessages(added)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, nm := range added {
		m := nm.Message
		rec.rows = append(rec.rows, &m)
		rec.added = append(rec.added, &m)
	}
	return rec, nil
}

// claimTags decides which files found on disk may keep the UID of their
// ,U= tag: one UID belongs to one row of a folder (the index enforces it).
// A file whose UID a present row holds is a copy (a user or a tool copied
// the file): it becomes a new local message, UID 0, to be uploaded; deleting
// either copy later deletes only that one. A file whose UID a gone row holds
// is that row's message under a new key when its bytes are the row's (a
// program rewrote the file under another name): the file takes the row's
// place (its merge base and keywords, which file names do not carry) and the
// row is returned for deletion, so the message is neither deleted upstream
// nor uploaded again. Otherwise the gone row stays a deletion and the file
// is a new message. Of two new files with one tag the first (in key order)
// keeps it; verifyTags later checks the kept tags against the server.
func claimTags(rec *reconciled, added []*index.NewMessage) (takeovers []*index.Message) {
	held := make(map[uint32]bool, len(rec.rows))
	for _, m := range rec.rows {
		if m.UID != 0 {
			held[m.UID] = true
		}
	}
	goneBy := map[uint32]*index.Message{}
	for _, m := range rec.gone {
		if m.UID != 0 {
			goneBy[m.UID] = m
		}
	}
	for _, nm := range added {
		uid := nm.UID
		if uid == 0 {
			continue
		}
		if held[uid] || rec.quiet.has(uid) {
			nm.UID = 0
			continue
		}
		held[uid] = true
		g := goneBy[uid]
		if g == nil {
			continue
		}
		if g.SHA256 != nm.SHA256 {
			nm.UID = 0 // a different message: g's deletion stands
			continue
		}
		takeOver(&nm.Message, g)
		nm.RFC822Size = g.RFC822Size
		takeovers = append(takeovers, g)
		delete(goneBy, uid)
	}
	rec.forgetGone(takeovers)
	return takeovers
}

// takeOver gives m what it inherits from the gone row g whose place it
// takes (claimTags, rematch): the merge base, and the keywords, which file
// names do not carry.
func takeOver(m, g *index.Message) {
	m.SyncedFlags, m.SyncedKeywords, m.Keywords = g.SyncedFlags, g.SyncedKeywords, g.Keywords
}

// forgetGone takes rows out of r.gone: another file took their place, so
// their messages are not deleted.
func (r *reconciled) forgetGone(rows []*index.Message) {
	if len(rows) == 0 {
		return
	}
	ids := make(map[index.MessageID]bool, len(rows))
	for _, m := range rows {
		ids[m.ID] = true
	}
	r.gone = slices.DeleteFunc(r.gone, func(m *index.Message) bool { return ids[m.ID] })
}

// wake loads the quiet rows that intents name into r.rows: a previous
// run's interrupted work on them is resolved on whole rows.
func (r *reconciled) wake(ctx context.Context, store *index.Store, folder index.FolderID, intents []index.Intent) error {
	ids := make([]index.MessageID, len(intents))
	for i, in := range intents {
		ids[i] = in.Message
	}
	ms, err := r.quiet.takeIDs(ctx, store, folder, ids)
	r.rows = append(r.rows, ms...)
	return err
}

// fill loads the Partial rows among msgs whole (see reconciled).
func fill(ctx context.Context, store *index.Store, msgs []*index.Message) error {
	if !slices.ContainsFunc(msgs, func(m *index.Message) bool { return m.Partial }) {
		return nil
	}
	return store.Read(ctx, func(tx *index.ReadTx) error { return tx.Fill(msgs) })
}

// fileReaders recycles the buffers for reading message files.
var fileReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

func getReader(r io.Reader) *bufio.Reader {
	br := fileReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	fileReaders.Put(br)
}
