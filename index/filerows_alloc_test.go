package index_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/postfach/postfach/index"
)

// TestFileRowsMemory: the rows FileRows returns live in an array of
// exactly their number. A sync holds every folder's rows for its whole
// run; an array sized from an estimate was 1.8 times as long at Maildir
// names of the usual length (24 MB more for 100,000 messages). The
// bound, per row: the row (a Message), its pointer, and its part of the
// query's string (114 bytes here: the driver's copy; SQLite's is outside
// Go's heap), with some slack.
func TestFileRowsMemory(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	const n = 5000
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
	read := func() []*index.Message {
		var rows []*index.Message
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			rows, err = tx.FileRows(f.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	read() // warm: the statement prepared
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rows := read()
	runtime.ReadMemStats(&after)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for i, m := range rows {
		if want := fmt.Sprintf("1796475673.%05d_1.7fea813f3ae70851.vm", i); m.Key != want || m.UID != uint32(i+1) {
			t.Fatalf("row %d: key %q uid %d, want %q %d", i, m.Key, m.UID, want, i+1)
		}
	}
	per := (after.TotalAlloc - before.TotalAlloc) / n
	rowSize := uint64(unsafe.Sizeof(index.Message{}))
	t.Logf("%d bytes allocated per row", per)
	if limit := rowSize + 8 + 114 + 64; per > limit {
		t.Errorf("FileRows allocates %d bytes per row, want at most %d", per, limit)
	}
}
