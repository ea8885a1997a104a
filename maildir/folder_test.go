package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var folderTests = []struct {
	name, enc string
}{
	{"INBOX", "INBOX"},
	{"Lists/Go", "Lists/Go"},
	{"Entwürfe", "Entwürfe"},
	{"Sent Items", "Sent Items"},
	{"[Gmail]/All Mail", "[Gmail]/All Mail"},
	{"curl/newer/tmpfs", "curl/newer/tmpfs"},
	{"", "%"},
	{"a//b", "a/%/b"},
	{"/abs", "%/abs"},
	{"x/", "x/%"},
	{".", "%2E"},
	{"..", "%2E."},
	{"../../etc", "%2E./%2E./etc"},
	{".hidden", "%2Ehidden"},
	{"cur", "%63ur"},
	{"Tmp", "%54mp"},
	{"a/NEW/b", "a/%4EEW/b"},
	{"100%", "100%25"},
	{"%41", "%2541"},
	{`a\b`, "a%5Cb"},
	{"x\x00y", "x%00y"},
	{"trail ", "trail%20"},
	{" lead", " lead"},
	{"  ", " %20"},
	{"a\nb\x7f", "a%0Ab%7F"},
	{"bad\xffutf8", "bad%FFutf8"},
	{"a.b", "a.b"},
}

func TestEncodeFolder(t *testing.T) {
	for _, tt := range folderTests {
		if got := EncodeFolder(tt.name); got != tt.enc {
			t.Errorf("EncodeFolder(%q) = %q, want %q", tt.name, got, tt.enc)
		}
		got, err := DecodeFolder(tt.enc)
		if err != nil || got != tt.name {
			t.Errorf("DecodeFolder(%q) = %q, %v; want %q", tt.enc, got, err, tt.name)
		}
	}
}

func TestDecodeFolderRejects(t *testing.T) {
	for _, rel := range []string{
		"", "a/", "/a", ".", "..", "a/../b", "a/./b", "cur", "x/tmp", ".x",
		"%2e", "%41", "%4", "%zz", "a%", "a%2Fb", "trail ", "x\x00", `a\b`, "%%",
	} {
		if got, err := DecodeFolder(rel); err == nil {
			t.Errorf("DecodeFolder(%q) = %q, want error", rel, got)
		}
	}
}

func TestEncodeName(t *testing.T) {
	for _, tt := range []struct{ name, enc string }{
		{"work", "work"},
		{"me@example.org", "me@example.org"},
		{"a/b", "a%2Fb"},
		{"..", "%2E."},
		{".postfach", "%2Epostfach"},
	} {
		if got := EncodeName(tt.name); got != tt.enc {
			t.Errorf("EncodeName(%q) = %q, want %q", tt.name, got, tt.enc)
		}
		if got, err := DecodeName(tt.enc); err != nil || got != tt.name {
			t.Errorf("DecodeName(%q) = %q, %v", tt.enc, got, err)
		}
	}
	if _, err := DecodeName("a/b"); err == nil {
		t.Error("DecodeName(a/b): no error")
	}
}

func TestFolderDir(t *testing.T) {
	root := "/mail/store"
	tests := []struct {
		account, folder, want string
	}{
		{"work", "INBOX", "/mail/store/work/INBOX"},
		{"work", "Lists/Go", "/mail/store/work/Lists/Go"},
		{"a/b", "..", "/mail/store/a%2Fb/%2E."},
		{"..", "../x", "/mail/store/%2E./%2E./x"},
	}
	for _, tt := range tests {
		got, err := FolderDir(root+"/", tt.account, tt.folder)
		if err != nil || got != filepath.FromSlash(tt.want) {
			t.Errorf("FolderDir(%q, %q) = %q, %v; want %q", tt.account, tt.folder, got, err, tt.want)
		}
	}
	for _, tt := range [][2]string{{"", "INBOX"}, {"work", ""}} {
		if got, err := FolderDir(root, tt[0], tt[1]); err == nil {
			t.Errorf("FolderDir(%q, %q) = %q, want error", tt[0], tt[1], got)
		}
	}
}

