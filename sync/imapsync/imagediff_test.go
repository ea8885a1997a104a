package imapsync

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestDiffImageRandom: whatever happened to a folder's files and rows
// since its row image was recorded (flag renames, files removed, added,
// copied under their key, left in new/ beside cur/; rows given UIDs or
// new names, removed, moved away, added), diffImage either declines or
// finds exactly what comparing the listing with every row finds
// (diffFileRows), in the same order.
func TestDiffImageRandom(t *testing.T) {
	ctx := context.Background()
	st, fs, ds := imageStore(t, "INBOX", "Archive")
	f, other, d, od := fs[0], fs[1], ds[0], ds[1]
	rng := rand.New(rand.NewPCG(7, 8))
	next := 0
	// newFile writes a message file under a fresh key; with row, it is
	// indexed (its ,U= tag, if any, as its UID).
	newFile := func(row bool) {
		next++
		key := fmt.Sprintf("1700000000.M%dP1.test", next)
		name := key + ":2,"
		sub := "cur"
		switch rng.IntN(4) {
		case 0:
			name, sub = key, "new"
		case 1:
			name = fmt.Sprintf("%s,U=%d:2,S", key, next)
		}
		if err := os.WriteFile(filepath.Join(d.Path, sub, name), fmt.Appendf(nil, "Subject: %d\n\nbody %d\n", next, next), 0o600); err != nil {
			t.Fatal(err)
		}
		if !row {
			return
		}
		e, ok := maildir.ParseName(name)
		if !ok {
			t.Fatalf("bad name %s", name)
		}
		e.Sub = sub
		if _, err := st.IndexFile(ctx, index.Found{Folder: f, Entry: e, TrustUID: true}); err != nil {
			t.Fatal(err)
		}
	}
	listing := func() []maildir.Entry {
		l, err := d.List()
		if err != nil {
			t.Fatal(err)
		}
		return append(l.New, l.Cur...)
	}
	rows := func() []index.FileRow {
		var rs []index.FileRow
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			rs, err = tx.FileRowList(f.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	write := func(fn func(tx *index.Tx) error) {
		if err := st.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	// What can happen between two runs, on disk or in the index.
	changes := []func(){
		func() { newFile(true) },
		func() { newFile(false) },
		func() { // another program changes a file's flags
			es := listing()
			if len(es) == 0 {
				return
			}
			e := es[rng.IntN(len(es))]
			if err := os.Rename(d.FilePath(e), filepath.Join(d.Path, "cur", e.Key+":2,"+[]string{"F", "RS", "T", ""}[rng.IntN(4)])); err != nil {
				t.Fatal(err)
			}
		},
		func() { // removed by another program
			if es := listing(); len(es) > 0 {
				os.Remove(d.FilePath(es[rng.IntN(len(es))]))
			}
		},
		func() { // a copy by hand, under the same key
			if es := listing(); len(es) > 0 {
				e := es[rng.IntN(len(es))]
				raw, _ := os.ReadFile(d.FilePath(e))
				os.WriteFile(filepath.Join(d.Path, "cur", e.Key+":2,D"), raw, 0o600)
			}
		},
		func() { // a file of new/ beside its row's file in cur/
			if es := listing(); len(es) > 0 {
				e := es[rng.IntN(len(es))]
				if e.Sub == "cur" {
					os.WriteFile(filepath.Join(d.Path, "new", e.Key), nil, 0o600)
				}
			}
		},
		func() { // a row gets a UID (an upload), or loses it
			if rs := rows(); len(rs) > 0 {
				r := rs[rng.IntN(len(rs))]
				next++
				write(func(tx *index.Tx) error { return tx.SetUID(r.ID, uint32(rng.IntN(3))*uint32(100000+next), 10) })
			}
		},
		func() { // a row's file renamed through the index (a tag, or flags)
			if rs := rows(); len(rs) > 0 {
				r := rs[rng.IntN(len(rs))]
				next++
				to := fmt.Sprintf("cur/%s,U=%d:2,", r.Key, 200000+next)
				if os.Rename(filepath.Join(d.Path, r.File), filepath.Join(d.Path, to)) != nil {
					return
				}
				if rng.IntN(2) == 0 {
					write(func(tx *index.Tx) error { return tx.SetFile(r.ID, to) })
				} else {
					to2 := "cur/" + r.Key + ":2,F"
					os.Rename(filepath.Join(d.Path, to), filepath.Join(d.Path, to2))
					write(func(tx *index.Tx) error { return tx.SetFileFlags(r.ID, f.ID, to2, maildir.FlagFlagged, nil) })
				}
			}
		},
		func() { // a row removed (its file too, or not)
			if rs := rows(); len(rs) > 0 {
				r := rs[rng.IntN(len(rs))]
				if rng.IntN(2) == 0 {
					os.Remove(filepath.Join(d.Path, r.File))
				}
				write(func(tx *index.Tx) error { return tx.DeleteMessage(r.ID) })
			}
		},
		func() { // a message moved to another folder
			if rs := rows(); len(rs) > 0 {
				r := rs[rng.IntN(len(rs))]
				to := "cur/" + filepath.Base(r.File)
				if os.Rename(filepath.Join(d.Path, r.File), filepath.Join(od.Path, to)) != nil {
					return
				}
				write(func(tx *index.Tx) error { return tx.MoveMessage(r.ID, other.ID, 0, to, 0) })
			}
		},
	}
	for range 40 {
		newFile(true)
	}
	// compare returns whether diffImage could tell.
	compare := func(round int) (ok bool) {
		l, err := d.List()
		if err != nil {
			t.Fatal(err)
		}
		var fast, full *scanDiff
		var gone map[index.MessageID]bool
		var fullUnique bool
		var im *index.RowImage
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			_, now, err := tx.FolderStamp(f.ID)
			if err != nil {
				return err
			}
			if im, err = tx.RowImage(f.ID); err != nil || im == nil {
				return fmt.Errorf("no image (%v)", err)
			}
			lc := maildir.Listing{New: slices.Clone(l.New), Cur: slices.Clone(l.Cur)}
			if fast, gone, ok, err = diffImage(tx, f.ID, im, now.Rows, lc); err != nil {
				return err
			}
			entries, hidden := l.Sorted()
			c := newRowDiffer(entries)
			if err := tx.FileRowChunks(f.ID, 7, func(rs []index.FileRow) error { c.rows(rs); return nil }); err != nil {
				return err
			}
			full, fullUnique = c.done(), hidden == 0 && c.mg.dups == 0
			return nil
		}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !ok {
			return false
		}
		if !fullUnique {
			t.Fatalf("round %d: the image told a listing with a key's second file", round)
		}
		if got, want := describeDiff(fast), describeDiff(full); got != want {
			t.Fatalf("round %d: the image's diff\n%s\nthe rows'\n%s", round, got, want)
		}
		// Recorded again, now and then, as a run does.
		if rng.IntN(3) == 0 {
			if err := st.SetRowImage(ctx, f.ID, im.Without(gone)); err != nil {
				t.Fatal(err)
			}
		}
		return true
	}
	record := func() {
		var im *index.RowImage
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			l, err := d.List()
			if err != nil {
				return err
			}
			_, now, err := tx.FolderStamp(f.ID)
			if err != nil {
				return err
			}
			_, im, _, err = diffRows(tx, f.ID, now.Rows, l)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if im != nil {
			if err := st.SetRowImage(ctx, f.ID, im); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Write(ctx, func(tx *index.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// A first image, from the rows (no image recorded yet).
	record()
	told := 0
	const rounds = 300
	for round := range rounds {
		for range 1 + rng.IntN(3) {
			c := rng.IntN(len(changes))
			if (c == 4 || c == 5) && rng.IntN(4) != 0 {
				continue // second files of a key: rarer, they make the image decline till tidied
			}
			changes[c]()
		}
		if compare(round) {
			told++
		} else if rng.IntN(4) == 0 {
			// A run that had to read the rows records their image.
			record()
		}
		if round%10 == 9 {
			// Another program tidies up: every file its row's, or gone.
			tidy(t, d, rows())
			record()
		}
	}
	if told < rounds/5 {
		t.Errorf("the image told %d of %d rounds", told, rounds)
	}
	t.Logf("the image told %d of %d rounds", told, rounds)
}

// tidy leaves in d only the files rows name.
func tidy(t *testing.T, d *maildir.Dir, rows []index.FileRow) {
	keep := map[string]bool{}
	for _, r := range rows {
		keep[r.File] = true
	}
	for _, sub := range []string{"new", "cur"} {
		des, err := os.ReadDir(filepath.Join(d.Path, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			if !keep[sub+"/"+de.Name()] {
				os.Remove(filepath.Join(d.Path, sub, de.Name()))
			}
		}
	}
}

// describeDiff prints a scanDiff in full, its lists in their order but
// upstream (sorted: the plan sorts it by UID).
func describeDiff(d *scanDiff) string {
	s := ""
	for _, r := range d.present {
		s += fmt.Sprintf("present %d %d %s %s\n", r.ID, r.UID, r.Key, r.File)
	}
	for _, r := range d.renamed {
		s += fmt.Sprintf("renamed %s -> %s/%s\n", d.present[r.i].Key, r.e.Sub, r.e.Name)
	}
	for _, r := range d.gone {
		s += fmt.Sprintf("gone %d %d %s %s\n", r.ID, r.UID, r.Key, r.File)
	}
	for _, e := range d.unknown {
		s += fmt.Sprintf("unknown %s/%s %+v\n", e.Sub, e.Name, e)
	}
	up := slices.Clone(d.upstream)
	slices.SortFunc(up, func(a, b idUID) int { return int(a.id - b.id) })
	for _, u := range up {
		s += fmt.Sprintf("upstream %d %d\n", u.id, u.uid)
	}
	return s
}

// TestDiffImageFlagsOfMovedRow: a writer that read a message in one folder
// records its new file name after another moved it to a second folder
// (reconcile's SetFileFlags after a local client's MOVE). The second
// folder's scan must still find what its rows say: the file on disk is
// not the one the row names now.
func TestDiffImageFlagsOfMovedRow(t *testing.T) {
	ctx := context.Background()
	st, fs, ds := imageStore(t, "INBOX", "Archive")
	f, g, fd, gd := fs[0], fs[1], ds[0], ds[1]
	key := "1700000000.M1P1.test"
	name := key + ":2,S"
	if err := os.WriteFile(filepath.Join(fd.Path, "cur", name), []byte("Subject: x\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, _ := maildir.ParseName(name)
	e.Sub = "cur"
	id, err := st.IndexFile(ctx, index.Found{Folder: f, Entry: e})
	if err != nil {
		t.Fatal(err)
	}
	// Moved to g (file and row), where it gets more MODSEQs than f has.
	if err := os.Rename(filepath.Join(fd.Path, "cur", name), filepath.Join(gd.Path, "cur", name)); err != nil {
		t.Fatal(err)
	}
	write := func(fn func(tx *index.Tx) error) {
		t.Helper()
		if err := st.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	write(func(tx *index.Tx) error { return tx.MoveMessage(id, g.ID, 0, "cur/"+name, maildir.FlagSeen) })
	for range 20 {
		write(func(tx *index.Tx) error { return tx.SetFlags(id, g.ID, maildir.FlagSeen, []string{"x"}) })
	}
	scan := func() (fast *scanDiff, image *index.RowImage, ok bool, full *scanDiff) {
		t.Helper()
		l, err := gd.List()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			_, now, err := tx.FolderStamp(g.ID)
			if err != nil {
				return err
			}
			lc := maildir.Listing{New: slices.Clone(l.New), Cur: slices.Clone(l.Cur)}
			if im, err := tx.RowImage(g.ID); err != nil {
				return err
			} else if im != nil {
				if fast, _, ok, err = diffImage(tx, g.ID, im, now.Rows, lc); err != nil {
					return err
				}
			}
			_, image, _, err = diffRows(tx, g.ID, now.Rows, maildir.Listing{New: slices.Clone(l.New), Cur: slices.Clone(l.Cur)})
			if err != nil {
				return err
			}
			entries, _ := l.Sorted()
			c := newRowDiffer(entries)
			if err := tx.FileRowChunks(g.ID, 7, func(rs []index.FileRow) error { c.rows(rs); return nil }); err != nil {
				return err
			}
			full = c.done()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return fast, image, ok, full
	}
	_, image, _, _ := scan()
	if image == nil {
		t.Fatal("no image to record")
	}
	if err := st.SetRowImage(ctx, g.ID, image); err != nil {
		t.Fatal(err)
	}
	// The writer that read the row in f records another name for it.
	write(func(tx *index.Tx) error {
		return tx.SetFileFlags(id, f.ID, "cur/"+key+",U=9:2,FS", maildir.FlagFlagged|maildir.FlagSeen, nil)
	})
	fast, _, ok, full := scan()
	if ok {
		if got, want := describeDiff(fast), describeDiff(full); got != want {
			t.Fatalf("the image's diff\n%s\nthe rows'\n%s", got, want)
		}
	}
}

// TestDiffImageOddNames: keys that are not valid UTF-8, and a row whose
// key is not its file name's (a name ParseName reads another key from),
// hash alike in the image recorded from the rows, in its catch-up and in
// the listing: the image tells, and as the rows do.
func TestDiffImageOddNames(t *testing.T) {
	ctx := context.Background()
	st, fs, ds := imageStore(t, "INBOX")
	f, d := fs[0], ds[0]
	var ids []index.MessageID
	for i, name := range []string{"\xff\xfe1.k:2,S", "17.M\x80P2.k,U=5:2,", "3.k\xc3", "4.k:2,S"} {
		sub := "cur"
		if i == 2 {
			sub = "new"
		}
		if err := os.WriteFile(filepath.Join(d.Path, sub, name), fmt.Appendf(nil, "Subject: %d\n\nx\n", i), 0o600); err != nil {
			t.Fatal(err)
		}
		e, ok := maildir.ParseName(name)
		if !ok {
			t.Fatalf("name %q", name)
		}
		e.Sub = sub
		id, err := st.IndexFile(ctx, index.Found{Folder: f, Entry: e, TrustUID: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// A row whose key is not its file's: its file is a file without a
	// row, the row's file is gone.
	if err := os.WriteFile(filepath.Join(d.Path, "cur", "5.k:2,S"), []byte("Subject: 5\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, func(tx *index.Tx) error {
		_, err := tx.AddMessage(&index.NewMessage{Message: index.Message{Folder: f.ID, Key: "other\xfe.k", File: "cur/5.k:2,S", UID: 8, Size: 1}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	compare := func(when string, wantTold bool) {
		t.Helper()
		l, err := d.List()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			_, now, err := tx.FolderStamp(f.ID)
			if err != nil {
				return err
			}
			im, err := tx.RowImage(f.ID)
			if err != nil {
				return err
			}
			if im == nil {
				if wantTold {
					t.Errorf("%s: no image", when)
				}
				_, im, _, err := diffRows(tx, f.ID, now.Rows, l)
				if err == nil && im == nil {
					t.Errorf("%s: no image to record", when)
				}
				if err == nil {
					err = st.SetRowImage(ctx, f.ID, im)
				}
				return err
			}
			fast, _, ok, err := diffImage(tx, f.ID, im, now.Rows, maildir.Listing{New: slices.Clone(l.New), Cur: slices.Clone(l.Cur)})
			if err != nil {
				return err
			}
			entries, _ := l.Sorted()
			c := newRowDiffer(entries)
			if err := tx.FileRowChunks(f.ID, 7, func(rs []index.FileRow) error { c.rows(rs); return nil }); err != nil {
				return err
			}
			if !ok {
				if wantTold {
					t.Errorf("%s: the image could not tell", when)
				}
				return nil
			}
			if got, want := describeDiff(fast), describeDiff(c.done()); got != want {
				t.Errorf("%s: the image's diff\n%s\nthe rows'\n%s", when, got, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	compare("first", false)
	compare("recorded", true)
	// Caught up: a UID, a renamed file (through the index, and not).
	if err := st.Write(ctx, func(tx *index.Tx) error {
		if err := tx.SetUID(ids[0], 77, 10); err != nil {
			return err
		}
		return tx.SetFile(ids[3], "cur/4.k,U=9:2,S")
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(d.Path, "cur", "4.k:2,S"), filepath.Join(d.Path, "cur", "4.k,U=9:2,S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(d.Path, "cur", "\xff\xfe1.k:2,S"), filepath.Join(d.Path, "cur", "\xff\xfe1.k:2,FS")); err != nil {
		t.Fatal(err)
	}
	compare("caught up", true)
}

// imageStore opens an index in a temporary directory with the named
// folders of account "acct", their Maildirs created.
func imageStore(t *testing.T, names ...string) (*index.Store, []*index.Folder, []*maildir.Dir) {
	t.Helper()
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var fs []*index.Folder
	if err := st.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		for _, name := range names {
			rel, err := index.FolderPath("acct", name)
			if err != nil {
				return err
			}
			f, err := tx.EnsureFolder(a, name, rel)
			if err != nil {
				return err
			}
			fs = append(fs, f)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var ds []*maildir.Dir
	for _, f := range fs {
		d, err := st.Dir(*f)
		if err == nil {
			d, err = maildir.Open(d.Path)
		}
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return st, fs, ds
}

// TestSortByUID: the radix sort orders by UID as a comparison sort does,
// small and large, UIDs of every width.
func TestSortByUID(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 255, 256, 5000, 70000} {
		rows := make([]idUID, n)
		for i := range rows {
			u := rng.Uint32()
			if i%3 == 0 {
				u %= 1 << 16
			}
			rows[i] = idUID{index.MessageID(i), u}
		}
		want := slices.Clone(rows)
		slices.SortStableFunc(want, func(a, b idUID) int { return cmp.Compare(a.uid, b.uid) })
		sortByUID(rows)
		if !slices.Equal(rows, want) {
			t.Fatalf("%d rows: not in UID order (or not stable)", n)
		}
	}
}
