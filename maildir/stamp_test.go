package maildir

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStamp: a stamp round-trips through its text; a new file, a rename
// and a removal each change it; a recent one is racy, an old one not.
func TestStamp(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	backdate := func() {
		for _, sub := range []string{"cur", "new"} {
			if err := os.Chtimes(filepath.Join(d.Path, sub), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	stamp := func() Stamp {
		s, err := d.Stamp()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	backdate()
	s0 := stamp()
	if s0.Racy(time.Now()) {
		t.Errorf("an hour-old stamp is racy: %v", s0)
	}
	if p, ok := ParseStamp(s0.String()); !ok || p != s0 {
		t.Errorf("ParseStamp(%q) = %v, %v", s0.String(), p, ok)
	}
	if _, ok := ParseStamp("1:2:3"); ok {
		t.Error("ParseStamp took a short text")
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"a new file in new/", func() error {
			return os.WriteFile(filepath.Join(d.Path, "new", "1.M1.h"), []byte("x\n"), 0o600)
		}},
		{"a rename into cur/", func() error {
			return os.Rename(filepath.Join(d.Path, "new", "1.M1.h"), filepath.Join(d.Path, "cur", "1.M1.h:2,S"))
		}},
		{"a removal", func() error { return os.Remove(filepath.Join(d.Path, "cur", "1.M1.h:2,S")) }},
	}
	for _, st := range steps {
		backdate()
		before := stamp()
		if err := st.do(); err != nil {
			t.Fatal(err)
		}
		after := stamp()
		if after == before {
			t.Errorf("%s left the stamp as it was", st.what)
		}
		if !after.Racy(time.Now()) {
			t.Errorf("the stamp right after %s is not racy", st.what)
		}
	}
}

// TestStampRacyWindow: a stamp 200 ms old vouches on a filesystem with
// sub-second times, not on one that keeps whole seconds.
func TestStampRacyWindow(t *testing.T) {
	now := time.Unix(1_000_000, 500_000_000)
	fine := now.Add(-200 * time.Millisecond).UnixNano()
	s := Stamp{Cur: stampDir{1, 2, fine}, New: stampDir{1, 3, fine}}
	if s.Racy(now) {
		t.Errorf("a 200 ms old stamp with sub-second times is racy")
	}
	whole := time.Unix(1_000_000, 0).UnixNano() // 500 ms old, whole seconds
	s.New.Mtime = whole
	if !s.Racy(now) {
		t.Errorf("a 500 ms old stamp of whole seconds vouches")
	}
	if !(Stamp{Cur: stampDir{1, 2, fine}, New: stampDir{1, 3, now.Add(time.Hour).UnixNano()}}).Racy(now) {
		t.Errorf("a stamp from the future vouches")
	}
}

// TestFileTime: a change to the folder after FileTime gets its time or a
// later one; the probe leaves nothing in tmp/, and a killed process's
// leftover probe is its own tmp/ file to clean.
func TestFileTime(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	ft, err := d.FileTime()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Path, "new", "1.2.x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := d.Stamp()
	if err != nil {
		t.Fatal(err)
	}
	if st.Newest().Before(ft) {
		t.Errorf("a change after FileTime %v got the earlier time %v", ft, st.Newest())
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after FileTime", len(ents))
	}
	left := filepath.Join(d.Path, "tmp", clockProbe+".999999999.123")
	if err := os.WriteFile(left, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := d.CleanOwnTmp(); err != nil || n != 1 {
		t.Errorf("CleanOwnTmp of a dead process's probe: %d removed, %v", n, err)
	}
}
