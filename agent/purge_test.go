package agent

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// TestPurgeOlderThanUnmarked: a message in the archive view without the
// time it went there (a mail program copied it there, a restore delivered
// it) is not the oldest of all for purge --older-than: it counts as first
// seen now (a dry run lists it so too), the real run marks it so, and
// only the message archived long ago goes.
func TestPurgeOlderThanUnmarked(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\narchive = true\n", store)
	a := openConfig(t, dir, doc)
	defer a.Close()
	ctx := context.Background()
	st := a.Index()
	var acct index.AccountID
	if err := st.Write(ctx, func(tx *index.Tx) (err error) {
		acct, err = tx.EnsureAccount("work")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	view, err := st.CreateFolder(ctx, acct, index.ArchiveFolder("INBOX"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Dir(*view)
	if err != nil {
		t.Fatal(err)
	}
	put := func(subject string) index.MessageID {
		t.Helper()
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: "+subject+"\n\nbody\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		ar := &index.Arrival{Folder: view, File: w}
		ar.Row.Header = index.ParseHeader(w.Header())
		ar.Row.DeferText = true
		var id index.MessageID
		if err := st.Deliver(ctx, &index.Batch{Arrivals: []*index.Arrival{ar}, WithRows: func(tx *index.Tx, ids []index.MessageID) error {
			id = ids[0]
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	old := put("archived long ago")
	if err := st.Write(ctx, func(tx *index.Tx) error {
		return tx.MarkArchived([]index.MessageID{old}, time.Now().Add(-100*24*time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	unmarked := put("copied there, no mark")

	subjects := func(ps []Purged) (out []string) {
		for _, p := range ps {
			out = append(out, p.Subject)
		}
		return out
	}
	o := PurgeOptions{Before: time.Now().Add(-30 * 24 * time.Hour), DryRun: true}
	ps, err := a.Purge(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(ps); len(got) != 1 || got[0] != "archived long ago" {
		t.Errorf("purge --older-than 30d --dry-run lists %q, want only the one archived long ago", got)
	}
	o.DryRun = false
	begin := time.Now().Truncate(time.Second)
	ps, err = a.Purge(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(ps); len(got) != 1 || got[0] != "archived long ago" {
		t.Errorf("purge --older-than 30d purged %q, want only the one archived long ago", got)
	}
	var at time.Time
	var left []*index.Message
	if err := st.Read(ctx, func(tx *index.ReadTx) (err error) {
		if at, err = tx.ArchivedAt(unmarked); err != nil {
			return err
		}
		left, err = tx.Messages(view.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != unmarked {
		t.Errorf("left in the view: %+v, want the unmarked message %d", left, unmarked)
	}
	if at.Before(begin) || at.After(time.Now()) {
		t.Errorf("the unmarked message is marked archived at %v, want the purge's time (%v)", at, begin)
	}
}
