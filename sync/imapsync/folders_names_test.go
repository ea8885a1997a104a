package imapsync

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestFolderNames: which local names collide, and which local names can be
// created upstream and come back as themselves.
func TestFolderNames(t *testing.T) {
	rf := func(remote string, delim rune, fmap map[string]string) remoteFolder {
		return remoteFolder{Remote: remote, Local: FolderNames{Delim: delim, Map: fmap}.Local(remote), Delim: delim}
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
			if err := collisionError(g, FolderNames{}); err == nil {
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
		if got := (FolderNames{Delim: tc.delim, Map: fmap}).RoundTrips(tc.local); got != tc.want {
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

// TestFolderNamesPrefix: under a personal namespace prefix, server names
// below it are local names without it, and every local name goes back up
// below it (INBOX excepted).
func TestFolderNamesPrefix(t *testing.T) {
	n := newFolderNames('.', "INBOX.", map[string]string{"Sent Items": "Sent"})
	for _, tc := range []struct{ remote, local string }{
		{"INBOX", "INBOX"},
		{"INBOX.Archive", "Archive"},
		{"INBOX.Lists.golang", "Lists/golang"},
		{"INBOX.INBOX.x", "INBOX/x"},
		{"INBOX.Sent Items", "Sent"},
		{"INBOX.a/b", "a\u2215b"},
	} {
		if got := n.Local(tc.remote); got != tc.local {
			t.Errorf("Local(%q) = %q, want %q", tc.remote, got, tc.local)
		}
		if got := n.Remote(tc.local); got != tc.remote {
			t.Errorf("Remote(%q) = %q, want %q", tc.local, got, tc.remote)
		}
		if !n.RoundTrips(tc.local) {
			t.Errorf("RoundTrips(%q) = false", tc.local)
		}
	}
	if got := n.Local("inbox.Archive"); got != "Archive" {
		t.Errorf("Local(inbox.Archive) = %q, want Archive", got)
	}
	if got := n.Local("Shared.x"); got != "Shared/x" {
		t.Errorf("Local(Shared.x) = %q: a name outside the prefix keeps its path", got)
	}
	for _, local := range []string{"a.b", "inbox"} {
		if n.RoundTrips(local) {
			t.Errorf("RoundTrips(%q) = true", local)
		}
	}
	// A folder map key in the server's own spelling works both ways too.
	raw := newFolderNames('.', "INBOX.", map[string]string{"INBOX.Sent Items": "Sent", "Lists/go": "Go"})
	for remote, local := range map[string]string{"INBOX.Sent Items": "Sent", "INBOX.Lists.go": "Go"} {
		if got := raw.Local(remote); got != local {
			t.Errorf("raw key: Local(%q) = %q, want %q", remote, got, local)
		}
		if got := raw.Remote(local); got != remote {
			t.Errorf("raw key: Remote(%q) = %q, want %q", local, got, remote)
		}
	}
	if got := newFolderNames('.', "INBOX", nil).Prefix; got != "INBOX." {
		t.Errorf("prefix without its delimiter: %q, want INBOX.", got)
	}
}

// TestGuessPrefix: without a record, the prefix the index's names were
// made under is the one that names most of them; an account of INBOX
// alone takes the server's.
func TestGuessPrefix(t *testing.T) {
	listed := []remoteFolder{{Remote: "INBOX"}, {Remote: "INBOX.Archive"}, {Remote: "INBOX.Lists.go"}}
	known := func(names ...string) []*index.Folder {
		var out []*index.Folder
		for _, n := range names {
			out = append(out, &index.Folder{Name: n})
		}
		return out
	}
	cands := []string{"", "INBOX."}
	for _, tc := range []struct {
		known []*index.Folder
		want  string
	}{
		{known("INBOX", "INBOX/Archive", "INBOX/Lists/go"), ""},
		{known("INBOX", "Archive", "Lists/go"), "INBOX."},
		{known("INBOX"), "INBOX."},
		{known("INBOX", "INBOX/Archive", "Lists/go", "Gone"), "INBOX."}, // a tie: the server's
	} {
		if got := guessPrefix(cands, '.', nil, tc.known, listed); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.known, got, tc.want)
		}
	}
}
