package backup

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestManifestRoundTrip: what writeManifest writes reads back the same,
// odd path bytes included; a manifest cut short or changed is refused.
func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	es := []Entry{
		{Path: "acct/INBOX/cur/1.a.host:2,S", Size: 12, SHA256: sha256.Sum256([]byte("one"))},
		{Path: "acct/Entw\xfcrfe/new/2 \"x\"\n\\y", Size: 0, SHA256: sha256.Sum256(nil)},
		{Path: ".postfach/index.db", Size: 4096, SHA256: sha256.Sum256([]byte("db"))},
	}
	if err := writeManifest(dir, append([]Entry(nil), es...)); err != nil {
		t.Fatal(err)
	}
	got, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{es[2], es[1], es[0]} // sorted by path
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	if st, err := os.Stat(filepath.Join(dir, ManifestName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode: %v %v", st, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	for name, bad := range map[string]string{
		"cut short":     string(data[:len(data)/2]),
		"line dropped":  strings.Replace(string(data), string(data[strings.Index(string(data), "\n")+1:strings.Index(string(data), "\n")+80]), "", 1),
		"size changed":  strings.Replace(string(data), " 12 ", " 13 ", 1),
		"not one":       "hello\n",
		"empty":         "",
		"no end line":   strings.Join(strings.Split(string(data), "\n")[:3], "\n") + "\n",
		"path escaping": strings.Replace(string(data), `"acct/INBOX`, `"../INBOX`, 1),
	} {
		if _, err := parseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := readManifest(t.TempDir()); err != errNoManifest {
		t.Errorf("no manifest: %v", err)
	}
}

// FuzzParseManifest: any input is refused or parses into clean paths,
// never a panic.
func FuzzParseManifest(f *testing.F) {
	dir := f.TempDir()
	writeManifest(dir, []Entry{{Path: "a/cur/b", Size: 3}})
	data, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	f.Add(data)
	f.Add([]byte(manifestHeader))
	f.Add([]byte(manifestHeader + "end 0 x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseManifest(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if !validPath(e.Path) {
				t.Fatalf("unclean path %q", e.Path)
			}
		}
	})
}
