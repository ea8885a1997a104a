package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "acct", "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	d := openTemp(t)
	for _, sub := range []string{"cur", "new", "tmp"} {
		st, err := os.Stat(filepath.Join(d.Path, sub))
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v", sub, st, err)
		}
	}
	if _, err := Open(d.Path); err != nil {
		t.Errorf("second Open: %v", err)
	}
	file := filepath.Join(d.Path, "cur", "k:2,")
	writeFile(t, file, "x")
	if _, err := Open(file); err == nil {
		t.Error("Open on a file: no error")
	}
}

func TestUIDValidity(t *testing.T) {
	d := openTemp(t)
	if v, err := d.UIDValidity(); v != 0 || err != nil {
		t.Fatalf("unset UIDValidity = %d, %v", v, err)
	}
	for _, v := range []uint32{42, 4294967295} {
		if err := d.SetUIDValidity(v); err != nil {
			t.Fatal(err)
		}
		if got, err := d.UIDValidity(); got != v || err != nil {
			t.Fatalf("UIDValidity = %d, %v; want %d", got, err, v)
		}
	}
	b, _ := os.ReadFile(filepath.Join(d.Path, UIDValidityFile))
	if string(b) != "4294967295\n" {
		t.Errorf("file holds %q", b)
	}
	if err := d.SetUIDValidity(0); err == nil {
		t.Error("SetUIDValidity(0): no error")
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %v", ents)
	}
	writeFile(t, filepath.Join(d.Path, UIDValidityFile), "garbage\n")
	if _, err := d.UIDValidity(); err == nil {
		t.Error("garbage UIDVALIDITY: no error")
	}
}

