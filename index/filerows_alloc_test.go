package index_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/postfach/postfach/index"
)

// fileRowsFolder makes a folder of n messages keyed and named as maildir
// names them.
func fileRowsFolder(t *testing.T, st *index.Store, n int) *index.Folder {
	t.Helper()
	var f *index.Folder
	err := st.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		if f, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX"); err != nil {
			return err
		}
		var ms []*index.NewMessage
		for i := range n {
			// A key as maildir makes them: 1796475673.16936_1.7fea813f3ae70851.vm
			m := newMsg(f.ID, fmt.Sprintf("1796475673.%05d_1.7fea813f3ae70851.vm", i), "s", "")
			m.File = "cur/" + m.Key + fmt.Sprintf(",U=%d:2,S", i+1)
			m.UID = uint32(i + 1)
			ms = append(ms, m)
		}
		_, err = tx.AddMessages(ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// allocPerRow returns the bytes read allocates per row of n (after a
// first call, which prepares the statement).
func allocPerRow(t *testing.T, n int, read func() int) uint64 {
	t.Helper()
	read()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := read()
	runtime.ReadMemStats(&after)
	if got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}

// TestFileRowsMemory: the rows FileRows returns live in an array of
// exactly their number. The bound, per row: the row (a Message), its
// pointer, the FileRow it is made from and its part of the query's string
// (the driver's copy; SQLite's is outside Go's heap), with some slack.
func TestFileRowsMemory(t *testing.T) {
	st := open(t)
	const n = 5000
	f := fileRowsFolder(t, st, n)
	var rows []*index.Message
	per := allocPerRow(t, n, func() int {
		if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
			var err error
			rows, err = tx.FileRows(f.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return len(rows)
	})
	for i, m := range rows {
		if want := fmt.Sprintf("1796475673.%05d_1.7fea813f3ae70851.vm", i); m.Key != want || m.UID != uint32(i+1) {
			t.Fatalf("row %d: key %q uid %d, want %q %d", i, m.Key, m.UID, want, i+1)
		}
	}
	rowSize := uint64(unsafe.Sizeof(index.Message{}) + unsafe.Sizeof(index.FileRow{}))
	t.Logf("%d bytes allocated per row", per)
	if limit := rowSize + 8 + 80 + 32; per > limit {
		t.Errorf("FileRows allocates %d bytes per row, want at most %d", per, limit)
	}
}

// TestFileRowListMemory: a sync holds every folder's FileRowList for a
// while. Per row: the FileRow (48 bytes) and its part of the query's
// string, in which the key, the start of the file's base name, is not
// repeated (about 80 bytes here, the file name 56 of them).
func TestFileRowListMemory(t *testing.T) {
	st := open(t)
	const n = 5000
	f := fileRowsFolder(t, st, n)
	var rows []index.FileRow
	per := allocPerRow(t, n, func() int {
		if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
			var err error
			rows, err = tx.FileRowList(f.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return len(rows)
	})
	for i, r := range rows {
		key := fmt.Sprintf("1796475673.%05d_1.7fea813f3ae70851.vm", i)
		if want := (index.FileRow{ID: r.ID, UID: uint32(i + 1), Key: key, File: "cur/" + key + fmt.Sprintf(",U=%d:2,S", i+1)}); r != want || r.ID == 0 {
			t.Fatalf("row %d: %+v, want %+v", i, r, want)
		}
	}
	t.Logf("%d bytes allocated per row", per)
	if limit := uint64(unsafe.Sizeof(index.FileRow{})) + 80 + 16; per > limit {
		t.Errorf("FileRowList allocates %d bytes per row, want at most %d", per, limit)
	}
}

// TestFileRowListKeys: a key that does not begin the file's base name (a
// row whose file another program renamed; keys of any bytes) comes back
// as it is.
func TestFileRowListKeys(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	type kf struct{ key, file string }
	cases := []kf{
		{"k1", "cur/k1:2,S"},
		{"k2", "new/other name"},
		{"long key beyond the name", "cur/long"},
		{"", "cur/x"},
		{"12 3", "cur/12 3 4 5"},
		{"7 8", "new/x7 8"},
		{"ü 1", "cur/ü 1,U=3:2,"},
		{"9", "c"},
	}
	var f *index.Folder
	err := st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		if f, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX"); err != nil {
			return err
		}
		var ms []*index.NewMessage
		for i, c := range cases {
			m := newMsg(f.ID, c.key, "s", "")
			m.File, m.UID = c.file, uint32(i+1)
			ms = append(ms, m)
		}
		_, err = tx.AddMessages(ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var rows []index.FileRow
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.FileRowList(f.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var got []kf
	for _, r := range rows {
		got = append(got, kf{r.Key, r.File})
		if r.UID == 0 || cases[r.UID-1] != (kf{r.Key, r.File}) {
			t.Errorf("row %+v", r)
		}
	}
	// In chunks, in key order (byte order), each key once.
	for _, n := range []int{1, 3, len(cases), 100} {
		var chunked []index.FileRow
		calls := 0
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			return tx.FileRowChunks(f.ID, n, func(rs []index.FileRow) error {
				if len(rs) > n {
					t.Errorf("chunk of %d rows, want at most %d", len(rs), n)
				}
				calls++
				chunked = append(chunked, rs...)
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(rows)
		slices.SortFunc(want, func(a, b index.FileRow) int { return strings.Compare(a.Key, b.Key) })
		if !slices.Equal(chunked, want) || calls != (len(cases)+n-1)/n {
			t.Errorf("chunks of %d: %d calls, rows %+v, want %+v", n, calls, chunked, want)
		}
	}
	sortKF := func(a, b kf) int { return strings.Compare(a.key, b.key) }
	slices.SortFunc(got, sortKF)
	want := slices.Clone(cases)
	slices.SortFunc(want, sortKF)
	if !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
}
