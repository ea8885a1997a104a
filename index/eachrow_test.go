package index_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestEachRow: EachRow gives the rows Messages gives, in its order, with
// the fields Fill loads and the Date header.
func TestEachRow(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	var f *index.Folder
	d := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	err := st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		if f, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX"); err != nil {
			return err
		}
		var ms []*index.NewMessage
		for i, uid := range []uint32{3, 0, 1, 0, 2} {
			m := newMsg(f.ID, fmt.Sprintf("k%d", i), "s", "")
			m.UID, m.RFC822Size, m.Keywords = uid, int64(100+i), []string{"b", "a"}[:i%3]
			m.InternalDate, m.Header.Date = d.Add(time.Duration(i)*time.Hour), d.Add(time.Duration(i)*time.Minute)
			ms = append(ms, m)
		}
		_, err = tx.AddMessages(ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		want, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		var got []index.Message
		if err := tx.EachRow(f.ID, func(m *index.Message) error { got = append(got, *m); return nil }); err != nil {
			return err
		}
		if len(got) != len(want) {
			t.Fatalf("%d rows, want %d", len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.ID != w.ID || g.Key != w.Key || g.File != w.File || g.UID != w.UID || g.Flags != w.Flags ||
				!slices.Equal(g.Keywords, w.Keywords) || g.RFC822Size != w.RFC822Size || g.Size != w.Size ||
				!g.InternalDate.Equal(w.InternalDate) || !g.Header.Date.Equal(w.Header.Date) ||
				g.Header.MessageID != w.Header.MessageID || g.Partial {
				t.Errorf("row %d: %+v, want %+v", i, g, *w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
