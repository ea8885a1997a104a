package index_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestArchiveHeldKey: the archive view holds a message's key already (the
// sync fetched the server's copy of a message deleted here into the view,
// and a crash kept its row, with its file back in place). Archive of that
// row removes the row and its file in the old folder: otherwise the next
// sync would index that file again and upload it.
func TestArchiveHeldKey(t *testing.T) {
	st, f, d := doorStore(t)
	ctx := context.Background()
	if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetArchive(f.Account, true) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Deliver(ctx, &index.Batch{Arrivals: arrivals(t, f, d, 1)}); err != nil {
		t.Fatal(err)
	}
	m := rowsOf(t, st, f)[0]
	view, err := st.CreateFolder(ctx, f.Account, index.ArchiveFolder(f.Name), nil)
	if err != nil {
		t.Fatal(err)
	}
	vd, err := st.Dir(*view)
	if err != nil {
		t.Fatal(err)
	}
	w, err := vd.NewDeliveryKey(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.ReplaceAll(doorMsg(0), "\n", "\r\n")
	if _, err := io.WriteString(w, raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a := &index.Arrival{Folder: view, File: w}
	a.Row.Header = index.ParseHeader(w.Header())
	a.Row.DeferText = true
	if err := st.Deliver(ctx, &index.Batch{Arrivals: []*index.Arrival{a}}); err != nil {
		t.Fatal(err)
	}

	if err := st.Archive(ctx, []*index.Message{m}, false); err != nil {
		t.Fatal(err)
	}
	if rows := rowsOf(t, st, f); len(rows) != 0 {
		t.Errorf("rows left in %s: %+v", f.Name, rows)
	}
	if files := onDisk(t, d); len(files) != 0 {
		t.Errorf("files left in %s: %q (the next sync would upload them again)", f.Name, files)
	}
	rows := rowsOf(t, st, view)
	if len(rows) != 1 || rows[0].Key != m.Key {
		t.Fatalf("archive view rows %+v, want the one of key %s", rows, m.Key)
	}
	if got := readBody(t, st, rows[0].ID); got != doorMsg(0) { // stored with LF line ends

		t.Errorf("archived message %q, want %q", got, raw)
	}
	if files := onDisk(t, vd); len(files) != 1 || !strings.Contains(files[0], m.Key) {
		t.Errorf("files in the view: %q, want the one of key %s", files, m.Key)
	}
}