func TestWalkFolders(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"INBOX", "Lists/Go", "Lists/Rust/Async", "Entwürfe", ".hidden", "cur", "a//b"} {
		p, err := FolderDir(root, "acct", f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(p); err != nil {
			t.Fatal(err)
		}
	}
	acct := filepath.Join(root, "acct")
	// Things that are not folders of ours.
	for _, p := range []string{".dovecot/cur", "bad%zz/cur", "bad%zz/Sub/cur", "CUR/cur", "INBOX/.Trash/cur", "Lists/Go/cur/x/cur"} {
		if err := os.MkdirAll(filepath.Join(acct, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(acct, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := WalkFolders(acct, func(folder string, d *Dir) error {
		want, err := FolderDir(root, "acct", folder)
		if err != nil || d.Path != want {
			t.Errorf("folder %q: path %q, want %q (%v)", folder, d.Path, want, err)
		}
		got = append(got, folder)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Lexical order of encoded names: "%2Ehidden" < "%63ur" < "Entwürfe" < "INBOX" < "Lists" < "a".
	want := []string{".hidden", "cur", "Entwürfe", "INBOX", "Lists/Go", "Lists/Rust/Async", "a//b"}
	if !slices.Equal(got, want) {
		t.Errorf("walk = %q, want %q", got, want)
	}

	got = nil
	err = WalkFolders(acct, func(folder string, d *Dir) error {
		got = append(got, folder)
		if folder == "INBOX" {
			return errors.New("stop")
		}
		return nil
	})
	if want := []string{".hidden", "cur", "Entwürfe", "INBOX"}; err == nil || err.Error() != "stop" || !slices.Equal(got, want) {
		t.Errorf("walk stopped = %q, %v; want %q, stop", got, err, want)
	}

	// SkipDir skips subfolders.
	if _, err := Open(filepath.Join(acct, "Lists")); err != nil {
		t.Fatal(err)
	}
	got = nil
	err = WalkFolders(acct, func(folder string, d *Dir) error {
		got = append(got, folder)
		if folder == "Lists" {
			return filepath.SkipDir
		}
		return nil
	})
	if want := []string{".hidden", "cur", "Entwürfe", "INBOX", "Lists", "a//b"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("walk with SkipDir = %q, %v; want %q", got, err, want)
	}

	if err := WalkFolders(filepath.Join(root, "missing"), func(string, *Dir) error {
		t.Error("called for a missing account")
		return nil
	}); err != nil {
		t.Errorf("missing account: %v", err)
	}
}

func checkEncoded(t *testing.T, x, enc string) {
	t.Helper()
	if enc == "" || filepath.IsAbs(enc) || !filepath.IsLocal(enc) || filepath.Clean(enc) != enc {
		t.Fatalf("EncodeFolder(%q) = %q is not a clean local path", x, enc)
	}
	for c := range strings.SplitSeq(enc, "/") {
		switch {
		case c == "", c == ".", c == "..", c[0] == '.', strings.ContainsAny(c, "\x00\\"),
			strings.HasSuffix(c, " "),
			strings.EqualFold(c, "cur"), strings.EqualFold(c, "new"), strings.EqualFold(c, "tmp"):
			t.Fatalf("EncodeFolder(%q) = %q has bad component %q", x, enc, c)
		}
	}
}

func FuzzFolderRoundTrip(f *testing.F) {
	for _, tt := range folderTests {
		f.Add(tt.name)
	}
	f.Fuzz(func(t *testing.T, x string) {
		enc := EncodeFolder(x)
		checkEncoded(t, x, enc)
		dec, err := DecodeFolder(enc)
		if err != nil || dec != x {
			t.Fatalf("DecodeFolder(EncodeFolder(%q)) = %q, %v", x, dec, err)
		}
		p, err := FolderDir("/r", "acct", x)
		if x == "" {
			return
		}
		if err != nil || !strings.HasPrefix(p, "/r/acct/") {
			t.Fatalf("FolderDir(%q) = %q, %v", x, p, err)
		}
	})
}

func FuzzDecodeFolder(f *testing.F) {
	for _, tt := range folderTests {
		f.Add(tt.enc)
	}
	f.Add("../x")
	f.Add("a/%2E%2E")
	f.Fuzz(func(t *testing.T, rel string) {
		dec, err := DecodeFolder(rel)
		if err != nil {
			return
		}
		if enc := EncodeFolder(dec); enc != rel {
			t.Fatalf("DecodeFolder(%q) = %q, which encodes to %q", rel, dec, enc)
		}
		checkEncoded(t, dec, rel)
	})
}
