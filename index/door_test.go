package index_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// doorStore is a store with a real Maildir root and one folder, created.
func doorStore(t *testing.T) (*index.Store, *index.Folder, *maildir.Dir) {
	t.Helper()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var f *index.Folder
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		rel, err := index.FolderPath("acct", "INBOX")
		if err != nil {
			return err
		}
		f, err = tx.EnsureFolder(a, "INBOX", rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	if d.Path != filepath.Join(root, "acct", "INBOX") {
		t.Fatalf("Dir = %s", d.Path)
	}
	if _, err := maildir.Open(d.Path); err != nil {
		t.Fatal(err)
	}
	return st, f, d
}

func doorMsg(i int) string {
	return fmt.Sprintf("Message-ID: <m%d@x>\nSubject: door %d\n\nbody %d\n", i, i, i)
}

// arrivals writes n messages into d's tmp/; every other one is read (Seen).
func arrivals(t *testing.T, f *index.Folder, d *maildir.Dir, n int) []*index.Arrival {
	t.Helper()
	var as []*index.Arrival
	for i := range n {
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, strings.ReplaceAll(doorMsg(i), "\n", "\r\n")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		a := &index.Arrival{Folder: f, File: w}
		a.Row.UID = uint32(100 + i)
		if i%2 == 1 {
			a.Row.Flags = maildir.FlagSeen
		}
		a.Row.Header = index.ParseHeader(w.Header())
		a.Row.DeferText = true
		as = append(as, a)
	}
	return as
}

// onDisk lists the files below d as "sub/name" (tmp/ included).
func onDisk(t *testing.T, d *maildir.Dir) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"cur", "new", "tmp"} {
		es, err := os.ReadDir(filepath.Join(d.Path, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

func rowsOf(t *testing.T, st *index.Store, f *index.Folder) []*index.Message {
	t.Helper()
	var ms []*index.Message
	if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.Messages(f.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ms
}

// expectedNames is where Deliver puts arrivals: unread to new/, read to cur/.
func expectedNames(as []*index.Arrival) []string {
	var out []string
	for _, a := range as {
		if a.Row.Flags&maildir.FlagSeen != 0 {
			out = append(out, fmt.Sprintf("cur/%s,U=%d:2,S", a.File.Key(), a.Row.UID))
		} else {
			out = append(out, fmt.Sprintf("new/%s,U=%d", a.File.Key(), a.Row.UID))
		}
	}
	slices.Sort(out)
	return out
}

func readBody(t *testing.T, st *index.Store, id index.MessageID) string {
	t.Helper()
	b, err := st.OpenBody(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != b.Size {
		t.Errorf("Body.Size %d, read %d bytes", b.Size, len(got))
	}
	return string(got)
}

// TestDeliver: a batch lands in cur/ and new/ with its rows and the
// caller's extra rows in one transaction; bodies open by row, also after
// another program renamed the file.
func TestDeliver(t *testing.T) {
	st, f, d := doorStore(t)
	ctx := context.Background()
	as := arrivals(t, f, d, 3)
	var stages []string
	var withIDs []index.MessageID
	err := st.Deliver(ctx, &index.Batch{
		Arrivals: as,
		BeforeRename: func(ctx context.Context) error {
			stages = append(stages, "before")
			if got := onDisk(t, d); len(got) != 3 || !strings.HasPrefix(got[0], "tmp/") {
				t.Errorf("before rename, on disk: %q", got)
			}
			return nil
		},
		WithRows: func(tx *index.Tx, ids []index.MessageID) error {
			withIDs = ids
			return nil
		},
		Hook: func(stage string) error { stages = append(stages, stage); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"before", "renamed", "synced"}; !slices.Equal(stages, want) {
		t.Errorf("stages %q, want %q", stages, want)
	}
	if got, want := onDisk(t, d), expectedNames(as); !slices.Equal(got, want) {
		t.Fatalf("on disk %q, want %q", got, want)
	}
	rows := rowsOf(t, st, f)
	if len(rows) != 3 || len(withIDs) != 3 {
		t.Fatalf("%d rows, WithRows got %d ids", len(rows), len(withIDs))
	}
	for i, a := range as {
		m := rows[i]
		if m.ID != withIDs[i] || m.ID != a.Row.ID || m.Key != a.File.Key() || m.File != expectedNamesOne(a) ||
			m.UID != a.Row.UID || m.Flags != a.Row.Flags || m.Size != int64(len(doorMsg(i))) ||
			m.Header.Subject != fmt.Sprintf("door %d", i) {
			t.Errorf("row %d: %+v", i, m)
		}
		if got := readBody(t, st, m.ID); got != doorMsg(i) {
			t.Errorf("body %d: %q", i, got)
		}
	}
	// A mail reader marks message 0 read: its file moves to cur/ under
	// another name; the row still opens it, by key.
	e, err := d.Find(rows[0].Key, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetFlags(e, maildir.FlagSeen); err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, st, rows[0].ID); got != doorMsg(0) {
		t.Errorf("body after rename: %q", got)
	}
	if _, err := st.OpenBody(ctx, 9999); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("OpenBody of no row: %v", err)
	}
	if err := os.Remove(filepath.Join(d.Path, "cur", expectedNamesOne(as[1])[len("cur/"):])); err != nil {
		t.Fatal(err)
	}
	if _, err := st.OpenBody(ctx, rows[1].ID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenBody of a deleted file: %v", err)
	}
}

func expectedNamesOne(a *index.Arrival) string { return expectedNames([]*index.Arrival{a})[0] }

// TestDeliverFailures: what remains when a batch stops at each stage. No
// row is ever committed without its file; files not renamed are removed;
// files renamed stay, and indexing them from disk (the next run's scan)
// gives them their rows.
func TestDeliverFailures(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name string
		// setup prepares the batch; it returns the arrivals whose files
		// must be left in cur/ or new/ afterwards.
		setup func(t *testing.T, d *maildir.Dir, as []*index.Arrival, b *index.Batch) (kept []*index.Arrival)
		extra []string // other files left
	}{
		{"before rename fails", func(t *testing.T, d *maildir.Dir, as []*index.Arrival, b *index.Batch) []*index.Arrival {
			b.BeforeRename = func(context.Context) error { return boom }
			return nil
		}, nil},
		{"second rename fails", func(t *testing.T, d *maildir.Dir, as []*index.Arrival, b *index.Batch) []*index.Arrival {
			// A file already has the second message's name: Commit never
			// replaces one.
			blocker := filepath.Join(d.Path, expectedNamesOne(as[1]))
			if err := os.WriteFile(blocker, []byte("not ours\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return as[:1]
		}, []string{"blocker"}},
		{"hook after renames fails", func(t *testing.T, d *maildir.Dir, as []*index.Arrival, b *index.Batch) []*index.Arrival {
			b.Hook = func(stage string) error {
				if stage == "renamed" {
					return boom
				}
				return nil
			}
			return as
		}, nil},
		{"commit fails", func(t *testing.T, d *maildir.Dir, as []*index.Arrival, b *index.Batch) []*index.Arrival {
			b.WithRows = func(*index.Tx, []index.MessageID) error { return boom }
			return as
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, f, d := doorStore(t)
			ctx := context.Background()
			as := arrivals(t, f, d, 3)
			b := &index.Batch{Arrivals: as}
			kept := c.setup(t, d, as, b)
			want := expectedNames(kept)
			if c.extra != nil {
				want = append(want, expectedNamesOne(as[1]))
				slices.Sort(want)
			}
			err := st.Deliver(ctx, b)
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			if got := onDisk(t, d); !slices.Equal(got, want) {
				t.Errorf("on disk %q, want %q (tmp/ empty)", got, want)
			}
			if rows := rowsOf(t, st, f); len(rows) != 0 {
				t.Errorf("%d rows committed", len(rows))
			}
			// The next run finds the files kept and indexes them.
			es, err := d.Scan()
			if err != nil {
				t.Fatal(err)
			}
			es = slices.DeleteFunc(es, func(e maildir.Entry) bool {
				return !slices.ContainsFunc(kept, func(a *index.Arrival) bool { return a.File.Key() == e.Key })
			})
			ms, err := st.FileMessages(f, es, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Write(ctx, func(tx *index.Tx) error { _, err := tx.AddMessages(ms); return err }); err != nil {
				t.Fatal(err)
			}
			rows := rowsOf(t, st, f)
			if len(rows) != len(kept) {
				t.Fatalf("%d rows after indexing %d kept files", len(rows), len(kept))
			}
			for i, m := range rows {
				a := kept[i]
				if m.Key != a.File.Key() || m.UID != a.Row.UID || m.Flags != a.Row.Flags || m.SHA256 != a.File.Sum() {
					t.Errorf("indexed row %d: %+v", i, m)
				}
				j := slices.Index(as, a)
				if got := readBody(t, st, m.ID); got != doorMsg(j) {
					t.Errorf("body %d: %q", j, got)
				}
			}
		})
	}
}

// TestDeliverWrongFolder: a file written in another folder than its
// row's is refused before anything is renamed, and removed.
func TestDeliverWrongFolder(t *testing.T) {
	st, f, d := doorStore(t)
	other := &maildir.Dir{Path: filepath.Join(filepath.Dir(d.Path), "Other")}
	if _, err := maildir.Open(other.Path); err != nil {
		t.Fatal(err)
	}
	as := arrivals(t, f, other, 1)
	if err := st.Deliver(context.Background(), &index.Batch{Arrivals: as}); err == nil {
		t.Fatal("Deliver succeeded")
	}
	if got := onDisk(t, other); len(got) != 0 {
		t.Errorf("left in the other folder: %q", got)
	}
	if rows := rowsOf(t, st, f); len(rows) != 0 {
		t.Errorf("%d rows", len(rows))
	}
}

// TestIndexFile: a file another program put in the folder gets its row,
// once, with the caller's extra write in the same transaction; Tee sees
// the bytes.
func TestIndexFile(t *testing.T) {
	st, f, d := doorStore(t)
	ctx := context.Background()
	raw := "Message-ID: <x@y>\r\nSubject: found\r\n\r\nline one\nline two\r\n"
	name := "1700000000.M1P1.host,U=7,S=59:2,FS"
	if err := os.WriteFile(filepath.Join(d.Path, "cur", name), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := d.Find("1700000000.M1P1.host", "")
	if err != nil {
		t.Fatal(err)
	}
	var tee bytes.Buffer
	withs := 0
	id, err := st.IndexFile(ctx, index.Found{Folder: f, Entry: e, Tee: &tee,
		With: func(tx *index.Tx, id index.MessageID) error { withs++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if tee.String() != raw {
		t.Errorf("tee got %q", tee.String())
	}
	again, err := st.IndexFile(ctx, index.Found{Folder: f, Entry: e,
		With: func(tx *index.Tx, id index.MessageID) error { withs++; return nil }})
	if err != nil || again != id || withs != 2 {
		t.Fatalf("second IndexFile: id %d (first %d), %d calls of With, %v", again, id, withs, err)
	}
	rows := rowsOf(t, st, f)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	m := rows[0]
	if m.ID != id || m.File != "cur/"+name || m.UID != 0 || m.Flags != maildir.FlagFlagged|maildir.FlagSeen ||
		m.Size != int64(len(raw)) || m.RFC822Size != int64(len(raw))+1 || m.Header.Subject != "found" {
		t.Errorf("row %+v", m)
	}
	if got := readBody(t, st, id); got != raw {
		t.Errorf("body %q", got)
	}
}

// TestFolderPathAndRoot: the path a folder row records is '/'-separated
// and encoded as maildir places the folder; Dir turns it back into the
// directory; an engine's root must be the store's.
func TestFolderPathAndRoot(t *testing.T) {
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, name := range []string{"INBOX", "Lists/Go", ".hidden/cur", "Entwürfe"} {
		rel, err := index.FolderPath("my acct", name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := maildir.FolderDir(root, "my acct", name)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.Dir(index.Folder{Name: name, Path: rel})
		if err != nil || d.Path != want || strings.Contains(rel, `\`) {
			t.Errorf("%q: FolderPath %q, Dir %v (%v), want %s", name, rel, d, err, want)
		}
	}
	if _, err := index.FolderPath("acct", ""); err == nil {
		t.Error("FolderPath of an empty name succeeded")
	}
	if err := st.CheckRoot(root + "/"); err != nil {
		t.Errorf("CheckRoot(root/): %v", err)
	}
	if err := st.CheckRoot(filepath.Join(root, "other")); err == nil {
		t.Error("CheckRoot of another root succeeded")
	}
	plain, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.CheckRoot(root); err == nil {
		t.Error("CheckRoot of a store opened without its root succeeded")
	}
}
