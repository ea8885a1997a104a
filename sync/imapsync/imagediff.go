package imapsync

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// imageMaxLookups bounds the files and the image entries diffImage looks
// up one by one: beyond, reading the rows costs about as much.
const imageMaxLookups = 5000

// diffImage compares a folder's listing with the image of its rows
// (index.RowImage, brought up to date in tx) instead of with the rows
// themselves, into the scanDiff diffFileRows would make of the same
// listing and rows. A file whose key and name the image has is that row's,
// unchanged; only the other files (by key) and the image's entries no
// file matched (by id) are looked up. rows is the folder's row count,
// read in tx.
//
// ok is false when the image cannot tell, and the caller compares the
// listing with the rows after all: a key with two files (a copy made by
// hand, a file of new/ beside its successor in cur/: what diffFileRows
// settles by listing order and the end stamps by maildir.Listing.Sorted),
// too much to look up, or counts that do not add up: every row the image
// has matched must still be a row of the folder, which the count of those
// found by id tells. gone is the image's entries of rows removed or moved away since
// it was recorded (see index.RowImage.Without).
func diffImage(tx *index.ReadTx, folder index.FolderID, im *index.RowImage, rows int, l maildir.Listing) (d *scanDiff, gone map[index.MessageID]bool, ok bool, err error) {
	matched := make([]bool, im.Len())
	nMatched := 0
	d = &scanDiff{upstream: make([]idUID, 0, min(im.Len(), len(l.New)+len(l.Cur)))}
	var unmatched []maildir.Entry
	for _, list := range [...][]maildir.Entry{l.New, l.Cur} {
		for _, e := range list {
			i, found := im.Find(index.FileHash(e.Key, e.Sub, e.Name))
			if !found {
				if unmatched = append(unmatched, e); len(unmatched) > imageMaxLookups {
					return nil, nil, false, nil
				}
				continue
			}
			if matched[i] {
				return nil, nil, false, nil // two files, one hash
			}
			matched[i] = true
			nMatched++
			if id, uid := im.Row(i); uid != 0 {
				d.upstream = append(d.upstream, idUID{id, uid})
			} else {
				d.present = append(d.present, index.FileRow{ID: id, Key: e.Key, File: e.Sub + "/" + e.Name})
			}
		}
	}
	if im.Len()-nMatched > imageMaxLookups {
		return nil, nil, false, nil
	}
	var ids []index.MessageID
	for i, m := range matched {
		if !m {
			id, _ := im.Row(i)
			ids = append(ids, id)
		}
	}
	fileOf := make(map[string]maildir.Entry, len(unmatched))
	keys := make([]string, 0, len(unmatched))
	for _, e := range unmatched {
		if _, dup := fileOf[e.Key]; dup {
			return nil, nil, false, nil
		}
		fileOf[e.Key] = e
		keys = append(keys, e.Key)
	}
	byKey, err := tx.FileRowsByKey(folder, keys)
	if err != nil {
		return nil, nil, false, err
	}
	byID, err := tx.FileRowsByID(folder, ids)
	if err != nil {
		return nil, nil, false, err
	}
	if nMatched+len(byID) != rows {
		return nil, nil, false, nil
	}
	for _, e := range unmatched {
		r, has := byKey[e.Key]
		if !has {
			d.unknown = append(d.unknown, e)
			continue
		}
		if _, unmatchedRow := byID[r.ID]; !unmatchedRow || namedAs(r.File, e) {
			// Its row's file is another file of the key (or the image
			// was not as the rows were).
			return nil, nil, false, nil
		}
	}
	gone = map[index.MessageID]bool{}
	for _, id := range ids {
		if _, ok := byID[id]; !ok {
			gone[id] = true
		}
	}
	// In key order, as diffFileRows leaves them.
	renamedTo := map[string]maildir.Entry{}
	for _, r := range byID {
		if e, ok := fileOf[r.Key]; ok {
			d.present = append(d.present, r)
			renamedTo[r.Key] = e
		} else {
			d.gone = append(d.gone, r)
		}
	}
	byKeyOrder := func(a, b index.FileRow) int { return strings.Compare(a.Key, b.Key) }
	slices.SortFunc(d.present, byKeyOrder)
	slices.SortFunc(d.gone, byKeyOrder)
	slices.SortFunc(d.unknown, func(a, b maildir.Entry) int { return strings.Compare(a.Key, b.Key) })
	for i, r := range d.present {
		if e, ok := renamedTo[r.Key]; ok {
			d.renamed = append(d.renamed, renamedFile{i: i, e: e})
		}
	}
	sortByUID(d.upstream)
	return d, gone, true, nil
}

// sortByUID sorts rows by UID, a radix sort (a byte a pass; stable): the
// rows of a folder of 25,000 messages come in hash order, and a
// comparison sort of them took 6 ms of a run at 100,000 messages.
func sortByUID(rows []idUID) {
	if len(rows) < 256 {
		slices.SortStableFunc(rows, func(a, b idUID) int { return cmp.Compare(a.uid, b.uid) })
		return
	}
	src, dst := rows, make([]idUID, len(rows))
	for shift := 0; shift < 32; shift += 8 {
		var start [257]int
		for _, r := range src {
			start[(r.uid>>shift)&0xff+1]++
		}
		for i := 1; i < len(start); i++ {
			start[i] += start[i-1]
		}
		for _, r := range src {
			k := (r.uid >> shift) & 0xff
			dst[start[k]] = r
			start[k]++
		}
		src, dst = dst, src
	}
	// Four passes: the sorted rows are back in rows.
}

// recordRowImages records an image of the rows of each folder of jobs that
// ran and has none (its first run, which reads every row anyway), so that
// the next run that finds the folder changed compares it with the image.
// A skipped folder is left as it is: a run that reads its listing later
// records one then (diffRows). Only logged if it fails: the next run
// reads the rows.
func (s *syncer) recordRowImages(ctx context.Context, jobs []*folderJob) {
	o := &s.opts
	if o.DryRun || ctx.Err() != nil {
		return
	}
	for _, j := range jobs {
		skipped := false
		j.update(func(r *FolderResult) { skipped = r.Skipped })
		if skipped {
			continue
		}
		var im *index.RowImage
		err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
			if has, err := tx.HasRowImage(j.f.ID); err != nil || has {
				return err
			}
			var b index.RowImageBuilder
			if err := tx.FileRowChunks(j.f.ID, rowChunk, func(rows []index.FileRow) error { b.Add(rows); return nil }); err != nil {
				return err
			}
			modseq, err := tx.LocalModSeq(j.f.ID)
			im = b.Image(modseq)
			return err
		})
		if err == nil && im != nil {
			err = o.Index.SetRowImage(ctx, j.f.ID, im)
		}
		if err != nil {
			s.log.Debug("recording a folder's row image", "folder", j.f.Name, "err", err)
		}
	}
}
