package imapsync

import (
	"slices"
	"strings"
	"sync"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// listingDiff is how a folder's Maildir listing differs from its index
// rows: what moves detection, the skip test and reconcile all start from.
// The scan of a folder holds it compact (scanDiff); reconcile makes its
// rows index.Messages, or quiet rows (see quietRows), of the folders in
// flight only.
type listingDiff[R any] struct {
	present []R             // rows whose file exists, under its recorded name or another
	renamed []renamedFile   // present rows whose file has another name now
	gone    []R             // rows whose file is gone
	unknown []maildir.Entry // files without a row
}

// renamedFile is a row whose file another program renamed (a flag
// change): present[i] of its listingDiff, now named e.
type renamedFile struct {
	i int
	e maildir.Entry
}

// clean reports whether the listing is exactly what the index says.
func (d *listingDiff[R]) clean() bool { return len(d.renamed)+len(d.gone)+len(d.unknown) == 0 }

// diffListing compares a listing with a folder's rows by key (key and file
// give a row's key and file name). Both are sorted by key (in place) and
// merged (keyMerge), which for a large folder is much cheaper than a map
// of either; the present rows are gathered in place, in rows' array (rows
// is not valid afterwards).
func diffListing[R any](entries []maildir.Entry, rows []R, key, file func(R) string) *listingDiff[R] {
	byKey := func(a, b R) int { return strings.Compare(key(a), key(b)) }
	if !slices.IsSortedFunc(rows, byKey) {
		slices.SortFunc(rows, byKey)
	}
	mg := newKeyMerge(entries)
	d := &listingDiff[R]{present: rows[:0]}
	for _, m := range rows {
		// present never overtakes the range: m is copied before its
		// place may be written.
		before, e, ok := mg.seek(key(m))
		d.unknown = append(d.unknown, before...)
		if !ok {
			d.gone = append(d.gone, m)
			continue
		}
		d.present = append(d.present, m)
		if !namedAs(file(m), e) {
			d.renamed = append(d.renamed, renamedFile{i: len(d.present) - 1, e: e})
		}
	}
	d.unknown = append(d.unknown, mg.rest()...)
	clear(rows[len(d.present):]) // the gone rows' old places
	d.present = slices.Clip(d.present)
	return d
}

// keyMerge walks a listing, sorted by key, beside rows that come in key
// order: the one merge of diffListing and rowDiffer. Of two files with one
// key (a copy another program made by hand), the first in listing order
// is the message; the other is left alone.
type keyMerge struct {
	entries []maildir.Entry
	i       int
	dups    int // second files of a row's key passed over
}

// newKeyMerge sorts entries by key (in place, stable: listing order
// within a key) for the rows to come.
func newKeyMerge(entries []maildir.Entry) keyMerge {
	slices.SortStableFunc(entries, func(a, b maildir.Entry) int { return strings.Compare(a.Key, b.Key) })
	return keyMerge{entries: entries}
}

// seek moves to the row key k, each key after the last one's: before is
// the entries passed over (files without a row), e the file of key k if ok
// (its second files passed over too).
func (mg *keyMerge) seek(k string) (before []maildir.Entry, e maildir.Entry, ok bool) {
	from := mg.i
	for mg.i < len(mg.entries) && mg.entries[mg.i].Key < k {
		mg.i++
	}
	before = mg.entries[from:mg.i]
	if mg.i == len(mg.entries) || mg.entries[mg.i].Key > k {
		return before, maildir.Entry{}, false
	}
	e = mg.entries[mg.i]
	for mg.i++; mg.i < len(mg.entries) && mg.entries[mg.i].Key == k; mg.i++ {
		mg.dups++ // a second file with this key: left alone
	}
	return before, e, true
}

// rest returns the entries after the last row's key (files without a
// row), once every row came.
func (mg *keyMerge) rest() []maildir.Entry {
	rest := mg.entries[mg.i:]
	mg.entries, mg.i = nil, 0
	return rest
}

// namedAs reports whether file, a row's recorded file name
// ("cur/<name>"), is e's sub directory and name, without building the
// string.
func namedAs(file string, e maildir.Entry) bool {
	n := len(e.Sub)
	return len(file) == n+1+len(e.Name) && file[:n] == e.Sub && file[n] == '/' && file[n+1:] == e.Name
}

// diffMessages is diffListing of whole rows.
func diffMessages(entries []maildir.Entry, rows []*index.Message) *listingDiff[*index.Message] {
	return diffListing(entries, rows, func(m *index.Message) string { return m.Key }, func(m *index.Message) string { return m.File })
}

// scanDiff is a listingDiff of a folder's index.FileRow values as a scan holds
// it until the folder's plan takes it: the present rows upstream whose
// file kept its name (most of a folder) as their id and UID alone
// (upstream), the others in present with their own copies of key and file
// name, so that the string the rows were read into is not kept.
type scanDiff struct {
	listingDiff[index.FileRow]
	upstream []idUID
}

type idUID struct {
	id  index.MessageID
	uid uint32
}

// diffFileRows compares a listing with a folder's rows (see diffListing)
// into a scanDiff; rows is sorted by key in place.
func diffFileRows(entries []maildir.Entry, rows []index.FileRow) *scanDiff {
	byKey := func(a, b index.FileRow) int { return strings.Compare(a.Key, b.Key) }
	if !slices.IsSortedFunc(rows, byKey) {
		slices.SortFunc(rows, byKey)
	}
	c := newRowDiffer(entries)
	c.rows(rows)
	return c.done()
}

// rowDiffer compares a listing, sorted by key, with a folder's rows as
// they come in key order, a chunk at a time (index.ReadTx.FileRowChunks),
// into a scanDiff (as diffListing does): a folder's rows are never all in
// memory at once.
type rowDiffer struct {
	mg keyMerge
	d  scanDiff
}

// newRowDiffer sorts entries by key (in place) for the rows to come.
func newRowDiffer(entries []maildir.Entry) *rowDiffer {
	return &rowDiffer{mg: newKeyMerge(entries)}
}

// rows takes the next rows, in key order, each key after the last one's.
func (c *rowDiffer) rows(rows []index.FileRow) {
	own := func(r index.FileRow) index.FileRow {
		r.Key, r.File = strings.Clone(r.Key), strings.Clone(r.File)
		return r
	}
	for _, r := range rows {
		before, e, ok := c.mg.seek(r.Key)
		c.d.unknown = append(c.d.unknown, before...)
		switch {
		case !ok:
			c.d.gone = append(c.d.gone, own(r))
		case !namedAs(r.File, e):
			c.d.present = append(c.d.present, own(r))
			c.d.renamed = append(c.d.renamed, renamedFile{i: len(c.d.present) - 1, e: e})
		case r.UID != 0:
			c.d.upstream = append(c.d.upstream, idUID{r.ID, r.UID})
		default:
			c.d.present = append(c.d.present, own(r))
		}
	}
}

// done returns the diff once every row came.
func (c *rowDiffer) done() *scanDiff {
	c.d.unknown = append(c.d.unknown, c.mg.rest()...)
	return &c.d
}

// messages turns a scan's diff into one of messages of folder. The rows
// in whole take the place of the scanned rows with their ids; the other
// upstream rows whose file kept its name are quiet (see quietRows), the
// rest Partial (see index.ReadTx.FileRows).
func messages(d *scanDiff, folder index.FolderID, whole []*index.Message) (*listingDiff[*index.Message], *quietRows) {
	byID := make(map[index.MessageID]*index.Message, len(whole))
	for _, m := range whole {
		byID[m.ID] = m
	}
	arr := make([]index.Message, 0, len(d.present)+len(d.gone)) // one array: appends never move it
	msg := func(r *index.FileRow) *index.Message {
		if m := byID[r.ID]; m != nil {
			return m
		}
		arr = append(arr, index.Message{ID: r.ID, Folder: folder, UID: r.UID, Key: r.Key, File: r.File, Partial: true})
		return &arr[len(arr)-1]
	}
	out := &listingDiff[*index.Message]{present: make([]*index.Message, 0, len(d.present)), renamed: d.renamed, unknown: d.unknown}
	for i := range d.present {
		out.present = append(out.present, msg(&d.present[i]))
	}
	for i := range d.gone {
		out.gone = append(out.gone, msg(&d.gone[i]))
	}
	n := 0
	for _, r := range d.upstream {
		if byID[r.id] == nil {
			n++
		}
	}
	q := &quietRows{uids: make([]uint32, 0, n), ids: make([]index.MessageID, 0, n)}
	for _, r := range d.upstream {
		if m := byID[r.id]; m != nil {
			out.present = append(out.present, m)
		} else {
			q.add(r.uid, r.id)
		}
	}
	q.sort()
	return out, q
}

// folderScan is a folder's directory listing compared with its index rows
// as read at the start of the run (diff; the listing itself is kept only
// where a dry run makes it up, see syncer.scanAsOpened).
type folderScan struct {
	entries []maildir.Entry
	listed  bool // entries is the listing
	diff    *scanDiff
	// stamped: the folder's stamp vouched for its listing (see
	// syncer.scanFolder): diff is clean, entries and rows were not read.
	stamped bool
	// counts: the folder's index.ReadTx.SyncCounts, read in the same
	// transaction as the stamp or the rows (nil: not read), so that
	// deciding whether the folder can be skipped once the server's STATUS
	// is in (unchangedLocally) reads nothing more. Valid as long as the
	// scan: what changes rows clears the cache.
	counts *syncCounts
}

// syncCounts is a folder's rows that have a copy upstream, and those with
// something to push (index.ReadTx.SyncCounts).
type syncCounts struct{ upstream, pending int }

// readSyncCounts reads the folder's syncCounts.
func readSyncCounts(tx *index.ReadTx, f index.FolderID) (*syncCounts, error) {
	up, pending, err := tx.SyncCounts(f)
	if err != nil {
		return nil, err
	}
	return &syncCounts{upstream: up, pending: pending}, nil
}

func newFolderScan(entries []maildir.Entry, rows []index.FileRow) *folderScan {
	return &folderScan{diff: diffFileRows(entries, rows)}
}

// scanCache hands each folder's listing, read at the start of the run, to
// detectMoves and then to the folder's plan, so a large Maildir and its
// rows are read once per run. An entry is valid until something changes
// the folder: a move or a folder action clears the cache, and the plan
// takes (removes) its entry.
type scanCache struct {
	mu sync.Mutex
	m  map[index.FolderID]*folderScan
}

func (c *scanCache) put(id index.FolderID, s *folderScan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[index.FolderID]*folderScan{}
	}
	c.m[id] = s
}

// peek returns the listing without removing it; take removes it.
func (c *scanCache) peek(id index.FolderID) *folderScan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *scanCache) take(id index.FolderID) *folderScan {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[id]
	delete(c.m, id)
	return s
}

func (c *scanCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
