package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
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
		"\nset invisible\n",
		"\n  no rewrite\n",
		"\n  stripcr\n",
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

func TestToggleLetter(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    byte
		want string
	}{
		{"1.a,U=5:2,FS", 'S', "1.a,U=5:2,F"},
		{"1.a,U=5:2,FR", 'S', "1.a,U=5:2,FRS"},
		{"1.a,U=5:2,", 'S', "1.a,U=5:2,S"},
		{"1.a,U=5:2,Sab", 'F', "1.a,U=5:2,FSab"}, // Dovecot keyword letters kept
		{"1.a,U=5", 'S', "1.a,U=5:2,S"},          // from new/: gets an info
	} {
		if got := toggleLetter(tc.name, tc.l); got != tc.want {
			t.Errorf("toggleLetter(%q, %c) = %q, want %q", tc.name, tc.l, got, tc.want)
		}
	}
	if got := nameLetters("1.a,S=12:2,TSRFDab"); got != "DFRST" {
		t.Errorf("nameLetters = %q", got)
	}
	if got := imapLetters([]imap.Flag{imap.FlagSeen, "$Label1", imap.FlagAnswered, `\flagged`}); got != "FRS" {
		t.Errorf("imapLetters = %q", got)
	}
}

func TestDiffMirror(t *testing.T) {
	want := mirror{"INBOX": {"a": {Flags: "S"}, "b": {}}, "Archive": {}}
	if err := diffMirror(want, mirror{"INBOX": {"a": {Flags: "S", Path: "x"}, "b": {UID: 3}}}); err != nil {
		t.Errorf("same content: %v", err)
	}
	for _, bad := range []mirror{
		{"INBOX": {"a": {Flags: "S"}}},                             // b missing
		{"INBOX": {"a": {Flags: ""}, "b": {}}},                     // a lost \Seen
		{"INBOX": {"a": {Flags: "S"}, "b": {}, "c": {}}},           // c extra
		{"INBOX": {"a": {Flags: "S"}}, "Archive": {"b": {}}},       // b in the wrong folder
		{"INBOX": {"a": {Flags: "S"}, "b": {}}, "X": {"c": {}}},    // a folder too many
		{"INBOX": {"a": {Flags: "S"}, "b": {Flags: "F"}}, "Y": {}}, // b flagged
	} {
		if err := diffMirror(want, bad); err == nil {
			t.Errorf("diffMirror(%v) = nil, want an error", bad)
		}
	}
}

func TestFolderDirs(t *testing.T) {
	server := mirror{"INBOX": {"a": {}, "b": {}}, "Entwürfe": {"c": {}}, "Empty": {}}
	local := mirror{"INBOX": {"a": {}, "b": {}, "new": {}}, "Entw&APw-rfe": {"c": {}}}
	dirs, err := folderDirs(local, server)
	if err != nil {
		t.Fatal(err)
	}
	if dirs["INBOX"] != "INBOX" || dirs["Entw&APw-rfe"] != "Entwürfe" || len(dirs) != 2 {
		t.Errorf("folderDirs = %v", dirs)
	}
	if _, err := folderDirs(mirror{"INBOX": {"a": {}, "b": {}}}, server); err == nil {
		t.Errorf("a server folder without directory: no error")
	}
	if _, err := folderDirs(mirror{"x": {"a": {}}, "y": {"b": {}}, "z": {"c": {}}}, server); err == nil {
		t.Errorf("two directories for INBOX: no error")
	}
}

