package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCountMaildir(t *testing.T) {
	root := t.TempDir()
	files := []string{
		"INBOX/cur/1.a,U=1:2,S",
		"INBOX/cur/2.b,U=2:2,FS",
		"INBOX/new/3.c",
		"INBOX/tmp/4.d",           // not delivered
		"Lists/Go/cur/5.e:2,RS",   // nested folder
		"Lists/Go/cur/6.f:2,",     // not seen
		".postfach/index.db",      // not a message
		"Archive/.mbsyncstate",    // not a message
		"Archive/cur/7.g:2,T",     // not seen
		"Archive/cur/8.h,S=12:2,", // S= is not a flag
	}
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := countMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	want := inventory{"INBOX": {3, 2}, "Lists/Go": {2, 1}, "Archive": {2, 0}}
	if got.String() != want.String() {
		t.Errorf("countMaildir = %s, want %s", got, want)
	}
}

func TestCompareCounts(t *testing.T) {
	server := inventory{"INBOX": {4, 1}, "Entwürfe": {2, 0}, "Lists": {0, 0}}
	ok := inventory{"INBOX": {4, 1}, "Entw&APw-rfe": {2, 0}}
	if err := compareCounts(ok, server); err != nil {
		t.Errorf("same counts under other names: %v", err)
	}
	for _, bad := range []inventory{
		{"INBOX": {4, 1}, "Entwürfe": {1, 0}},              // a message missing
		{"INBOX": {4, 0}, "Entwürfe": {2, 1}},              // seen in the wrong folder
		{"INBOX": {3, 1}, "Entwürfe": {3, 0}},              // message in the wrong folder
		{"INBOX": {4, 1}, "Entwürfe": {2, 0}, "X": {1, 0}}, // one too many
	} {
		if err := compareCounts(bad, server); err == nil {
			t.Errorf("compareCounts(%s, %s) = nil, want an error", bad, server)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		k     int
		sizes []int
		want  []int
	}{
		{100, []int{3982, 1998, 2063, 1957}, []int{40, 20, 21, 19}},
		{10, []int{0, 5, 0}, []int{0, 5, 0}},
		{3, []int{1, 1, 1, 1}, []int{1, 1, 1, 0}},
		{5, nil, nil},
	} {
		got := spread(tc.k, tc.sizes)
		for i, n := range got {
			if n > tc.sizes[i] {
				t.Errorf("spread(%d, %v) = %v: more than the folder holds", tc.k, tc.sizes, got)
			}
		}
		if len(tc.sizes) > 0 && !slices.Equal(got, tc.want) {
			t.Errorf("spread(%d, %v) = %v, want %v", tc.k, tc.sizes, got, tc.want)
		}
	}
}

func TestMedianSample(t *testing.T) {
	s := medianSample([]sample{{Wall: 3 * time.Second, MaxRSSKiB: 10}, {Wall: time.Second, MaxRSSKiB: 30}, {Wall: 2 * time.Second, MaxRSSKiB: 20}})
	if s.Wall != 2*time.Second || s.MaxRSSKiB != 20 {
		t.Errorf("median = %+v", s)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"/usr/bin/mbsync", "-c", "/tmp/a b/rc", "it's"})
	want := `/usr/bin/mbsync -c '/tmp/a b/rc' 'it'\''s'`
	if got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
	if !strings.Contains(tomlString(`a"b\c`), `a\"b\\c`) {
		t.Errorf("tomlString = %s", tomlString(`a"b\c`))
	}
}

func TestFetchmailRC(t *testing.T) {
	up := upstream{Host: "127.0.0.1", Port: 1110, User: `te"st`, Password: `p\w`}
	rc := fetchmailRC(up, "/bin/maildeliver", "/tmp/a b/maildir")
	for _, want := range []string{
		"poll 127.0.0.1 service 1110 protocol POP3 auth password uidl\n",
		`user "te\"st" password "p\\w"`,
		"\n  keep\n",
		"sslproto '' no sslcertck",
		`mda "/bin/maildeliver '/tmp/a b/maildir'"`,
	} {
		if !strings.Contains(rc, want) {
			t.Errorf("fetchmailrc lacks %q:\n%s", want, rc)
		}
	}
}

func TestPostfachFetched(t *testing.T) {
	r := &postfachReplica{}
	if _, ok := r.Fetched(); ok {
		t.Errorf("Fetched of no output: ok")
	}
	r.out = []byte("bench: 10000 new (21.3 MB), 0 deleted on the server in 5.2s\n")
	if n, ok := r.Fetched(); !ok || n != 10000 {
		t.Errorf("Fetched = %d, %v; want 10000, true", n, ok)
	}
	r.out = []byte("bench: 0 new (0 B), 0 deleted on the server in 40ms\n")
	if n, ok := r.Fetched(); !ok || n != 0 {
		t.Errorf("Fetched = %d, %v; want 0, true", n, ok)
	}
}
