package imapsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Moves between local folders. A mail client moves a message by renaming
// its file into the other folder's Maildir, keeping the Maildir key. Before
// the folders are planned, this pass pairs each row whose file vanished
// from one folder with an unknown file of the same key in another, and
// moves the server copy with UID MOVE (go-imap falls back to COPY, STORE
// \Deleted and UID EXPUNGE where the server lacks MOVE). Nothing is
// uploaded or downloaded again.
//
// No journal is needed: after a crash between the MOVE and the index
// update, the source folder finds the row's UID gone upstream and forgets
// the row, and the destination indexes the file, finds its ,U= tag does not
// fit (verifyTags) and adopts the moved copy by content (rematch).

type moveCand struct {
	row  *index.Message
	from *index.Folder
}

// moveArrival is a file in folder to that no row knows: maybe a moved one.
type moveArrival struct {
	e  maildir.Entry
	to *index.Folder
}

// detectMoves performs the moves it finds and returns how many.
func (s *syncer) detectMoves(ctx context.Context, c *imapclient.Client, acct index.AccountID, folders []remoteFolder) (int, error) {
	o := &s.opts
	if !o.push() || !o.pull() {
		return 0, nil
	}
	remoteOf := map[string]string{}
	for _, rf := range folders {
		remoteOf[rf.Local] = rf.Remote
	}
	arrivals, gone, err := s.moveCandidates(ctx, acct, remoteOf)
	if err != nil || len(arrivals) == 0 || len(gone) == 0 {
		return 0, err
	}
	n := 0
	for _, a := range arrivals {
		cand, ok := gone[a.e.Key]
		if !ok || cand.from.ID == a.to.ID {
			continue
		}
		delete(gone, a.e.Key)
		if o.DryRun {
			if s.planned == nil {
				s.planned = map[string]*index.Message{}
			}
			s.planned[a.e.Key] = cand.row
			n++
			continue
		}
		s.listingsChanged() // the listings no longer hold
		if err := s.moveOne(ctx, c, cand, a.e, a.to, remoteOf); err != nil {
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) {
				return n, err
			}
			// Refused: the folders' own plans carry the move over as a
			// deletion there and an upload here.
			s.log.Warn("the server refused a move; the message is uploaded to its new folder instead",
				"from", cand.from.Name, "to", a.to.Name, "err", err)
			continue
		}
		n++
	}
	return n, nil
}

// moveCandidates lists, over the synced folders, the files no row knows
// (arrivals) and the upstream rows whose file vanished, by key (gone). It
// reads nothing else when a partial run's named folders changed nothing.
func (s *syncer) moveCandidates(ctx context.Context, acct index.AccountID, remoteOf map[string]string) ([]moveArrival, map[string]moveCand, error) {
	o := &s.opts
	var known []*index.Folder
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		known, err = tx.Folders(acct)
		return err
	}); err != nil {
		return nil, nil, err
	}
	var scanned []*index.Folder
	for _, f := range known {
		if remoteOf[f.Name] != "" && f.UIDValidity != 0 {
			scanned = append(scanned, f)
		}
	}
	if s.partial {
		// The other folders matter only if a named one changed.
		named := s.onlyFolders(scanned)
		if err := s.scanFolders(ctx, named); err != nil {
			return nil, nil, err
		}
		if !slices.ContainsFunc(named, func(f *index.Folder) bool {
			sc := s.scans.peek(f.ID)
			return sc != nil && len(sc.diff.unknown)+len(sc.diff.gone) > 0
		}) {
			return nil, nil, nil
		}
	}
	if err := s.scanFolders(ctx, scanned); err != nil {
		return nil, nil, err
	}
	gone := map[string]moveCand{} // key -> vanished row
	var arrivals []moveArrival
	for _, f := range scanned {
		sc := s.scans.peek(f.ID)
		if sc == nil {
			continue
		}
		for _, e := range sc.diff.unknown {
			arrivals = append(arrivals, moveArrival{e, f})
		}
		for _, m := range sc.diff.gone {
			gone[m.Key] = moveCand{from: f}
		}
	}
	if len(arrivals) == 0 || len(gone) == 0 {
		return nil, nil, nil
	}
	// Only now load the vanished rows themselves.
	err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		for key, c := range gone {
			m, err := tx.MessageByKey(c.from.ID, key)
			if err != nil || m.UID == 0 {
				delete(gone, key) // never upstream: nothing to move there
				continue
			}
			c.row = m
			gone[key] = c
		}
		return nil
	})
	return arrivals, gone, err
}

