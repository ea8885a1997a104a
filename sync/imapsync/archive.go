package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// The archive policy (Options.Archive): nothing that arrived is ever
// deleted here. Where the merge rules delete a message locally, it moves
// to the account's archive view instead (index.Store.Archive: the folder
// index.ArchiveFolder(<folder>), local only, its row marked as gone
// upstream):
//
//	expunged upstream, unchanged here  moved to the archive view (file, then row)
//	deleted here (file removed)        the server's copy is fetched into the
//	                                   archive view under the file's Maildir key,
//	                                   then expunged upstream as usual (only
//	                                   those whose copy the view holds: one the
//	                                   server sent no copy of stays there, and
//	                                   the next run tries again)
//
// A folder deleted upstream is kept here, as it is, not synced (folderops.go).
// A folder deleted here (its Maildir removed) is not deleted upstream, nor
// its messages one by one: the server's copies are the only ones left, so
// it is fetched again (the safe choice: nothing is lost, and the user
// deletes messages, which archives them, then the empty folder). An empty
// server folder, as the last sync left it, is deleted upstream.
//
// The archive folders are excluded from every run (withDefaults adds them
// to the patterns' exclusions), so they are never created or uploaded
// upstream, and their absence there is no deletion.
//
// Each run (not a dry run) first brings the index in line with the
// archive folders on disk (index.Store.ScanArchive): a file there without
// a row (a lost index; a file an interrupted run left) is indexed, so the
// view is rebuilt from the Maildir like the rest of the index.
//
// Crash safety. A kill inside the move (file renamed into the view, row
// not yet moved) leaves a row whose file is gone while the server has no
// copy: such a row is moved after its file when the view holds it
// (finishArchived), not forgotten. A kill after the copy of a locally
// deleted message was delivered and before the server's expunge leaves
// the old row: the next run finds the view holds its key already and only
// expunges; after the expunge and before the row was dropped, the row's
// server copy is gone and the view holds its key: Archive drops the row.
// Neither case loses the message or keeps two copies.

// archiveGone moves to the archive view the messages expunged upstream
// (the plan's serverGone).
func archiveGone(ctx context.Context, o *Options, gone []*index.Message) error {
	if len(gone) == 0 || o.DryRun {
		return nil
	}
	o.Logger.Debug("archiving", "messages", len(gone), "why", "expunged upstream") // the kill test aims here
	return o.Index.Archive(ctx, gone, false)
}

// finishArchived takes out of rows (rows whose file is gone, to be
// forgotten) those whose server copy is gone too and whose file an
// interrupted archive move put into the archive view: their move is
// finished. It returns the others.
func finishArchived(ctx context.Context, o *Options, j *folderJob, present *uidList, rows []*index.Message) ([]*index.Message, error) {
	if !o.Archive || o.DryRun || present == nil || len(rows) == 0 {
		return rows, nil
	}
	view, err := maildir.FolderDir(o.Root, o.Account, index.ArchiveFolder(j.f.Name))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(view); err != nil {
		return rows, nil // no view: nothing was ever moved there
	}
	var rest []*index.Message
	for _, m := range rows {
		if m.UID == 0 || present.has(m.UID) {
			rest = append(rest, m)
			continue
		}
		err := o.Index.Archive(ctx, []*index.Message{m}, false)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			rest = append(rest, m) // not there either: gone on both sides
		case err != nil:
			return nil, err
		}
	}
	return rest, nil
}

