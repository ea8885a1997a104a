package index_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

func openStore(t *testing.T) (*index.Store, string) {
	t.Helper()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, root
}

// placeMessage writes a message file into folder f's Maildir (as a
// delivery would) and adds its row.
func placeMessage(t *testing.T, st *index.Store, root string, f *index.Folder, name, body string) *index.Message {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(f.Path), "cur", name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e, _ := maildir.ParseName(name)
	nm := newMsg(f.ID, e.Key, "s", body)
	nm.File, nm.Flags, nm.UID = "cur/"+name, e.Flags, e.UID
	write(t, st, func(tx *index.Tx) error {
		_, err := tx.AddMessage(nm)
		return err
	})
	m := nm.Message
	return &m
}

func readFile(t *testing.T, root string, f *index.Folder, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path), filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func files(t *testing.T, root string, f *index.Folder) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(f.Path), sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

func row(t *testing.T, st *index.Store, f index.FolderID, key string) *index.Message {
	t.Helper()
	var m *index.Message
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		m, err = tx.MessageByKey(f, key)
		if errors.Is(err, index.ErrNotFound) {
			m, err = nil, nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDoorMessages: SetFlags, Move and Remove change the file and the row
// together (content kept byte for byte), publish their changes and leave
// MODSEQs and tombstones for ChangesSince.
func TestDoorMessages(t *testing.T) {
	st, root := openStore(t)
	ctx := context.Background()
	acct, _ := setup(t, st)
	inbox, err := st.CreateFolder(ctx, acct, "INBOX", nil)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := st.CreateFolder(ctx, acct, "Archive", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*index.Folder{inbox, arch} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if _, err := os.Stat(filepath.Join(root, "acct", f.Name, sub)); err != nil || f.Path != "acct/"+f.Name {
				t.Fatalf("folder %+v: %v", f, err)
			}
		}
	}
	m1 := placeMessage(t, st, root, inbox, "k1,U=5:2,S", "Subject: one\n\nbody one\n")
	m2 := placeMessage(t, st, root, inbox, "k2,U=6:2,", "Subject: two\n\nbody two\n")
	m3 := placeMessage(t, st, root, inbox, "k3:2,", "Subject: three\n\nbody three\n")
	start := changesSince(t, st, inbox.ID, 0).ModSeq
	sub := st.Subscribe(0)
	defer sub.Close()

	// Flags: the file's info part and the row, one MODSEQ for both messages.
	err = st.SetFlags(ctx, []index.FlagChange{
		{Message: m1, Flags: maildir.FlagSeen | maildir.FlagFlagged, Keywords: []string{"$Work"}},
		{Message: m2, Flags: maildir.FlagSeen, Synced: &index.SyncedState{Flags: maildir.FlagSeen}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m1.File != "cur/k1,U=5:2,FS" || m2.File != "cur/k2,U=6:2,S" || m2.SyncedFlags != maildir.FlagSeen {
		t.Errorf("rows in place: %+v / %+v", m1, m2)
	}
	if got := files(t, root, inbox); !slices.Equal(got, []string{"cur/k1,U=5:2,FS", "cur/k2,U=6:2,S", "cur/k3:2,"}) {
		t.Errorf("files after SetFlags: %v", got)
	}
	if got := readFile(t, root, inbox, m1.File); got != "Subject: one\n\nbody one\n" {
		t.Errorf("content after a flag change: %q", got)
	}
	r1, r2 := row(t, st, inbox.ID, "k1"), row(t, st, inbox.ID, "k2")
	if r1.File != m1.File || r1.Flags != m1.Flags || !slices.Equal(r1.Keywords, []string{"$Work"}) || r1.ModSeq != start+1 ||
		r2.File != m2.File || r2.SyncedFlags != maildir.FlagSeen || r2.ModSeq != start+1 {
		t.Errorf("rows after SetFlags: %+v / %+v", r1, r2)
	}
	for _, want := range []*index.Message{m1, m2} {
		if c, _ := next(t, sub); c.Kind != index.FlagsChanged || c.Message != want.ID || c.Flags != want.Flags || c.ModSeq != start+1 {
			t.Errorf("feed after SetFlags: %+v", c)
		}
	}

	// Move: the file goes to Archive with the new UID tag; a tombstone stays.
	if err := st.Move(ctx, m1, arch.ID, 42, nil); err != nil {
		t.Fatal(err)
	}
	if got := files(t, root, arch); !slices.Equal(got, []string{"cur/k1,U=42:2,FS"}) || m1.File != got[0] || m1.Folder != arch.ID {
		t.Errorf("after Move: Archive holds %v, row %+v", got, m1)
	}
	if got := readFile(t, root, arch, m1.File); got != "Subject: one\n\nbody one\n" {
		t.Errorf("content after a move: %q", got)
	}
	if r := row(t, st, arch.ID, "k1"); r == nil || r.UID != 42 || r.File != m1.File || row(t, st, inbox.ID, "k1") != nil {
		t.Errorf("row after Move: %+v", r)
	}
	if c := changesSince(t, st, inbox.ID, start+1); !slices.Equal(c.Removed, []uint32{r1.LocalUID}) {
		t.Errorf("INBOX after a move: %+v", c)
	}
	rm, _ := next(t, sub)
	in, _ := next(t, sub)
	if rm.Kind != index.MessageRemoved || rm.Folder != inbox.ID || in.Kind != index.MessageAdded || in.Folder != arch.ID || in.Message != m1.ID {
		t.Errorf("feed after Move: %+v %+v", rm, in)
	}

	// Move of a file a mail program moved already: taken where it is.
	if err := os.Rename(filepath.Join(root, "acct/INBOX/cur/k3:2,"), filepath.Join(root, "acct/Archive/cur/k3:2,S")); err != nil {
		t.Fatal(err)
	}
	if err := st.Move(ctx, m3, arch.ID, 0, nil); err != nil {
		t.Fatal(err)
	}
	if r := row(t, st, arch.ID, "k3"); r == nil || r.File != "cur/k3:2,S" || r.Flags != maildir.FlagSeen {
		t.Errorf("row after a move found done: %+v", r)
	}
	next(t, sub)
	next(t, sub)

	// Remove: a file renamed since is found by its key.
	if err := os.Rename(filepath.Join(root, "acct/INBOX/cur/k2,U=6:2,S"), filepath.Join(root, "acct/INBOX/cur/k2,U=6:2,RS")); err != nil {
		t.Fatal(err)
	}
	before := changesSince(t, st, inbox.ID, 0).ModSeq
	if err := st.Remove(ctx, []*index.Message{m2}, nil); err != nil {
		t.Fatal(err)
	}
	if got := files(t, root, inbox); len(got) != 0 || row(t, st, inbox.ID, "k2") != nil {
		t.Errorf("after Remove: files %v", got)
	}
	if c := changesSince(t, st, inbox.ID, before); !slices.Equal(c.Removed, []uint32{r2.LocalUID}) || c.ModSeq != before+1 {
		t.Errorf("INBOX after Remove: %+v", c)
	}
	if c, _ := next(t, sub); c.Kind != index.MessageRemoved || c.Message != m2.ID || c.Key != "k2" {
		t.Errorf("feed after Remove: %+v", c)
	}
}

// TestDoorFolders: CreateFolder, RenameFolder (with a subfolder, and a
// Maildir another program moved already) and RemoveFolder change the
// directories and the rows together; RemoveFolder never deletes a file the
// index does not know.
func TestDoorFolders(t *testing.T) {
	st, root := openStore(t)
	ctx := context.Background()
	acct, _ := setup(t, st)
	a, err := st.CreateFolder(ctx, acct, "A", nil)
	if err != nil {
		t.Fatal(err)
	}
	ab, err := st.CreateFolder(ctx, acct, "A/B", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := placeMessage(t, st, root, ab, "k1:2,S", "Subject: x\n\nx\n")
	sub := st.Subscribe(0)
	defer sub.Close()
	if err := st.RenameFolder(ctx, a, "C", nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for range 2 {
		c, _ := next(t, sub)
		if c.Kind != index.FolderRenamed {
			t.Errorf("feed: %+v", c)
		}
		names = append(names, c.OldName+">"+c.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"A/B>C/B", "A>C"}) {
		t.Errorf("renames published: %v", names)
	}
	var cb *index.Folder
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		cb, err = tx.FolderByName(acct, "C/B")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cb.ID != ab.ID || cb.Path != "acct/C/B" || readFile(t, root, cb, m.File) != "Subject: x\n\nx\n" {
		t.Errorf("renamed subfolder %+v", cb)
	}
	if _, err := os.Stat(filepath.Join(root, "acct/A")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old Maildir still there: %v", err)
	}
	// Another program renamed C to D already: only the rows change.
	if err := os.Rename(filepath.Join(root, "acct/C"), filepath.Join(root, "acct/D")); err != nil {
		t.Fatal(err)
	}
	c := *a
	c.Name, c.Path = "C", "acct/C"
	if err := st.RenameFolder(ctx, &c, "D", nil); err != nil {
		t.Fatal(err)
	}
	next(t, sub)
	next(t, sub)
	// Removal refuses a Maildir holding a file no row names.
	cb.Name, cb.Path = "D/B", "acct/D/B"
	stray := filepath.Join(root, "acct/D/B/new/stray")
	if err := os.WriteFile(stray, []byte("new mail"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveFolder(ctx, cb, nil); err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Errorf("removing a folder with unknown mail: %v", err)
	}
	if b, err := os.ReadFile(stray); err != nil || string(b) != "new mail" || readFile(t, root, cb, m.File) != "Subject: x\n\nx\n" {
		t.Errorf("files after a refused removal: %v", err)
	}
	if err := os.Remove(stray); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveFolder(ctx, cb, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "acct/D/B")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed Maildir still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "acct/D/cur")); err != nil {
		t.Errorf("parent Maildir gone with its subfolder: %v", err)
	}
	if ch, _ := next(t, sub); ch.Kind != index.FolderRemoved || ch.Folder != cb.ID || ch.Name != "D/B" {
		t.Errorf("feed after RemoveFolder: %+v", ch)
	}
}

// TestDoorNeedsRoot: a store opened without its root, and a dry-run view,
// refuse the door's file operations and change no row.
func TestDoorNeedsRoot(t *testing.T) {
	st := open(t)
	_, fs := setup(t, st, "INBOX")
	id := write1(t, st, newMsg(fs[0].ID, "k1", "s", ""))
	m := &index.Message{ID: id, Folder: fs[0].ID, Key: "k1", File: "cur/k1:2,S"}
	if err := st.Remove(context.Background(), []*index.Message{m}, nil); err == nil || !strings.Contains(err.Error(), "OpenStore") {
		t.Errorf("Remove without a root: %v", err)
	}
	ds, _ := openStore(t)
	_, dfs := setup(t, ds, "INBOX")
	did := write1(t, ds, newMsg(dfs[0].ID, "k1", "s", ""))
	dry := ds.DryRun()
	defer dry.Discard()
	dm := &index.Message{ID: did, Folder: dfs[0].ID, Key: "k1", File: "cur/k1:2,S"}
	if err := dry.Remove(context.Background(), []*index.Message{dm}, nil); err == nil {
		t.Error("Remove on a dry-run view succeeded")
	}
	if row(t, st, fs[0].ID, "k1") == nil {
		t.Error("row gone")
	}
}

func write1(t *testing.T, st *index.Store, m *index.NewMessage) index.MessageID {
	t.Helper()
	var id index.MessageID
	write(t, st, func(tx *index.Tx) error {
		var err error
		id, err = tx.AddMessage(m)
		return err
	})
	return id
}

// TestSetFlagsKeepsForeignChange: a mail client marks a message answered
// (renames its file) after the sync read the row and before the door
// renames the file to the server's flags. The client's change stays, on
// top of the server's, and the row records the file's flags with the
// given merge base, so the next sync carries "answered" upstream. The door
// used to write the server's flags over it: the client's change was lost
// on both sides (seen once in TestRunKill9).
func TestSetFlagsKeepsForeignChange(t *testing.T) {
	st, root := openStore(t)
	ctx := context.Background()
	acct, _ := setup(t, st)
	inbox, err := st.CreateFolder(ctx, acct, "INBOX", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := placeMessage(t, st, root, inbox, "k1,U=5:2,F", "Subject: one\n\nbody\n")
	dir := filepath.Join(root, filepath.FromSlash(inbox.Path), "cur")
	if err := os.Rename(filepath.Join(dir, "k1,U=5:2,F"), filepath.Join(dir, "k1,U=5:2,FR")); err != nil {
		t.Fatal(err)
	}
	server := maildir.FlagFlagged | maildir.FlagSeen
	err = st.SetFlags(ctx, []index.FlagChange{{Message: m, Flags: server, Synced: &index.SyncedState{Flags: server}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := server | maildir.FlagAnswered
	if got := files(t, root, inbox); !slices.Equal(got, []string{"cur/k1,U=5:2,FRS"}) {
		t.Errorf("files: %v, want the client's R kept", got)
	}
	r := row(t, st, inbox.ID, "k1")
	if r.Flags != want || r.File != "cur/k1,U=5:2,FRS" || r.SyncedFlags != server || m.Flags != want || m.File != r.File {
		t.Errorf("row %+v (in place %+v): want flags FRS with base FS", r, m)
	}
}