// scanFolders reads the listings and index rows of the folders that have
// none in the scan cache yet, scanParallel at a time (on a large account
// this is most of a no-change run), and caches them compared (see
// scanDiff). A folder that cannot be read is left out: its own plan
// reports the error.
func (s *syncer) scanFolders(ctx context.Context, folders []*index.Folder) error {
	return errors.Join(s.unscanned(folders, func(_ int, f *index.Folder) error { return s.scanFolder(ctx, f) })...)
}

// unscanned calls fn for each of folders (at index i) that the scan cache
// holds nothing of yet, scanParallel at a time, and returns their errors
// by index.
func (s *syncer) unscanned(folders []*index.Folder, fn func(i int, f *index.Folder) error) []error {
	errs := make([]error, len(folders))
	parallel(len(folders), scanParallel, func(i int) {
		if s.scans.peek(folders[i].ID) == nil {
			errs[i] = fn(i, folders[i])
		}
	})
	return errs
}

// parallel calls fn(i) for each i below n, at most k at a time, and
// returns when all have returned.
func parallel(n, k int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, k)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// scanParallel is how many folders scanFolders reads at once. While a
// folder is read, its whole listing and rows are in memory (until they are
// compared): on a large account, all folders at once were most of a run's
// peak memory, and the scans are mostly CPU, of which a small machine has
// two cores.
const scanParallel = 2

// rowChunk is how many rows at a time scanFolder compares with a listing.
const rowChunk = 2000

// scanFolder reads the folder's listing and compares it with its rows into
// the scan cache (scanListing), unless the folder's recorded stamp vouches
// that they are still as a run found them equal (vouch).
func (s *syncer) scanFolder(ctx context.Context, f *index.Folder) error {
	if vouched, _, err := s.vouch(ctx, f); err != nil || vouched {
		return err
	}
	return s.scanListing(ctx, f)
}

// vouch reports whether the folder's recorded stamp vouches that its
// listing and rows are still as a run found them equal
// (index.FolderStamp, maildir.Stamp): then the scan cache gets a clean
// scan without them, and the folder's plan, if it needs them, reads them
// itself. If not, changed says whether the folder changed since a stamp
// was recorded (it differs, or is too recent to vouch for anything: Racy)
// rather than having none (a folder never found equal to its rows, or
// one whose stamps cannot be read).
func (s *syncer) vouch(ctx context.Context, f *index.Folder) (vouched, changed bool, err error) {
	o := &s.opts
	d, err := o.Index.Dir(*f)
	if err != nil {
		return false, false, err
	}
	before, err := d.Stamp()
	if err != nil {
		return false, false, nil
	}
	if before.Racy(time.Now()) {
		return false, true, nil
	}
	var counts *syncCounts
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		recorded, now, err := tx.FolderStamp(f.ID)
		now.Dir = before.String()
		vouched = err == nil && recorded == now.String()
		changed = err == nil && recorded != "" && !vouched
		if vouched {
			counts, err = readSyncCounts(tx, f.ID)
		}
		return err
	}); err != nil {
		return false, false, err
	}
	if vouched {
		s.scans.put(f.ID, &folderScan{stamped: true, diff: &scanDiff{}, counts: counts})
		s.ends.vouched(f.ID, d, before) // watched if its job runs
	}
	return vouched, changed, nil
}

