package index_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestRowImageCatchUp: an image recorded before any of the index's
// changes to a row's key, file name or UID (those local clients see and
// those they do not: a UID recorded, an upload, a tag renamed in, UIDs
// cleared), or rows added and moved in, comes back up to date: every row
// is found by its key and file name, with its id and UID; the entries of
// rows removed or moved away stay, as many as Len exceeds the row count.
func TestRowImageCatchUp(t *testing.T) {
	ctx := context.Background()
	fs := newFileStore(t)
	for i := 1; i <= 12; i++ {
		fs.add(fmt.Sprint(i), fmt.Appendf(nil, "Subject: %d\n\nx\n", i), maildir.FlagSeen, nil, time.Time{})
	}
	other := fs.folder("Archive")
	write, rows := fs.write, fs.rows
	image := func() *index.RowImage {
		var im *index.RowImage
		if err := fs.st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			im, err = tx.RowImage(fs.f.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return im
	}
	first := fs.image(fs.f.ID)
	if image() != nil {
		t.Fatal("an image before any was recorded")
	}
	if err := fs.st.SetRowImage(ctx, fs.f.ID, first); err != nil {
		t.Fatal(err)
	}
	if im := image(); im == nil || im.Len() != 12 || im.CaughtUp != 0 {
		t.Fatalf("image as recorded: %+v", im)
	}
	rs := rows(fs.f.ID)
	file := func(r index.FileRow, info string) string {
		return "cur/" + r.Key + info
	}
	write(func(tx *index.Tx) error {
		steps := []error{
			tx.SetUID(rs[0].ID, 500, 10),
			tx.SetUploaded(rs[1].ID, 501, 10, file(rs[1], ",U=501:2,S"), maildir.FlagSeen, nil),
			tx.SetFile(rs[2].ID, file(rs[2], ",U=7:2,S")),
			tx.SetFileFlags(rs[3].ID, fs.f.ID, file(rs[3], ":2,FS"), maildir.FlagFlagged|maildir.FlagSeen, nil),
			tx.DeleteMessage(rs[4].ID),
			tx.MoveMessage(rs[5].ID, other.ID, 0, rs[5].File, maildir.FlagSeen),
		}
		for _, err := range steps {
			if err != nil {
				return err
			}
		}
		return nil
	})
	// In another transaction: the same rows changed again, UIDs cleared.
	write(func(tx *index.Tx) error {
		if err := tx.SetUID(rs[0].ID, 502, 10); err != nil {
			return err
		}
		return tx.ClearUIDs(fs.f.ID)
	})
	fs.add("new", []byte("Subject: new\n\nx\n"), 0, nil, time.Time{})
	check := func(when string) {
		t.Helper()
		im := image()
		now := rows(fs.f.ID)
		if im == nil {
			t.Fatalf("%s: no image", when)
		}
		if im.Len() != len(now)+2 {
			t.Errorf("%s: %d entries for %d rows, 2 of them gone", when, im.Len(), len(now))
		}
		for _, r := range now {
			sub, name, _ := strings.Cut(r.File, "/")
			i, ok := im.Find(index.FileHash(r.Key, sub, name))
			if !ok {
				t.Errorf("%s: row %+v not in the image", when, r)
				continue
			}
			if id, uid := im.Row(i); id != r.ID || uid != r.UID {
				t.Errorf("%s: row %+v in the image as id %d, UID %d", when, r, id, uid)
			}
		}
	}
	check("caught up")
	if im := image(); im.CaughtUp == 0 {
		t.Error("nothing caught up")
	}
	// Recorded as caught up (without the gone rows): the same, and nothing
	// to catch up.
	im := image()
	gone := map[index.MessageID]bool{rs[4].ID: true, rs[5].ID: true}
	if err := fs.st.SetRowImage(ctx, fs.f.ID, im.Without(gone)); err != nil {
		t.Fatal(err)
	}
	if im := image(); im.CaughtUp != 0 || im.Len() != len(rows(fs.f.ID)) {
		t.Errorf("recorded again: %d entries, %d caught up", im.Len(), im.CaughtUp)
	}
}

// TestRowImageFlagsOfMovedRow: a flag change given the folder a message
// was in (read before another writer moved it: reconcile and Store.SetFlags
// pass the folder their rows were read from) must still give the row a
// MODSEQ of the folder it is in, greater than that folder's image: else
// the image of the folder it moved to keeps its old file name, and a sync
// takes a renamed file for an unchanged one. The change is reported for
// that folder too.
func TestRowImageFlagsOfMovedRow(t *testing.T) {
	ctx := context.Background()
	fs := newFileStore(t)
	for i := 1; i <= 3; i++ {
		fs.add(fmt.Sprint(i), fmt.Appendf(nil, "Subject: %d\n\nx\n", i), maildir.FlagSeen, nil, time.Time{})
	}
	write := fs.write
	other := fs.folder("Archive")
	r := fs.rows(fs.f.ID)[0]
	write(func(tx *index.Tx) error { return tx.MoveMessage(r.ID, other.ID, 0, r.File, maildir.FlagSeen) })
	// The other folder's MODSEQ well past the first's.
	for range 20 {
		write(func(tx *index.Tx) error { return tx.SetFlags(r.ID, other.ID, maildir.FlagSeen, []string{"x"}) })
	}
	record := func() {
		t.Helper()
		if err := fs.st.SetRowImage(ctx, other.ID, fs.image(other.ID)); err != nil {
			t.Fatal(err)
		}
	}
	record()
	sub := fs.st.Subscribe(16)
	defer sub.Close()
	renamed := "cur/" + r.Key + ":2,FS"
	// A writer that read the row in the first folder.
	write(func(tx *index.Tx) error {
		return tx.SetFileFlags(r.ID, fs.f.ID, renamed, maildir.FlagFlagged|maildir.FlagSeen, nil)
	})
	var im *index.RowImage
	if err := fs.st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		im, err = tx.RowImage(other.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if im == nil {
		t.Fatal("no image")
	}
	if _, ok := im.Find(index.FileHash(r.Key, "cur", r.Key+":2,FS")); !ok {
		t.Errorf("the row's new file name is not in its folder's image (%d caught up)", im.CaughtUp)
	}
	select {
	case c := <-sub.C():
		if c.Kind != index.FlagsChanged || c.Folder != other.ID {
			t.Errorf("change %+v, want flags-changed in folder %d", c, other.ID)
		}
	case <-time.After(5 * time.Second):
		t.Error("no change reported")
	}
}

// TestRowImageOfRecreatedFolder: an image read before its folder was
// removed, recorded after a folder was created again in its place (the
// same id: the last folder's, reused), is not taken for the new folder's:
// its entries are rows of the old one, whose ids new rows may have.
func TestRowImageOfRecreatedFolder(t *testing.T) {
	ctx := context.Background()
	fs := newFileStore(t)
	for i := 1; i <= 5; i++ {
		fs.add(fmt.Sprint(i), fmt.Appendf(nil, "Subject: %d\n\nx\n", i), maildir.FlagSeen, nil, time.Time{})
	}
	stale := fs.image(fs.f.ID)
	modseq := stale.ModSeq
	// Meanwhile another writer removes the folder and creates it again.
	var again index.FolderID
	if err := fs.st.Write(ctx, func(tx *index.Tx) error {
		if err := tx.DeleteFolder(fs.f.ID); err != nil {
			return err
		}
		g, err := tx.EnsureFolder(fs.f.Account, fs.f.Name, fs.f.Path)
		if err == nil {
			again = g.ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if again != fs.f.ID {
		// (SQLite gives a new row the largest id plus one: the removed
		// folder's, the last one made.)
		t.Fatalf("the new folder got id %d, not the removed one's %d: the case this test is about did not arise", again, fs.f.ID)
	}
	if err := fs.st.SetRowImage(ctx, fs.f.ID, stale); err != nil {
		t.Fatal(err)
	}
	// The new folder's MODSEQ past the image's.
	for i := 0; i < int(modseq)+2; i++ {
		fs.add(fmt.Sprint("n", i), fmt.Appendf(nil, "Subject: n%d\n\nx\n", i), 0, nil, time.Time{})
	}
	if err := fs.st.Read(ctx, func(tx *index.ReadTx) error {
		im, err := tx.RowImage(fs.f.ID)
		if im != nil {
			t.Errorf("the removed folder's image (as of MODSEQ %d) is the new one's: %d entries, %d caught up", modseq, im.Len(), im.CaughtUp)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
