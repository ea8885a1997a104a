package imapsync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestReconcileQuiet: an incremental run's reconcile loads whole only the
// rows it touches (a local flag change, a file renamed by another
// program, a new file); the other rows of the folder are held as their
// UID and id alone, so what a folder's plan holds follows the change, not
// the folder: here at most 40 bytes per row (the Partial rows it held
// before were about 420 each).
func TestReconcileQuiet(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Not fewer in -short: the run's fixed heap (about 60 KB: buffers,
	// the store's caches) would be most of a small folder's figure.
	n := 5000
	var f *index.Folder
	key := func(i int) string { return fmt.Sprintf("1796475673.%05d_1.7fea813f3ae70851.vm", i) }
	name := func(i int, info string) string { return fmt.Sprintf("%s,U=%d:2,%s", key(i), i+1, info) }
	if err := st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		if f, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX"); err != nil {
			return err
		}
		var ms []*index.NewMessage
		for i := range n {
			m := &index.NewMessage{}
			m.Folder, m.Key, m.File, m.UID = f.ID, key(i), "cur/"+name(i, "S"), uint32(i+1)
			m.Flags, m.SyncedFlags = maildir.FlagSeen, maildir.FlagSeen
			ms = append(ms, m)
		}
		_, err = tx.AddMessages(ms)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	dir, err := st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir.Path, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	body := []byte("From: a@example.org\nMessage-ID: <x@example.org>\n\nx\n")
	for i := range n {
		info := "S"
		if i == 7 {
			info = "FS" // renamed by another program: a flag change
		}
		if err := os.WriteFile(filepath.Join(dir.Path, "cur", name(i, info)), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir.Path, "new", "1796475999.new_1.vm"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	// A flag change through the door's rows: pending.
	if err := st.Write(ctx, func(tx *index.Tx) error {
		id, err := tx.MessageIDByKey(f.ID, key(9))
		if err != nil {
			return err
		}
		return tx.SetFlags(id, f.ID, maildir.FlagSeen|maildir.FlagAnswered, nil)
	}); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec, err := reconcile(ctx, st, f, dir, true, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	var loaded []string
	for _, m := range rec.rows {
		loaded = append(loaded, m.Key)
		if m.Partial {
			t.Errorf("row %s: Partial", m.Key)
		}
	}
	slices.Sort(loaded)
	if want := []string{key(7), key(9), "1796475999.new_1.vm"}; !slices.Equal(loaded, want) {
		t.Errorf("loaded rows %q, want %q", loaded, want)
	}
	if len(rec.added) != 1 || rec.added[0].Key != "1796475999.new_1.vm" || len(rec.gone) != 0 || rec.flagChanged != 1 {
		t.Errorf("added %v, gone %v, %d flag changes", rec.added, rec.gone, rec.flagChanged)
	}
	if rec.quiet.len() != n-2 {
		t.Errorf("%d quiet rows, want %d", rec.quiet.len(), n-2)
	}
	for i := range n {
		if got, want := rec.quiet.has(uint32(i+1)), i != 7 && i != 9; got != want {
			t.Errorf("UID %d: quiet %v, want %v", i+1, got, want)
		}
	}
	// Taken rows are whole, and no longer quiet.
	ms, err := rec.quiet.take(ctx, st, f.ID, []uint32{1, 8, 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Key != key(0) || ms[1].Key != key(1) || ms[0].Partial || ms[0].File != "cur/"+name(0, "S") ||
		ms[0].SyncedFlags != maildir.FlagSeen || rec.quiet.has(1) || rec.quiet.len() != n-4 {
		t.Errorf("taken %+v", ms)
	}
	per := retained / int64(n)
	t.Logf("%d bytes retained per row", per)
	if per > 40 {
		t.Errorf("reconcile's result holds %d bytes per row of the folder, want at most 40", per)
	}
	runtime.KeepAlive(rec)
}

// TestQuietWalk: the walk queueNew uses over a folder's UIDs, in ascending
// order, answers as a search per UID does, taken rows and a nil set
// included.
func TestQuietWalk(t *testing.T) {
	q := &quietRows{}
	for uid := uint32(3); uid < 400; uid += 3 {
		q.add(uid, index.MessageID(uid))
	}
	q.sort()
	for i := range q.ids {
		if i%7 == 0 {
			q.ids[i], q.n = 0, q.n-1 // taken (loaded whole)
		}
	}
	for _, set := range [][]uint32{nil, {1, 2, 3}, {3, 6, 7, 399, 400, 500}} {
		var asked []uint32
		if set == nil {
			for uid := uint32(0); uid < 420; uid++ {
				asked = append(asked, uid)
			}
		} else {
			asked = set
		}
		w := q.ascending()
		for _, uid := range asked {
			if got, want := w.has(uid), q.has(uid); got != want {
				t.Fatalf("walk over %v: has(%d) = %v, want %v", set, uid, got, want)
			}
		}
	}
	var none *quietRows
	if none.ascending().has(3) {
		t.Error("a nil set has a row")
	}
}
