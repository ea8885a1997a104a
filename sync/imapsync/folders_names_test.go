package imapsync

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFolderNames: which local names collide, and which local names can be
// created upstream and come back as themselves.
func TestFolderNames(t *testing.T) {
	rf := func(remote string, delim rune, fmap map[string]string) remoteFolder {
		return remoteFolder{Remote: remote, Local: mappedName(remote, delim, fmap), Delim: delim}
	}
	for _, tc := range []struct {
		name     string
		remote   []remoteFolder
		foldCase bool
		collide  []string // remote names left out
	}{
		{"distinct", []remoteFolder{rf("INBOX", '/', nil), rf("Sent", '/', nil), rf("a/b", '/', nil)}, false, nil},
		{"folder_map target exists", []remoteFolder{rf("Sent", '/', nil), rf("Sent Items", '/', map[string]string{"Sent Items": "Sent"}), rf("INBOX", '/', nil)}, false,
			[]string{"Sent", "Sent Items"}},
		{"look-alike of '/'", []remoteFolder{rf("a/b", '.', nil), rf("a\u2215b", '.', nil), rf("a.b", '.', nil)}, false,
			[]string{"a/b", "a\u2215b"}},
		{"inbox", []remoteFolder{rf("INBOX", '/', nil), rf("Old", '/', map[string]string{"Old": "inbox"}), rf("INBOX/x", '/', nil), rf("Y", '/', map[string]string{"Y": "Inbox/x"})}, false,
			[]string{"INBOX", "Old", "INBOX/x", "Y"}},
		{"case, case-sensitive store", []remoteFolder{rf("Foo", '/', nil), rf("foo", '/', nil)}, false, nil},
		{"case, case-insensitive store", []remoteFolder{rf("Foo", '/', nil), rf("foo", '/', nil), rf("Bar", '/', nil)}, true, []string{"Foo", "foo"}},
	} {
		ok, groups := splitCollisions(tc.remote, tc.foldCase)
		var left []string
		for _, g := range groups {
			for _, r := range g {
				left = append(left, r.Remote)
			}
			if err := collisionError(g); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		}
		if !slices.Equal(left, tc.collide) || len(ok)+len(left) != len(tc.remote) {
			t.Errorf("%s: collide %q, want %q (kept %d of %d)", tc.name, left, tc.collide, len(ok), len(tc.remote))
		}
	}

	fmap := map[string]string{"Sent Items": "Sent"}
	for _, tc := range []struct {
		local string
		delim rune
		want  bool
	}{
		{"Lists/Go", '/', true},
		{"Lists/Go", '.', true},
		{"a\u2215b", '.', true},
		{"a.b", '.', false},   // would be a/b
		{"inbox", '/', false}, // would be INBOX
		{"INBOX/sub", '.', true},
		{"Sent", '/', true},        // "Sent Items" upstream
		{"Sent Items", '/', false}, // would come back as Sent
	} {
		if got := roundTrips(tc.local, tc.delim, fmap); got != tc.want {
			t.Errorf("roundTrips(%q, %q) = %v, want %v", tc.local, tc.delim, got, tc.want)
		}
	}
	dir := filepath.Join(t.TempDir(), "Store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(dir), "sTORE"))
	if got, want := caseInsensitiveFS(filepath.Join(dir, "acct")), err == nil; got != want {
		t.Errorf("caseInsensitiveFS = %v, want %v", got, want)
	}
}

func TestFolderRecoveredName(t *testing.T) {
	for in, want := range map[string]string{
		"1.M1.host":                   "1.M1.host",
		"1.M1.host,U=7:2,FS":          "1.M1.host:2,FS",
		"1.M1.host,S=120,U=7,W=9:2,S": "1.M1.host,S=120,W=9:2,S",
		"1.M1.host,U=7":               "1.M1.host",
		"1.M1.host:2,U=7":             "1.M1.host:2,U=7", // not a field: info
	} {
		if got := withoutUID(in); got != want {
			t.Errorf("withoutUID(%q) = %q, want %q", in, got, want)
		}
	}
}