func TestScanMixed(t *testing.T) {
	d := openTemp(t)
	files := map[string]string{
		"new/1700000000.M1P2.host":                  "a",
		"new/1700000001.M1P2.host,U=3":              "b",
		"cur/1700000002.M3P4.host,S=12,W=13:2,RSab": "c",
		"cur/1700000003.M5P6.host:2,FS":             "d",
		"cur/1700000004.1_1.00.host,U=9:2,DT":       "e",
		"cur/.dotfile":                              "x",
		"cur/:2,S":                                  "x",
		"new/.nfs0001":                              "x",
	}
	for p, data := range files {
		writeFile(t, filepath.Join(d.Path, p), data)
	}
	if err := os.Mkdir(filepath.Join(d.Path, "cur", "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := d.Scan()
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Key: "1700000002.M3P4.host", Flags: FlagAnswered | FlagSeen, Name: "1700000002.M3P4.host,S=12,W=13:2,RSab", Sub: "cur"},
		{Key: "1700000003.M5P6.host", Flags: FlagFlagged | FlagSeen, Name: "1700000003.M5P6.host:2,FS", Sub: "cur"},
		{Key: "1700000004.1_1.00.host", UID: 9, Flags: FlagDraft | FlagDeleted, Name: "1700000004.1_1.00.host,U=9:2,DT", Sub: "cur"},
		{Key: "1700000000.M1P2.host", Name: "1700000000.M1P2.host", Sub: "new"},
		{Key: "1700000001.M1P2.host", UID: 3, Name: "1700000001.M1P2.host,U=3", Sub: "new"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Scan =\n%+v\nwant\n%+v", got, want)
	}
	for _, e := range got {
		b, err := os.ReadFile(d.FilePath(e))
		if err != nil || string(b) != files[e.Sub+"/"+e.Name] {
			t.Errorf("FilePath(%+v): %q, %v", e, b, err)
		}
	}
}

func TestEntryOps(t *testing.T) {
	d := openTemp(t)
	e := commitMsg(t, d, "Subject: x\r\n\r\nbody\r\n", 7, FlagSeen)
	if e.Name != e.Key+",U=7:2,S" || e.Sub != "cur" {
		t.Fatalf("committed %+v", e)
	}

	// SetFlags renames, keeps the UID.
	e2, err := d.SetFlags(e, FlagSeen|FlagFlagged|FlagPassed)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Name != e.Key+",U=7:2,FPS" || e2.UID != 7 || e2.Key != e.Key {
		t.Errorf("SetFlags = %+v", e2)
	}
	if _, err := os.Stat(d.FilePath(e)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old name still there: %v", err)
	}
	// Same flags: nothing to do.
	if e3, err := d.SetFlags(e2, e2.Flags); err != nil || e3 != e2 {
		t.Errorf("SetFlags(same) = %+v, %v", e3, err)
	}

	// Find with a stale hint, a good hint and no hint.
	for _, hint := range []string{e.Name, e2.Name, "", "../../etc/passwd"} {
		got, err := d.Find(e.Key, hint)
		if err != nil || got != e2 {
			t.Errorf("Find(hint %q) = %+v, %v; want %+v", hint, got, err, e2)
		}
	}
	for _, key := range []string{"nope", e.Key[:5]} {
		if _, err := d.Find(key, ""); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Find(%q): %v, want ErrNotExist", key, err)
		}
	}
	if _, err := d.Find("a/b", ""); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Find(bad key): %v", err)
	}

	// SetUID, and back to 0.
	e3, err := d.SetUID(e2, 12)
	if err != nil || e3.Name != e.Key+",U=12:2,FPS" || e3.UID != 12 {
		t.Fatalf("SetUID = %+v, %v", e3, err)
	}
	e4, err := d.SetUID(e3, 0)
	if err != nil || e4.Name != e.Key+":2,FPS" || e4.UID != 0 {
		t.Fatalf("SetUID(0) = %+v, %v", e4, err)
	}

	// Another program renames the file behind our back (adds R, drops P);
	// a stale entry still works, and that program's change is kept on top
	// of ours: it used to be undone, and a mail client's "answered" was
	// lost to a sync applying the server's flags.
	moved := filepath.Join(d.Path, "cur", e.Key+":2,FRS")
	if err := os.Rename(d.FilePath(e4), moved); err != nil {
		t.Fatal(err)
	}
	e5, err := d.SetFlags(e4, FlagSeen|FlagPassed|FlagDeleted) // drop F, add T
	if err != nil || e5.Name != e.Key+":2,RST" || e5.Flags != FlagSeen|FlagAnswered|FlagDeleted {
		t.Fatalf("SetFlags(stale) = %+v, %v", e5, err)
	}
	if err := os.Rename(d.FilePath(e5), filepath.Join(d.Path, "cur", e.Key+":2,")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(e5); err != nil {
		t.Fatalf("Remove(stale): %v", err)
	}
	if _, err := d.Find(e.Key, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	if err := d.Remove(e5); err != nil {
		t.Errorf("Remove(gone) = %v", err)
	}
	if err := d.SyncDir(); err != nil {
		t.Error(err)
	}
	if _, err := d.SetFlags(e5, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SetFlags(gone): %v", err)
	}
}

func TestForeignNewToCur(t *testing.T) {
	d := openTemp(t)
	writeFile(t, filepath.Join(d.Path, "new", "k1,S=5,W=6"), "x")
	writeFile(t, filepath.Join(d.Path, "new", "k2"), "y")
	ents, err := d.Scan()
	if err != nil || len(ents) != 2 {
		t.Fatalf("Scan = %+v, %v", ents, err)
	}
	// SetUID keeps a file in new/ without info.
	e1, err := d.SetUID(ents[0], 4)
	if err != nil || e1.Sub != "new" || e1.Name != "k1,S=5,W=6,U=4" {
		t.Fatalf("SetUID = %+v, %v", e1, err)
	}
	// SetFlags moves it to cur/ with info, keeping the fields.
	e1, err = d.SetFlags(e1, 0)
	if err != nil || e1.Sub != "cur" || e1.Name != "k1,S=5,W=6,U=4:2," || e1.UID != 4 {
		t.Fatalf("SetFlags = %+v, %v", e1, err)
	}
	e2, err := d.SetFlags(ents[1], FlagSeen)
	if err != nil || e2 != (Entry{Key: "k2", Flags: FlagSeen, Name: "k2:2,S", Sub: "cur"}) {
		t.Fatalf("SetFlags = %+v, %v", e2, err)
	}
	if got, err := d.Find("k1", "k1,S=5,W=6"); err != nil || got != e1 {
		t.Errorf("Find = %+v, %v", got, err)
	}
	if err := d.Remove(e2); err != nil {
		t.Fatal(err)
	}
	if ents, _ := d.Scan(); len(ents) != 1 || ents[0] != e1 {
		t.Errorf("Scan after Remove = %+v", ents)
	}
}

func TestCleanTmp(t *testing.T) {
	d := openTemp(t)
	old := time.Now().Add(-48 * time.Hour)
	for _, n := range []string{"old1", ".old2", "young"} {
		p := filepath.Join(d.Path, "tmp", n)
		writeFile(t, p, "x")
		if n != "young" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Mkdir(filepath.Join(d.Path, "tmp", "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := d.NewDelivery() // in progress
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	n, err := d.CleanTmp(36 * time.Hour)
	if err != nil || n != 2 {
		t.Errorf("CleanTmp = %d, %v; want 2", n, err)
	}
	ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{w.Key(), "dir", "young"}; !slices.Equal(names, want) {
		t.Errorf("tmp/ = %q, want %q", names, want)
	}
}

// TestScanDuringMove: a file a mail reader moves from new/ to cur/ (a
// flag change) while the folder is read is listed once, in cur/; read the
// other way round it was in neither listing, its row looked deleted, and
// the sync deleted the message on both sides (TestRunKill9).
func TestScanDuringMove(t *testing.T) {
	d := openTemp(t)
	name := "1700000009.M1P2.host,U=5"
	if err := os.WriteFile(filepath.Join(d.Path, "new", name), []byte("Subject: x\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scanBetween = func() {
		if err := os.Rename(filepath.Join(d.Path, "new", name), filepath.Join(d.Path, "cur", name+":2,S")); err != nil {
			t.Error(err)
		}
	}
	defer func() { scanBetween = nil }()
	es, err := d.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Sub != "cur" || es[0].Flags != FlagSeen {
		t.Errorf("Scan during a move from new/ to cur/ = %+v; want the file once, in cur/ with S", es)
	}
}