// archiveCopies fetches the server copies of messages deleted here
// (rows, about to be expunged upstream) into the archive view of their
// folder, each under its Maildir key, through the store's door
// (index.Store.Deliver), marked as archived. A row whose key the view
// holds already was archived by an interrupted run. The folder is
// selected on w.c. It returns the rows whose copy the view holds
// (durably): only those may be expunged upstream. A message the FETCH
// did not return with a body stays upstream, its row kept: the next run
// tries again.
func (w *worker) archiveCopies(ctx context.Context, j *folderJob, rows []*index.Message) ([]*index.Message, error) {
	o := &w.s.opts
	view, err := o.Index.CreateFolder(ctx, j.f.Account, index.ArchiveFolder(j.f.Name), nil)
	if err != nil {
		return nil, err
	}
	dir, err := o.Index.Dir(*view)
	if err != nil {
		return nil, err
	}
	byUID := map[uint32]*index.Message{}
	var uids []imap.UID
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		for _, m := range rows {
			_, err := tx.MessageIDByKey(view.ID, m.Key)
			if errors.Is(err, index.ErrNotFound) {
				byUID[m.UID] = m
				uids = append(uids, imap.UID(m.UID))
				continue
			}
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// A file of one of them without its row: an interrupted run's copy,
	// renamed into the view before its row was committed. The server
	// still has the message (it is expunged only after the rows are
	// committed): the copy is fetched again, in its place.
	for _, m := range byUID {
		if e, err := dir.Find(m.Key, ""); err == nil {
			if _, err := dir.Unlink(e); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(uids) == 0 {
		return rows, nil
	}
	w.s.log.Debug("archiving", "messages", len(uids), "why", "deleted here") // the kill test aims here
	var as []*index.Arrival
	defer func() {
		for _, a := range as {
			a.File.Abort() // nothing once delivered
		}
	}()
	cmd := w.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		a, err := archiveArrival(view, dir, msg, byUID)
		if err != nil {
			return nil, abortFetch(w.c, cmd, err)
		}
		if a != nil {
			as = append(as, a)
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("FETCH: %w", err)
	}
	if err := o.Index.Deliver(ctx, &index.Batch{Arrivals: as, WithRows: func(tx *index.Tx, ids []index.MessageID) error {
		return tx.MarkArchived(ids, time.Now())
	}}); err != nil {
		return nil, err
	}
	// byUID holds what did not come (archiveArrival takes out each
	// message it delivers): not archived, so not expunged upstream.
	if len(byUID) == 0 {
		return rows, nil
	}
	w.s.log.Warn("archive: the server sent no copy of messages deleted here; they stay upstream until it does",
		"folder", j.rf.Local, "count", len(byUID))
	return slices.DeleteFunc(slices.Clone(rows), func(m *index.Message) bool { return byUID[m.UID] == m }), nil
}

// archiveArrival reads one FETCH answer of archiveCopies into a delivery
// in the archive view dir, under the key of its row (byUID), with the
// row's flags; nil for an answer without a body or a row.
func archiveArrival(view *index.Folder, dir *maildir.Dir, msg *imapclient.FetchMessageData, byUID map[uint32]*index.Message) (*index.Arrival, error) {
	var uid uint32
	var idate time.Time
	var size int64
	var dlv *maildir.Delivery
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(it.UID)
		case imapclient.FetchItemDataInternalDate:
			idate = it.Time
		case imapclient.FetchItemDataRFC822Size:
			size = it.Size
		case imapclient.FetchItemDataBodySection:
			m := byUID[uid]
			if it.Literal == nil || m == nil || dlv != nil {
				if it.Literal != nil {
					io.Copy(io.Discard, it.Literal)
				}
				continue
			}
			d, err := dir.NewDeliveryKey(m.Key)
			if err != nil {
				return nil, err
			}
			if err := readLiteral(d, it.Literal); err != nil {
				d.Abort()
				return nil, fmt.Errorf("UID %d: %w", uid, err)
			}
			if err := d.Close(); err != nil {
				d.Abort()
				return nil, fmt.Errorf("storing message: %w", err)
			}
			dlv = d
		}
	}
	m := byUID[uid]
	if dlv == nil || m == nil {
		if dlv != nil {
			dlv.Abort()
		}
		return nil, nil
	}
	delete(byUID, uid)
	if !idate.IsZero() {
		os.Chtimes(dlv.Path(), idate, idate)
	}
	a := &index.Arrival{Folder: view, File: dlv}
	r := &a.Row
	r.DeferText = true
	r.Flags, r.Keywords = m.Flags&^maildir.FlagDeleted, m.Keywords
	r.RFC822Size, r.InternalDate = size, idate
	r.Header = index.ParseHeader(dlv.Header())
	return a, nil
}

// recordArchived counts and records the messages deleted here that are
// archived (Options.Archive) before their server copies are expunged.
func (w *worker) recordArchived(j *folderJob, rows []*index.Message) {
	if !w.s.opts.Archive {
		return
	}
	j.update(func(r *FolderResult) { r.Archived += len(rows) })
	j.recordRows(OpArchive, rows)
}
