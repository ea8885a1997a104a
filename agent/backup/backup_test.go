package backup

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/maildir"
)

// testStore is a store with messages in a few folders.
type testStore struct {
	st      *index.Store
	root    string
	folders map[string]*index.Folder
	next    int // the corpus message to deliver next
	corpus  corpus.Options
}

var testFolders = []string{"INBOX", "Archive", "Lists/Go"}

// testCorpus is the kind of mail newTestStore delivers.
var testCorpus = corpus.Options{Folders: testFolders}

func newTestStore(t testing.TB, n int) *testStore {
	t.Helper()
	return newTestStoreOf(t, n, testCorpus)
}

// newTestStoreOf is newTestStore with the mail of opts (its Folders are
// testFolders').
func newTestStoreOf(t testing.TB, n int, opts corpus.Options) *testStore {
	t.Helper()
	opts.Folders = testFolders
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &testStore{st: st, root: root, folders: map[string]*index.Folder{}, corpus: opts}
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		for _, name := range append(testFolders, "Empty") {
			rel, err := index.FolderPath("acct", name)
			if err != nil {
				return err
			}
			if s.folders[name], err = tx.EnsureFolder(a, name, rel); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := maildir.MarkAccount(root, "acct"); err != nil {
		t.Fatal(err)
	}
	for _, f := range s.folders {
		d, err := st.Dir(*f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := maildir.Open(d.Path); err != nil {
			t.Fatal(err)
		}
	}
	s.deliver(t, n)
	return s
}

// deliver stores the next n corpus messages, in batches.
func (s *testStore) deliver(t testing.TB, n int) []index.MessageID {
	t.Helper()
	var ids []index.MessageID
	for n > 0 {
		k := min(n, 500)
		n -= k
		var as []*index.Arrival
		for range k {
			m := corpus.At(7, s.next, s.corpus)
			s.next++
			f := s.folders[m.Folder]
			d, err := s.st.Dir(*f)
			if err != nil {
				t.Fatal(err)
			}
			w, err := d.NewDelivery()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(m.Raw); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			a := &index.Arrival{Folder: f, File: w}
			a.Row.Flags, a.Row.Keywords = maildir.FlagsFromIMAP(m.Flags)
			a.Row.Header = index.ParseHeader(w.Header())
			a.Row.InternalDate = m.Date
			a.Row.DeferText = true
			as = append(as, a)
		}
		err := s.st.Deliver(context.Background(), &index.Batch{Arrivals: as})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			ids = append(ids, a.Row.ID)
		}
	}
	return ids
}

// messages returns the rows of a folder.
func (s *testStore) messages(t testing.TB, folder string) []*index.Message {
	t.Helper()
	var ms []*index.Message
	err := s.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.Messages(s.folders[folder].ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// setFlags flips the Flagged flag of messages (a rename of the file).
func (s *testStore) setFlags(t testing.TB, ms []*index.Message) {
	t.Helper()
	var cs []index.FlagChange
	for _, m := range ms {
		cs = append(cs, index.FlagChange{Message: m, Flags: m.Flags ^ maildir.FlagFlagged, Keywords: m.Keywords})
	}
	if err := s.st.SetFlags(context.Background(), cs, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *testStore) remove(t testing.TB, ms []*index.Message) {
	t.Helper()
	if err := s.st.Remove(context.Background(), ms, nil); err != nil {
		t.Fatal(err)
	}
}

func mustBackup(t testing.TB, s *testStore, to string, keep int) *Result {
	t.Helper()
	res, err := Backup(context.Background(), Options{Store: s.st, To: to, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustVerifySnapshot(t testing.TB, dir string) *Report {
	t.Helper()
	r, err := VerifySnapshot(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustVerifyStore(t testing.TB, s *testStore) *Report {
	t.Helper()
	r, err := VerifyStore(context.Background(), s.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkSame checks that the snapshot holds exactly the live store's
// messages, byte for byte, each under the name its row records, and that
// the snapshot's index has the live index's rows.
func checkSame(t testing.TB, s *testStore, snap string) {
	t.Helper()
	live := map[string][]byte{}
	err := s.st.Read(context.Background(), func(tx *index.ReadTx) error {
		return tx.StoredFiles(func(f index.StoredFile) error {
			live[f.Path()] = f.SHA256
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	inSnap := map[string][]byte{}
	if err := index.ReadSnapshot(filepath.Join(snap, ".postfach", "index.db"), func(f index.StoredFile) error {
		inSnap[f.Path()] = f.SHA256
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(inSnap) != len(live) {
		t.Errorf("snapshot index: %d rows, live %d", len(inSnap), len(live))
	}
	for p, sum := range live {
		if !bytes.Equal(inSnap[p], sum) {
			t.Errorf("%s: not in the snapshot's index as in the live one", p)
			continue
		}
		want, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("snapshot: %v", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: snapshot's bytes differ from the store's", p)
		}
	}
}

// messageFiles lists a snapshot's message files by folder and key.
func messageFiles(t testing.TB, snap string) map[string]os.FileInfo {
	t.Helper()
	out := map[string]os.FileInfo{}
	filepath.Walk(snap, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(snap, p)
		folder, _, name := splitMessagePath(filepath.ToSlash(rel))
		if fi.Mode().IsRegular() && folder != "" {
			e, _ := maildir.ParseName(name)
			out[baseKey(folder, e.Key)] = fi
		}
		return nil
	})
	return out
}

func nlink(fi os.FileInfo) uint64 { return uint64(fi.Sys().(*syscall.Stat_t).Nlink) }

// TestBackupIncremental: a first backup copies every file; after 10
// changes (flags changed on 4 messages, 3 new, 3 removed) a second one
// copies only the 3 new files and hard-links all others from the first,
// in a fraction of the time; both verify clean and hold the store's
// messages byte for byte; one byte changed in a snapshot's message, or a
// row or file missing in the live store, is named by verify.
func TestBackupIncremental(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 500
	}
	s := newTestStore(t, n)
	to := filepath.Join(t.TempDir(), "backups")
	if r := mustVerifyStore(t, s); len(r.Differences) != 0 || r.Files != n {
		t.Fatalf("live store before: %d files, %v", r.Files, r.Differences)
	}

	r1 := mustBackup(t, s, to, 0)
	if r1.Files != n || r1.Copied != n || r1.Linked != 0 || len(r1.Dropped)+len(r1.Mismatched) != 0 {
		t.Fatalf("first backup: %+v", r1)
	}
	checkSame(t, s, r1.Snapshot)
	checkModes(t, to)

	inbox := s.messages(t, "INBOX")
	flagged := inbox[:4]
	s.setFlags(t, flagged)
	removed := inbox[10:13]
	s.remove(t, removed)
	added := s.deliver(t, 3)

	r2 := mustBackup(t, s, to, 0)
	if r2.Files != n || r2.Copied != 3 || r2.Linked != n-3 {
		t.Fatalf("second backup: %d files, %d copied, %d linked; want %d, 3, %d", r2.Files, r2.Copied, r2.Linked, n, n-3)
	}
	t.Logf("%d messages: first backup %v, second %v (%.1f%%)", n, r1.Duration, r2.Duration, 100*r2.Duration.Seconds()/r1.Duration.Seconds())
	// The time is BenchmarkBackupIncremental's to measure, on a quiet
	// machine: on a shared one (CI runs this under -race beside other
	// suites) 500 small files copy about as fast as they link. What
	// makes the second backup cheap is checked here: it wrote only the
	// new files' bytes.
	if r2.CopiedBytes*int64(n) > 10*3*r1.CopiedBytes {
		t.Errorf("second backup copied %d bytes, the first %d: more than the 3 new files' share", r2.CopiedBytes, r1.CopiedBytes)
	}
	checkSame(t, s, r2.Snapshot)
	checkModes(t, to)

	// Only the new files are new inodes; the rest are the first
	// snapshot's, the flagged ones under their new names.
	f1, f2 := messageFiles(t, r1.Snapshot), messageFiles(t, r2.Snapshot)
	newKeys := map[string]bool{}
	for _, id := range added {
		var m *index.Message
		s.st.Read(context.Background(), func(tx *index.ReadTx) error {
			var err error
			m, err = tx.MessageByID(id)
			return err
		})
		f, _ := s.folderOf(m.Folder)
		newKeys[baseKey(f.Path, m.Key)] = true
	}
	for k, fi := range f2 {
		old, ok := f1[k]
		switch {
		case newKeys[k]:
			if ok || nlink(fi) != 1 {
				t.Errorf("new file %q: in the first snapshot %v, %d links", k, ok, nlink(fi))
			}
		case !ok:
			t.Errorf("%q: not in the first snapshot", k)
		case !os.SameFile(old, fi) || nlink(fi) != 2:
			t.Errorf("%q: not shared with the first snapshot (%d links)", k, nlink(fi))
		}
	}
	for _, m := range flagged {
		f := s.folders["INBOX"]
		if !os.SameFile(f1[baseKey(f.Path, m.Key)], f2[baseKey(f.Path, m.Key)]) {
			t.Errorf("flagged %s not shared", m.Key)
		}
		if _, err := os.Stat(filepath.Join(r2.Snapshot, filepath.FromSlash(f.Path), filepath.FromSlash(m.File))); err != nil {
			t.Errorf("flagged message not under its new name %s: %v", m.File, err)
		}
	}

	for _, snap := range []string{r1.Snapshot, r2.Snapshot} {
		if r := mustVerifySnapshot(t, snap); len(r.Differences) != 0 || r.Files < n {
			t.Errorf("verify %s: %d files, %v", snap, r.Files, r.Differences)
		}
	}

	// One byte changed in a file only the second snapshot has.
	var victim string
	for k, fi := range f2 {
		if newKeys[k] {
			folder, _, _ := strings.Cut(k, "\x00")
			p := filepath.Join(r2.Snapshot, filepath.FromSlash(folder))
			matches, _ := filepath.Glob(filepath.Join(p, "*", fi.Name()))
			victim = matches[0]
			break
		}
	}
	flipByte(t, victim, 100)
	rel, _ := filepath.Rel(r2.Snapshot, victim)
	rep := mustVerifySnapshot(t, r2.Snapshot)
	if len(rep.Differences) != 1 || rep.Differences[0].Path != filepath.ToSlash(rel) || !strings.Contains(rep.Differences[0].What, "content differs from the manifest") {
		t.Errorf("verify after a byte changed in %s: %v", rel, rep.Differences)
	}
	if r := mustVerifySnapshot(t, r1.Snapshot); len(r.Differences) != 0 {
		t.Errorf("verify of the first snapshot: %v", r.Differences)
	}

	// The live store: a row without its file, a file without its row,
	// a file whose bytes differ from its row.
	arch := s.messages(t, "Archive")
	fa := s.folders["Archive"]
	gone := filepath.Join(s.root, filepath.FromSlash(fa.Path), filepath.FromSlash(arch[0].File))
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if err := s.st.Write(context.Background(), func(tx *index.Tx) error { return tx.DeleteMessage(arch[1].ID) }); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(s.root, filepath.FromSlash(fa.Path), filepath.FromSlash(arch[2].File))
	flipByte(t, damaged, 50)
	rep = mustVerifyStore(t, s)
	want := []string{
		path.Join(fa.Path, arch[0].File) + ": no file for the index's row",
		path.Join(fa.Path, arch[1].File) + ": no row in the index",
		path.Join(fa.Path, arch[2].File) + ": content differs from the index",
	}
	sort.Strings(want)
	var got []string
	for _, d := range rep.Differences {
		got = append(got, d.String())
	}
	if len(got) != len(want) {
		t.Fatalf("verify of the live store: %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("difference %d: %q, want %q...", i, got[i], want[i])
		}
	}
}

func (s *testStore) folderOf(id index.FolderID) (*index.Folder, bool) {
	for _, f := range s.folders {
		if f.ID == id {
			return f, true
		}
	}
	return nil, false
}

// flipByte changes the byte at offset off of the file at p in place.
func flipByte(t testing.TB, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// checkModes checks that everything below dir is owner-only.
func checkModes(t testing.TB, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v", p, fi.Mode())
		}
		return nil
	})
}

// TestBackupKeep: only the keep newest complete snapshots stay; an
// incomplete one (no manifest) is never the base of the next, never
// counted, and is removed by the next backup.
func TestBackupKeep(t *testing.T) {
	s := newTestStore(t, 30)
	to := t.TempDir()
	now := time.Date(2026, 12, 5, 2, 30, 0, 0, time.UTC)
	opts := Options{Store: s.st, To: to, Keep: 2, Now: func() time.Time { return now }}
	var snaps []string
	for i := range 3 {
		res, err := Backup(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res.Snapshot)
		if i == 2 && (len(res.Removed) != 1 || res.Removed[0] != snaps[0]) {
			t.Errorf("third backup removed %q, want the first", res.Removed)
		}
		if i > 0 && res.Linked != 30 {
			t.Errorf("backup %d linked %d files", i, res.Linked)
		}
		now = now.Add(24 * time.Hour)
	}
	// A backup cut short: a newer snapshot without its manifest.
	if err := os.Remove(filepath.Join(snaps[2], ManifestName)); err != nil {
		t.Fatal(err)
	}
	res, err := Backup(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Linked != 30 {
		t.Errorf("after an incomplete snapshot: %d linked", res.Linked)
	}
	list, err := List(to)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, filepath.Base(l.Path))
		if !l.Complete {
			t.Errorf("%s incomplete", l.Path)
		}
	}
	if want := []string{filepath.Base(snaps[1]), filepath.Base(res.Snapshot)}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("snapshots left %q, want %q", names, want)
	}
	if _, err := VerifySnapshot(context.Background(), snaps[2], nil); err == nil {
		t.Errorf("verify of a removed snapshot did not fail")
	}
}

// TestBackupWhileWriting: changes made between the index's copy and the
// fetching of the files (a flag change renaming a file, a message moved
// to another folder, one removed, new ones delivered) leave a snapshot
// in which every row has its file and every file its row: the renamed
// file under the name the copy's row records, the moved one fetched from
// its new folder, the removed one dropped from the snapshot's index, the
// new ones absent.
func TestBackupWhileWriting(t *testing.T) {
	s := newTestStore(t, 200)
	to := t.TempDir()
	inbox := s.messages(t, "INBOX")
	renamed, moved, removed := inbox[0], inbox[1], inbox[2]
	oldName, movedName := renamed.File, moved.File
	testHookCopied = func() {
		s.setFlags(t, []*index.Message{renamed})
		if _, err := s.st.MoveTo(context.Background(), []*index.Message{moved}, s.folders["Archive"].ID); err != nil {
			t.Fatal(err)
		}
		s.remove(t, []*index.Message{removed})
		s.deliver(t, 5)
	}
	defer func() { testHookCopied = nil }()
	res := mustBackup(t, s, to, 0)
	testHookCopied = nil
	fi := s.folders["INBOX"]
	if want := path.Join(fi.Path, removed.File); len(res.Dropped) != 1 || res.Dropped[0] != want {
		t.Errorf("dropped %q, want %q", res.Dropped, want)
	}
	if res.Files != 199 {
		t.Errorf("%d files, want 199", res.Files)
	}
	if r := mustVerifySnapshot(t, res.Snapshot); len(r.Differences) != 0 {
		t.Errorf("verify: %v", r.Differences)
	}
	if _, err := os.Stat(filepath.Join(res.Snapshot, filepath.FromSlash(fi.Path), filepath.FromSlash(oldName))); err != nil {
		t.Errorf("renamed message not under the copy's name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(res.Snapshot, filepath.FromSlash(fi.Path), filepath.FromSlash(movedName))); err != nil {
		t.Errorf("moved message not where the copy's row has it: %v", err)
	}
	// The next backup, with no change in between, holds the store as it
	// is now.
	res = mustBackup(t, s, to, 0)
	checkSame(t, s, res.Snapshot)
	if r := mustVerifySnapshot(t, res.Snapshot); len(r.Differences) != 0 {
		t.Errorf("verify: %v", r.Differences)
	}
}

// TestBackupDamagedStore: a live file whose bytes differ from its row's
// SHA-256 is stored as found and named (Result.Mismatched), and verify
// of that snapshot names the disagreement between its index and the
// file; a file damaged in the store after a backup does not reach the
// next one (it is linked, by the index's hash, from the good copy).
func TestBackupDamagedStore(t *testing.T) {
	s := newTestStore(t, 20)
	to := t.TempDir()
	ms := s.messages(t, "INBOX")
	f := s.folders["INBOX"]
	res := mustBackup(t, s, to, 0)
	good := filepath.Join(res.Snapshot, filepath.FromSlash(f.Path), filepath.FromSlash(ms[0].File))
	before, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Damaged in place after the first backup: linked from it.
	flipByte(t, filepath.Join(s.root, filepath.FromSlash(f.Path), filepath.FromSlash(ms[0].File)), 10)
	// Damaged before it was ever backed up: copied and named.
	nid := s.deliver(t, 1)[0]
	var nm *index.Message
	s.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		nm, err = tx.MessageByID(nid)
		return err
	})
	nf, _ := s.folderOf(nm.Folder)
	flipByte(t, filepath.Join(s.root, filepath.FromSlash(nf.Path), filepath.FromSlash(nm.File)), 10)
	res = mustBackup(t, s, to, 0)
	bad := path.Join(nf.Path, nm.File)
	if len(res.Mismatched) != 1 || res.Mismatched[0] != bad {
		t.Errorf("mismatched %q, want %q", res.Mismatched, bad)
	}
	got, err := os.ReadFile(filepath.Join(res.Snapshot, filepath.FromSlash(f.Path), filepath.FromSlash(ms[0].File)))
	if err != nil || !bytes.Equal(got, before) {
		t.Errorf("the file damaged in the store reached the backup (%v)", err)
	}
	rep := mustVerifySnapshot(t, res.Snapshot)
	if len(rep.Differences) != 1 || rep.Differences[0].Path != bad || !strings.Contains(rep.Differences[0].What, "differs from the snapshot index's row") {
		t.Errorf("verify: %v", rep.Differences)
	}
}