// scanListing reads the folder's listing and compares it with its rows
// into the scan cache (diffRows). A listing found equal to its rows
// between two equal stamps, not racy, records that stamp (not in a dry
// run). A listing that cannot be read is left out (its plan reports it).
func (s *syncer) scanListing(ctx context.Context, f *index.Folder) error {
	o := &s.opts
	d, err := o.Index.Dir(*f)
	if err != nil {
		return err
	}
	// Watched before the listing and the stamp it goes with: see endStamps.
	watchedDirs, watched := s.ends.watch(f.ID, d)
	before, serr := d.Stamp()
	watched = watched && serr == nil && watchedDirs.SameDirs(before)
	l, err := d.List()
	if err != nil {
		return nil
	}
	var diff *scanDiff
	var image *index.RowImage // to record
	unique := true            // every file the message of its key
	var now index.FolderStamp
	var counts *syncCounts
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		if _, now, err = tx.FolderStamp(f.ID); err != nil {
			return err
		}
		now.Dir = before.String()
		if diff, image, unique, err = diffRows(tx, f.ID, now.Rows, l); err != nil || !diff.clean() {
			return err
		}
		counts, err = readSyncCounts(tx, f.ID)
		return err
	}); err != nil {
		return err
	}
	if image != nil && !o.DryRun {
		if err := o.Index.SetRowImage(ctx, f.ID, image); err != nil {
			s.log.Debug("recording a folder's row image", "folder", f.Name, "err", err)
		}
	}
	sc := &folderScan{diff: diff, counts: counts}
	s.scans.put(f.ID, sc)
	// unique: what a stamp vouches for too (index.FolderStamp, since
	// version 2).
	if watched && unique && serr == nil {
		s.ends.candidate(f.ID, d, before, sc.diff)
	}
	if serr != nil || o.DryRun || !sc.diff.clean() || !unique || before.Racy(time.Now()) {
		return nil
	}
	if after, err := d.Stamp(); err != nil || after != before {
		return nil // changed while it was read
	}
	if err := o.Index.SetFolderStamp(ctx, f.ID, now); err != nil {
		s.log.Debug("recording a folder's stamp", "folder", f.Name, "err", err)
	}
	return nil
}

// diffRows compares a folder's listing with its rows (rows of them, read in
// tx): with the image of the rows where one is recorded and it can tell
// (diffImage), otherwise with the rows themselves. image is the one to
// record (nil: none); unique, whether every file is the message of its
// key (no second file of a key, none of new/ hidden by cur/).
func diffRows(tx *index.ReadTx, folder index.FolderID, rows int, l maildir.Listing) (diff *scanDiff, image *index.RowImage, unique bool, err error) {
	im, err := tx.RowImage(folder)
	if err != nil {
		return nil, nil, false, err
	}
	if im != nil {
		d, gone, ok, err := diffImage(tx, folder, im, rows, l)
		if err != nil {
			return nil, nil, false, err
		}
		if ok {
			// Recorded anew once catching up costs a sixteenth of
			// reading it.
			if im.CaughtUp >= 256 && im.CaughtUp*16 >= im.Len() {
				image = im.Without(gone)
			}
			return d, image, true, nil
		}
	}
	if rowsReadHook != nil {
		rowsReadHook()
	}
	entries, hidden := l.Sorted()
	c := newRowDiffer(entries)
	var b index.RowImageBuilder
	if err := tx.FileRowChunks(folder, rowChunk, func(rows []index.FileRow) error {
		c.rows(rows)
		b.Add(rows)
		return nil
	}); err != nil {
		return nil, nil, false, err
	}
	modseq, err := tx.LocalModSeq(folder)
	if err != nil {
		return nil, nil, false, err
	}
	unique = hidden == 0 && c.mg.dups == 0
	// An image that declined a listing with a key's second file (what it
	// cannot tell) is not recorded again: it catches up as well as a new
	// one, and the listing may stay so for many runs. Otherwise a new one
	// (none yet, or the image's counts did not add up).
	if im == nil || unique {
		image = b.Image(modseq)
	}
	return c.done(), image, unique, nil
}

// rowsReadHook, if set (by tests), runs when diffRows reads a folder's
// rows.
var rowsReadHook func()

// prescan reads, while the connection is being set up, the folders the
// index knows (see scanFolders): first whether their stamps vouch for
// them (vouch), which it tells looked before it reads the listings of
// the others.
func (s *syncer) prescan(ctx context.Context, acct index.AccountID, looked chan<- localLook) error {
	var known []*index.Folder
	if err := s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		known, err = tx.Folders(acct)
		return err
	}); err != nil {
		looked <- localLook{}
		return err
	}
	known = slices.DeleteFunc(known, func(f *index.Folder) bool { return f.UIDValidity == 0 })
	known = s.onlyFolders(known)
	changed := make([]bool, len(known))
	errs := s.unscanned(known, func(i int, f *index.Folder) (err error) {
		_, changed[i], err = s.vouch(ctx, f)
		return err
	})
	look := localLook{known: len(known)}
	for _, c := range changed {
		if c {
			look.changed++
		}
	}
	looked <- look
	// (A vouched folder is in the scan cache now.)
	listed := s.unscanned(known, func(i int, f *index.Folder) error {
		if errs[i] != nil {
			return nil
		}
		return s.scanListing(ctx, f)
	})
	s.toUpload = s.uploadsLikely(ctx, known)
	return errors.Join(append(errs, listed...)...)
}

