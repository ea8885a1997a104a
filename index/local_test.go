package index_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// localStore is a store with accounts a and b; a has INBOX and Archive
// (upstream UIDVALIDITY 700 and 800), b has INBOX (900). INBOX of a holds
// two messages from upstream (UIDs 11 and 12) and one stored locally.
func localStore(t *testing.T) (*index.Store, map[string]*index.Folder, []*index.Message) {
	t.Helper()
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	fs := map[string]*index.Folder{}
	for i, name := range []string{"a/INBOX", "a/Archive", "b/INBOX"} {
		acct, folder, _ := strings.Cut(name, "/")
		var id index.AccountID
		if err := st.Write(ctx, func(tx *index.Tx) error {
			id, err = tx.EnsureAccount(acct)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		f, err := st.CreateFolder(ctx, id, folder, func(tx *index.Tx) error {
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		f.UIDValidity = uint32(700 + 100*i)
		if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetRemoteState(f.ID, f.UIDValidity, 100, 0) }); err != nil {
			t.Fatal(err)
		}
		fs[name] = f
	}
	var msgs []*index.Message
	for i, uid := range []uint32{11, 12, 0} {
		m, err := st.Append(ctx, fs["a/INBOX"].ID, strings.NewReader(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)),
			maildir.FlagSeen, []string{"$k"}, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		if uid != 0 { // as if the sync had uploaded it
			if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetUID(m.ID, uid, m.RFC822Size) }); err != nil {
				t.Fatal(err)
			}
			m.UID = uid
		}
		msgs = append(msgs, m)
	}
	return st, fs, msgs
}

func intents(t *testing.T, st *index.Store, fs ...*index.Folder) []string {
	t.Helper()
	var out []string
	st.Read(context.Background(), func(tx *index.ReadTx) error {
		for _, f := range fs {
			in, err := tx.Intents(f.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range in {
				out = append(out, fmt.Sprintf("%d %d %d %s %s", i.Account, i.Folder, i.Message, i.Op, i.Arg))
			}
		}
		return nil
	})
	return out
}

func fileOf(t *testing.T, st *index.Store, f *index.Folder, m *index.Message) string {
	t.Helper()
	b, err := st.OpenMessage(f, m)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestLocalAppend(t *testing.T) {
	st, fs, msgs := localStore(t)
	m := msgs[2]
	if m.UID != 0 || m.LocalUID != 3 || m.Flags != maildir.FlagSeen || !slices.Equal(m.Keywords, []string{"$k"}) {
		t.Errorf("appended row: %+v", m)
	}
	if got := fileOf(t, st, fs["a/INBOX"], m); got != "Subject: m2\n\nbody 2\n" {
		t.Errorf("file %q", got)
	}
	if m.RFC822Size != int64(len("Subject: m2\r\n\r\nbody 2\r\n")) || m.Header.Subject != "m2" {
		t.Errorf("size %d, subject %q", m.RFC822Size, m.Header.Subject)
	}
	if !strings.HasPrefix(m.File, "cur/") || !strings.HasSuffix(m.File, ":2,S") {
		t.Errorf("file name %q", m.File)
	}
	if in := intents(t, st, fs["a/INBOX"]); len(in) != 0 {
		t.Errorf("Append queued %q: the sync uploads rows without UID", in)
	}
}

func TestLocalCopyTo(t *testing.T) {
	st, fs, msgs := localStore(t)
	ctx := context.Background()
	copies, err := st.CopyTo(ctx, msgs[:2], fs["a/Archive"].ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range copies {
		if c.UID != 0 || c.Folder != fs["a/Archive"].ID || c.LocalUID != uint32(i+1) || c.Flags != maildir.FlagSeen ||
			!slices.Equal(c.Keywords, []string{"$k"}) || !c.InternalDate.Equal(msgs[i].InternalDate) {
			t.Errorf("copy %d: %+v", i, c)
		}
		if got, want := fileOf(t, st, fs["a/Archive"], c), fileOf(t, st, fs["a/INBOX"], msgs[i]); got != want {
			t.Errorf("copy %d holds %q, want %q", i, got, want)
		}
	}
	if in := intents(t, st, fs["a/INBOX"], fs["a/Archive"]); len(in) != 0 {
		t.Errorf("CopyTo queued %q", in)
	}
}

func TestLocalMoveTo(t *testing.T) {
	st, fs, msgs := localStore(t)
	ctx := context.Background()
	src, arch, other := fs["a/INBOX"], fs["a/Archive"], fs["b/INBOX"]
	body := fileOf(t, st, src, msgs[0])
	ids := []index.MessageID{msgs[0].ID, msgs[1].ID, msgs[2].ID}
	if _, err := st.MoveTo(ctx, []*index.Message{msgs[0], msgs[2]}, arch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MoveTo(ctx, []*index.Message{msgs[1]}, other.ID); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.ID != ids[i] || m.UID != 0 {
			t.Errorf("moved row %d: %+v", i, m)
		}
	}
	if msgs[0].Folder != arch.ID || msgs[0].LocalUID != 1 || msgs[2].LocalUID != 2 || msgs[1].Folder != other.ID || msgs[1].LocalUID != 1 {
		t.Errorf("moved rows: %+v %+v %+v", msgs[0], msgs[1], msgs[2])
	}
	if got := fileOf(t, st, arch, msgs[0]); got != body {
		t.Errorf("moved file %q", got)
	}
	if _, err := os.Stat(filepath.Join(st.Root(), "a", "INBOX", msgs[0].File)); err == nil {
		t.Error("the file stayed in the source folder")
	}
	want := []string{
		fmt.Sprintf("%d %d %d move 11/700", src.Account, src.ID, msgs[0].ID),
		fmt.Sprintf("%d %d 0 expunge 12/700", src.Account, src.ID), // another account: uploaded there, expunged here
	}
	if got := intents(t, st, src, arch, other); !slices.Equal(got, want) {
		t.Errorf("intents\n got %q\nwant %q", got, want)
	}

	// A move within the folder only renumbers the message.
	if _, err := st.MoveTo(ctx, []*index.Message{msgs[0]}, arch.ID); err != nil {
		t.Fatal(err)
	}
	if msgs[0].LocalUID != 3 || msgs[0].Folder != arch.ID {
		t.Errorf("renumbered: %+v", msgs[0])
	}
	if got := intents(t, st, src, arch, other); len(got) != 2 {
		t.Errorf("a move within a folder queued %q", got[2:])
	}
	var fc *index.FolderChanges
	st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		fc, err = tx.ChangesSince(arch.ID, 0)
		return err
	})
	if !slices.Equal(fc.Removed, []uint32{1}) {
		t.Errorf("tombstones %v, want the old UID 1", fc.Removed)
	}
}

func TestLocalExpunge(t *testing.T) {
	st, fs, msgs := localStore(t)
	ctx := context.Background()
	src := fs["a/INBOX"]
	if err := st.Expunge(ctx, msgs[1:]); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%d %d 0 expunge 12/700", src.Account, src.ID)} // not the local-only one
	if got := intents(t, st, src); !slices.Equal(got, want) {
		t.Errorf("intents\n got %q\nwant %q", got, want)
	}
	for _, m := range msgs[1:] {
		if _, err := st.OpenMessage(src, m); err == nil {
			t.Errorf("the file of %s is still there", m.Key)
		}
	}
	var left []uint32
	st.Read(ctx, func(tx *index.ReadTx) error {
		left, _, _ = tx.LocalUIDs(src.ID)
		return nil
	})
	if !slices.Equal(left, []uint32{1}) {
		t.Errorf("rows left: %v", left)
	}
}
