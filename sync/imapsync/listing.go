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
type listingDiff struct {
	present []*index.Message // rows whose file exists, under its recorded name or another
	renamed []renamedFile    // present rows whose file has another name now
	gone    []*index.Message // rows whose file is gone
	unknown []maildir.Entry  // files without a row
}

// renamedFile is a row whose file another program renamed (a flag change).
type renamedFile struct {
	m *index.Message
	e maildir.Entry
}

// clean reports whether the listing is exactly what the index says.
func (d *listingDiff) clean() bool { return len(d.renamed)+len(d.gone)+len(d.unknown) == 0 }

// diffListing compares a listing with a folder's rows by key. Both are
// sorted by key (in place) and merged, which for a large folder is much
// cheaper than a map of either. Of two files with one key (a copy another
// program made by hand), the first in listing order is the message; the
// other is left alone.
func diffListing(entries []maildir.Entry, rows []*index.Message) *listingDiff {
	slices.SortStableFunc(entries, func(a, b maildir.Entry) int { return strings.Compare(a.Key, b.Key) })
	byKey := func(a, b *index.Message) int { return strings.Compare(a.Key, b.Key) }
	if !slices.IsSortedFunc(rows, byKey) {
		slices.SortFunc(rows, byKey)
	}
	d := &listingDiff{present: make([]*index.Message, 0, len(rows))}
	i, j := 0, 0
	for i < len(entries) || j < len(rows) {
		switch {
		case j == len(rows) || (i < len(entries) && entries[i].Key < rows[j].Key):
			d.unknown = append(d.unknown, entries[i])
			i++
		case i == len(entries) || entries[i].Key > rows[j].Key:
			d.gone = append(d.gone, rows[j])
			j++
		default:
			e, m := entries[i], rows[j]
			d.present = append(d.present, m)
			if e.Sub+"/"+e.Name != m.File {
				d.renamed = append(d.renamed, renamedFile{m: m, e: e})
			}
			for i++; i < len(entries) && entries[i].Key == m.Key; i++ {
				// a second file with this key: left alone
			}
			j++
		}
	}
	return d
}

// folderScan is a folder's directory listing and its index rows (Partial,
// see index.ReadTx.FileRows) as read at the start of the run, and how they
// differ.
type folderScan struct {
	entries []maildir.Entry
	rows    []*index.Message
	diff    *listingDiff
	// stamped: the folder's stamp vouched for its listing (see
	// syncer.scanFolder): diff is clean, entries and rows were not read.
	stamped bool
}

func newFolderScan(entries []maildir.Entry, rows []*index.Message) *folderScan {
	return &folderScan{entries: entries, rows: rows, diff: diffListing(entries, rows)}
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
