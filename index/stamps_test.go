package index_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestFileRowsByKey: every key asked for that has a row gets its row,
// over more keys than one query takes; keys without a row are left out.
// The same rows by id (FileRowsByID).
func TestFileRowsByKey(t *testing.T) {
	fs := newFileStore(t)
	var keys []string
	want := map[string]string{}
	for i := 1; i <= 300; i++ {
		fs.add(fmt.Sprint(i), []byte(fmt.Sprintf("Subject: %d\n\nx\n", i)), maildir.FlagSeen, nil, time.Time{})
		k := fmt.Sprintf("1700000000.M%dP1.test", i)
		keys = append(keys, k)
		want[k] = "cur/" + k + ":" + maildir.FlagSeen.Info()
	}
	keys = append(keys, "1700000000.M999P1.none")
	var got map[string]index.FileRow
	var byID map[index.MessageID]index.FileRow
	if err := fs.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		if got, err = tx.FileRowsByKey(fs.f.ID, keys); err != nil {
			return err
		}
		var ids []index.MessageID
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		ids = append(ids, 99999)
		byID, err = tx.FileRowsByID(fs.f.ID, ids)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(byID) != len(want) {
		t.Errorf("%d rows by key, %d by id, want %d", len(got), len(byID), len(want))
	}
	for k, f := range want {
		r := got[k]
		if r.File != f || r.Key != k || r.ID == 0 {
			t.Errorf("%s: %+v, want file %q", k, r, f)
		}
		if byID[r.ID] != r {
			t.Errorf("%s by id: %+v, want %+v", k, byID[r.ID], r)
		}
	}
}
