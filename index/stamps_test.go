package index_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestFilesByKey: every key asked for that has a row gets its file name,
// over more keys than one query takes; keys without a row are left out.
func TestFilesByKey(t *testing.T) {
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
	var got map[string]string
	if err := fs.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		got, err = tx.FilesByKey(fs.f.ID, keys)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d files, want %d", len(got), len(want))
	}
	for k, f := range want {
		if got[k] != f {
			t.Errorf("%s: %q, want %q", k, got[k], f)
		}
	}
}
