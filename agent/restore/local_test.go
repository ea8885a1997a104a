package restore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/agent/backup"
	"github.com/postfach/postfach/agent/restore"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// storeState reads every folder of account's messages: content (the
// file's SHA-256, read from the file), flags and keywords, internal date.
func storeState(t *testing.T, st *index.Store, account string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		id, err := tx.Account(account)
		if err != nil {
			return err
		}
		fs, err := tx.Folders(id)
		if err != nil {
			return err
		}
		for _, f := range fs {
			rows, err := tx.Messages(f.ID)
			if err != nil {
				return err
			}
			for _, m := range rows {
				b, err := st.OpenMessage(f, m)
				if err != nil {
					return err
				}
				data, err := io.ReadAll(b)
				b.Close()
				if err != nil {
					return err
				}
				kw := slices.Clone(m.Keywords)
				slices.Sort(kw)
				out[f.Name] = append(out[f.Name], fmt.Sprintf("%x %s %v %d", sha256.Sum256(data), m.Flags.Info(), kw, m.InternalDate.Unix()))
			}
			slices.Sort(out[f.Name])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffStates(t *testing.T, want, got map[string][]string) {
	t.Helper()
	for f, w := range want {
		if g := got[f]; !slices.Equal(w, g) {
			t.Errorf("folder %s: %d messages, want %d:\n got %v\nwant %v", f, len(g), len(w), g, w)
		}
	}
	for f, g := range got {
		if _, ok := want[f]; !ok && len(g) > 0 {
			t.Errorf("folder %s: %d messages that the snapshot does not have", f, len(g))
		}
	}
}

// TestToStore: a snapshot restored into an empty store holds every
// message once (bytes, flags, keywords, internal date) as a new local
// message, the archive view too; a rerun delivers nothing; restored into
// the store it was taken of, nothing; after messages are removed there,
// only those; a file a killed delivery left without its row is taken as
// the message, not delivered again.
func TestToStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, size(40, 200))
	s := e.open()
	ctx := context.Background()
	want := storeState(t, e.st, "alice")
	n := 0
	for _, msgs := range want {
		n += len(msgs)
	}

	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reps, err := s.ToStore(ctx, restore.StoreOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != n || tot.Missing != 0 || tot.Extra != 0 || tot.DestCount != n || tot.SourceCount != n {
		t.Errorf("into an empty store: %+v, want %d copied", tot, n)
	}
	diffStates(t, want, storeState(t, st, "alice"))
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		id, _ := tx.Account("alice")
		f, err := tx.FolderByName(id, "INBOX")
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		for _, m := range rows {
			if m.UID != 0 {
				t.Errorf("restored row %s has upstream UID %d, want 0 (to be uploaded)", m.Key, m.UID)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckIndex(t, root)

	// A rerun: nothing.
	reps, err = s.ToStore(ctx, restore.StoreOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 {
		t.Errorf("rerun: %+v, want nothing copied", tot)
	}
	diffStates(t, want, storeState(t, st, "alice"))

	// Into the store it was taken of: nothing. Then two messages
	// removed there come back, once each.
	reps, err = s.ToStore(ctx, restore.StoreOptions{Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != 0 || tot.Missing != 0 {
		t.Errorf("into its own store: %+v, want nothing copied", tot)
	}
	var gone []*index.Message
	err = e.st.Read(ctx, func(tx *index.ReadTx) error {
		id, _ := tx.Account("alice")
		f, err := tx.FolderByName(id, "Entwürfe")
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		gone = rows[:2]
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Expunge(ctx, gone); err != nil {
		t.Fatal(err)
	}
	reps, err = s.ToStore(ctx, restore.StoreOptions{Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != 2 || tot.Missing != 0 {
		t.Errorf("after removing two: %+v, want 2 copied", tot)
	}
	diffStates(t, want, storeState(t, e.st, "alice"))

	// A delivery killed between its renames and its commit: the file is
	// in the folder without its row. Made here by hand: a snapshot
	// message's bytes renamed into a fresh store's folder.
	root3 := t.TempDir()
	st3, err := index.OpenStore(root3)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	sel, err := s.Select(ctx, []string{"alice:Archiv/2024"})
	if err != nil {
		t.Fatal(err)
	}
	reps, err = s.ToStore(ctx, restore.StoreOptions{Store: st3, Folders: sel})
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != len(want["Archiv/2024"]) {
		t.Fatalf("one folder: %+v", tot)
	}
	// Forget two rows (as if their commit never happened), keeping the files.
	var forget []*index.Message
	err = st3.Read(ctx, func(tx *index.ReadTx) error {
		id, _ := tx.Account("alice")
		f, err := tx.FolderByName(id, "Archiv/2024")
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		forget = rows[len(rows)-2:]
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st3.Write(ctx, func(tx *index.Tx) error {
		for _, m := range forget {
			if err := tx.DeleteMessage(m.ID); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reps, err = s.ToStore(ctx, restore.StoreOptions{Store: st3, Folders: sel})
	if err != nil {
		t.Fatal(err)
	}
	if tot := totals(reps); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 {
		t.Errorf("after a cut-short delivery: %+v, want nothing copied", tot)
	}
	diffStates(t, map[string][]string{"Archiv/2024": want["Archiv/2024"]}, storeState(t, st3, "alice"))
	testenv.CheckIndex(t, root3)
	e.checkSnapshot()
}

// TestToStoreCRLF: a snapshot file with CRLF line ends (another program's
// file, indexed as found) is stored with LF by the door, so its bytes in
// the store differ from the snapshot's: a rerun still finds it there and
// delivers nothing.
func TestToStoreCRLF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5)
	ctx := context.Background()
	var f *index.Folder
	err := e.st.Read(ctx, func(tx *index.ReadTx) error {
		id, err := tx.Account("alice")
		if err != nil {
			return err
		}
		f, err = tx.FolderByName(id, "INBOX")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	raw := "From: mua@example.org\r\nMessage-ID: <crlf@example.org>\r\nSubject: written by a mail reader\r\n\r\nwith CRLF\r\n"
	ent := maildir.Entry{Key: "1733400000.M1P1.mua", Name: "1733400000.M1P1.mua:2,S", Sub: "cur", Flags: maildir.FlagSeen}
	if err := os.WriteFile(d.FilePath(ent), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.IndexFile(ctx, index.Found{Folder: f, Entry: ent}); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Backup(ctx, backup.Options{Store: e.st, To: filepath.Join(t.TempDir(), "backups")})
	if err != nil {
		t.Fatal(err)
	}
	e.snap = res.Snapshot
	s := e.open()
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sel, err := s.Select(ctx, []string{"alice:INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.ToStore(ctx, restore.StoreOptions{Store: st, Folders: sel})
	if err != nil {
		t.Fatal(err)
	}
	want := sel[0].Messages
	if tot := totals(reps); tot.Copied != want || tot.Missing != 0 || tot.Extra != 0 {
		t.Errorf("first run: %+v, want %d copied", tot, want)
	}
	for range 2 {
		reps, err = s.ToStore(ctx, restore.StoreOptions{Store: st, Folders: sel})
		if err != nil {
			t.Fatal(err)
		}
		if tot := totals(reps); tot.Copied != 0 || tot.Missing != 0 || tot.Extra != 0 || tot.DestCount != want {
			t.Errorf("rerun: %+v, want nothing copied", tot)
		}
	}
	e.checkSnapshot()
}

// TestToStoreDamaged: a snapshot message file whose bytes differ from its
// row's SHA-256 is not delivered: the error names it and the report
// counts it missing; the others are restored.
func TestToStoreDamaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	ctx := context.Background()
	s := e.open()
	// Folders restore in name order: the damage is in the first,
	// Archiv/2024, and stops nothing in the second.
	sel, err := s.Select(ctx, []string{"alice:INBOX", "alice:Archiv/2024"})
	if err != nil {
		t.Fatal(err)
	}
	// Damage one file of the snapshot's Archiv/2024 (the view reads the
	// snapshot's files through its links).
	var victim string
	err = filepath.WalkDir(e.snap, func(p string, d os.DirEntry, err error) error {
		if err == nil && victim == "" && !d.IsDir() && (strings.HasSuffix(filepath.Dir(p), "/alice/Archiv/2024/cur") || strings.HasSuffix(filepath.Dir(p), "/alice/Archiv/2024/new")) {
			victim = p
		}
		return err
	})
	if err != nil || victim == "" {
		t.Fatalf("no Archiv/2024 file in the snapshot (%v)", err)
	}
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reps, err := s.ToStore(ctx, restore.StoreOptions{Store: st, Folders: sel})
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Errorf("error %v, want one naming the damaged file %s", err, filepath.Base(victim))
	}
	all := sel[0].Messages + sel[1].Messages
	if tot := totals(reps); tot.Missing != 1 || tot.Failed != 1 || tot.Copied != all-1 {
		t.Errorf("%+v, want 1 missing and the other %d copied", tot, all-1)
	}
}