func TestMakePlan(t *testing.T) {
	seeded := map[string]int{"INBOX": 40, "Archive": 20, "Lists/Go": 20, "Entwürfe": 20}
	base := mirror{}
	for name, n := range seeded {
		base[name] = map[string]mirrorMsg{}
		for i := range n + 3 { // 3 added later, higher UIDs
			flags := ""
			if i%3 == 0 {
				flags = "S"
			}
			base[name][fmt.Sprintf("%s-%d", name, i)] = mirrorMsg{UID: imap.UID(i + 1), Flags: flags}
		}
	}
	for r := range 3 {
		p, err := makePlan(base, seeded, 10, r, 1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if p.count(p.serverSeen) != 10 || p.count(p.localSeen) != 10 || len(p.serverNew) != 10 || len(p.localNew) != 10 {
			t.Fatalf("plan sizes: %d %d %d %d", p.count(p.serverSeen), p.count(p.localSeen), len(p.serverNew), len(p.localNew))
		}
		seen := map[string]bool{}
		for _, m := range []map[string][]string{p.serverSeen, p.localSeen} {
			for f, ids := range m {
				for _, id := range ids {
					if seen[id] {
						t.Errorf("run %d: %s chosen twice", r, id)
					}
					seen[id] = true
					if base[f][id].UID > imap.UID(seeded[f]) {
						t.Errorf("run %d: %s is not a seeded message", r, id)
					}
				}
			}
		}
		want := p.expect(base, true, true)
		if got, w := want.inventory().total().Messages, base.inventory().total().Messages+20; got != w {
			t.Errorf("expect: %d messages, want %d", got, w)
		}
		for f, ids := range p.localSeen {
			for _, id := range ids {
				if strings.Contains(want[f][id].Flags, "S") == strings.Contains(base[f][id].Flags, "S") {
					t.Errorf("expect: %s's \\Seen not toggled", id)
				}
			}
		}
		for _, m := range p.localNew {
			if got := want[folderName(m.Folder)][m.MessageID]; got.Flags != "" {
				t.Errorf("expect: local new %s has flags %q", m.MessageID, got.Flags)
			}
		}
	}
	if _, err := makePlan(base, seeded, 100, 0, 1, 1000); err == nil {
		t.Errorf("100 changes in 100 messages: no error")
	}
}

func TestMbsyncTwowayRC(t *testing.T) {
	for _, twoway := range []bool{false, true} {
		dir := t.TempDir()
		p := &mbsyncPeer{bin: "/usr/bin/mbsync", tlsKeyword: "SSLType", twoway: twoway}
		if _, err := p.NewReplica(dir, upstream{Host: "127.0.0.1", Port: 143, User: "u", Password: "p"}); err != nil {
			t.Fatal(err)
		}
		rc, err := os.ReadFile(filepath.Join(dir, "mbsyncrc"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Create Near\nSync Pull\nSyncState *\n"}
		if twoway {
			want = []string{"Create Both\nSync All\nExpunge None\nSyncState *\n"}
		}
		for _, w := range append(want, "FSync yes\n", "Patterns *\n") {
			if !strings.Contains(string(rc), w) {
				t.Errorf("twoway=%v: mbsyncrc lacks %q:\n%s", twoway, w, rc)
			}
		}
	}
}

func TestApplyLocal(t *testing.T) {
	root := t.TempDir()
	write := func(rel, id string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("Message-ID: <"+id+">\nSubject: x\n\nbody\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("INBOX/cur/1.a,U=1:2,S", "a")
	write("INBOX/new/2.b,U=2", "b")
	write("Lists/Go/cur/3.c,U=1:2,RS", "c")
	for _, d := range []string{"INBOX/tmp", "Lists/Go/tmp", "Lists/Go/new"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	scan, err := scanMirror(root)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{"INBOX": "INBOX", filepath.Join("Lists", "Go"): "Lists/Go"}
	base := scan.translate(dirs)
	if err := diffMirror(mirror{"INBOX": {"a": {Flags: "S"}, "b": {}}, "Lists/Go": {"c": {Flags: "RS"}}}, base); err != nil {
		t.Fatal(err)
	}
	newMsg := corpus.At(1, 0, corpus.Options{Folders: []string{"Lists/Go"}})
	p := changePlan{localSeen: map[string][]string{"INBOX": {"a", "b"}, "Lists/Go": {"c"}}, localNew: []corpus.Message{newMsg}}
	if err := applyLocal(base, root, dirs, p); err != nil {
		t.Fatal(err)
	}
	after, err := scanMirror(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := diffMirror(p.expect(base, false, true), after.translate(dirs)); err != nil {
		t.Error(err)
	}
	for _, f := range []string{"INBOX/cur/1.a,U=1:2,", "INBOX/cur/2.b,U=2:2,S", "Lists/Go/cur/3.c,U=1:2,R"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("after the renames: %v", err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "Lists/Go/new")); len(ents) != 1 || strings.ContainsAny(ents[0].Name(), ",:") {
		t.Errorf("new/ holds %v, want one file without U= or info", ents)
	}
}