// uploadsLikely reports whether the run will most likely upload: a known
// folder has files the index does not know (new mail a program wrote, or
// a message moved from another folder) or messages not upstream yet. The
// uploader is then dialed while the folders are planned (folderLevel),
// not when the first upload is ready. The index is asked only about the
// folders whose counts, read with their scan, leave it open: a no-change
// run reads nothing more.
func (s *syncer) uploadsLikely(ctx context.Context, known []*index.Folder) bool {
	o := &s.opts
	if !o.push() || o.DryRun || o.NoMultiAppend {
		return false
	}
	var ask []index.FolderID // folders that may hold rows without UID
	for _, f := range known {
		sc := s.scans.peek(f.ID)
		switch {
		case sc != nil && len(sc.diff.unknown) > 0:
			return true
		case sc == nil || sc.counts == nil || sc.counts.pending > 0:
			ask = append(ask, f.ID)
		}
	}
	if len(ask) == 0 {
		return false
	}
	var some bool
	o.Index.Read(ctx, func(tx *index.ReadTx) error {
		for _, id := range ask {
			var err error
			if some, err = tx.Unuploaded(id); some || err != nil {
				return err
			}
		}
		return nil
	})
	return some
}

// localLook is what prescan learnt of the known folders before reading
// any listing: how many there are, and of those how many changed here
// since their stamps were recorded (see vouch).
type localLook struct{ known, changed int }

// allChanged: every known folder will be planned whatever the server
// says, so none needs its STATUS (see folderLevel).
func (l localLook) allChanged() bool { return l.known > 0 && l.changed == l.known }

func (s *syncer) moveOne(ctx context.Context, c *imapclient.Client, cand moveCand, e maildir.Entry, to *index.Folder, remoteOf map[string]string) error {
	o := &s.opts
	src, dst := remoteOf[cand.from.Name], remoteOf[to.Name]
	sel, err := c.Select(src, nil).Wait()
	if err != nil {
		return fmt.Errorf("SELECT %s: %w", src, err)
	}
	if sel.UIDValidity != cand.from.UIDValidity {
		return nil // the folder's own plan sorts this out
	}
	data, err := c.Move(imap.UIDSetNum(imap.UID(cand.row.UID)), dst).Wait()
	if err != nil {
		return fmt.Errorf("MOVE %s -> %s: %w", src, dst, err)
	}
	// go-imap v2.0.0-beta.9 turns a COPYUID with "*" (against RFC 4315)
	// into no data at all (UIDValidity 0), as if the server lacked UIDPLUS:
	// newUID stays 0 and the destination adopts the copy by content.
	var newUID uint32
	if data != nil && data.UIDValidity == to.UIDValidity {
		var ok bool
		if newUID, ok = movedUID(data, cand.row.UID); !ok {
			s.log.Warn("the server's COPYUID after MOVE does not name the one message moved; matched by content instead",
				"from", cand.from.Name, "to", to.Name, "uid", cand.row.UID)
		}
	}
	s.log.Debug("moved upstream", "from", cand.from.Name, "to", to.Name, "uid", cand.row.UID, "new_uid", newUID)
	// The file is in to already (a mail program moved it there, as e):
	// the door tags it with the new UID and moves the row.
	cand.row.File = e.Sub + "/" + e.Name
	return o.Index.Move(ctx, cand.row, to.ID, newUID, nil)
}

// movedUID returns the new UID of the one message (UID uid) a MOVE moved,
// from its COPYUID. The sets are checked without expanding them (see
// uidset.go): anything but uid one way and one UID the other is not usable.
func movedUID(data *imapclient.MoveData, uid uint32) (uint32, bool) {
	src, _ := data.SourceUIDs.(imap.UIDSet)
	dst, _ := data.DestUIDs.(imap.UIDSet)
	from, okFrom := singleUID(src)
	to, okTo := singleUID(dst)
	if !okFrom || !okTo || from != uid {
		return 0, false
	}
	return to, true
}
