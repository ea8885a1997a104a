package main

import (
	"bytes"
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
	if got := nameLetters("1.a,S=12:2,TSRPFDab"); got != "DFPRST" {
		t.Errorf("nameLetters = %q", got)
	}
	if got := nameLetters("1.a,S=12"); got != "" {
		t.Errorf("nameLetters without info = %q", got)
	}
	letters, kw := splitFlags([]imap.Flag{imap.FlagSeen, "$Label1", imap.FlagAnswered, `\flagged`, "$forwarded", `\Recent`, "$label1", "Zz"})
	if letters != "FPRS" || kw != "$Label1 Zz" {
		t.Errorf("splitFlags = %q, %q", letters, kw)
	}
	if got := toggleFlag("FS", 'S'); got != "F" {
		t.Errorf("toggleFlag(FS, S) = %q", got)
	}
	if got := toggleFlag("DF", 'S'); got != "DFS" {
		t.Errorf("toggleFlag(DF, S) = %q", got)
	}
}

func TestDiffMirror(t *testing.T) {
	a, b := digest{1}, digest{2}
	want := mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}, "b": {Sum: b, Size: 20}}, "Archive": {}}
	var d diffs
	diffMirror(&d, want, mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1", Path: "x"}, "b": {Sum: b, Size: 20, UID: 3}}, "Archive": {}}, true)
	if err := d.err(); err != nil {
		t.Errorf("same content: %v", err)
	}
	for _, tc := range []struct {
		got  mirror
		want string
	}{
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}}, "Archive": {}}, "INBOX: <b> missing"},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Keywords: "$Label1"}, "b": {Sum: b, Size: 20}}, "Archive": {}}, `INBOX: <a> flags "", want "S"`},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}, "b": {Sum: a, Size: 20, Path: "p"}}, "Archive": {}},
			"INBOX: <b> content differs: 20 bytes (sha256 010000000000), want 20 bytes (sha256 020000000000) (p)"},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}, "b": {Sum: b, Size: 19}}, "Archive": {}}, "INBOX: <b> content differs: 19 bytes"},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S"}, "b": {Sum: b, Size: 20}}, "Archive": {}}, `INBOX: <a> keywords "", want "$Label1"`},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}, "b": {Sum: b, Size: 20}, "c": {UID: 9}}, "Archive": {}}, "INBOX: <c> should not be there (UID 9)"},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}}, "Archive": {"b": {Sum: b, Size: 20}}}, "Archive: <b> should not be there"},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}, "b": {Sum: b, Size: 20}}}, "folder Archive missing"},
		{mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S", Keywords: "$Label1"}, "b": {Sum: b, Size: 20}}, "Archive": {}, "X": {}}, "folder X should not be there"},
	} {
		var d diffs
		diffMirror(&d, want, tc.got, true)
		if err := d.err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("diffMirror(%v) = %v, want an error with %q", tc.got, err, tc.want)
		}
	}
	// Keywords are not compared for a tool that does not keep them.
	d = diffs{}
	diffMirror(&d, want, mirror{"INBOX": {"a": {Sum: a, Size: 10, Flags: "S"}, "b": {Sum: b, Size: 20}}, "Archive": {}}, false)
	if err := d.err(); err != nil {
		t.Errorf("keywords not compared: %v", err)
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
	for r, c := range []planSize{{10, 10, 10, 10}, {30, 30, 5, 4}, {2, 2, 50, 50}} {
		p, err := makePlan(base, seeded, c, r, 1, 1000, corpus.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := (planSize{p.count(p.serverSeen), len(p.serverNew), p.count(p.localSeen), len(p.localNew)}); got != c {
			t.Fatalf("plan sizes: %+v, want %+v", got, c)
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
		if got, w := want.inventory().total().Messages, base.inventory().total().Messages+c.serverNew+c.localNew; got != w {
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
	if _, err := makePlan(base, seeded, planSize{50, 1, 51, 1}, 0, 1, 1000, corpus.Options{}); err == nil {
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
	rp := &mbsyncReplica{root: root}
	var d diffs
	scan, err := scanMaildir(root, scanOpts{folderOf: rp.Folder}, &d)
	if err != nil || d.err() != nil {
		t.Fatal(err, d.err())
	}
	if got := scan.m.inventory().String(); got != "{INBOX=2/1 Lists/Go=1/1}" {
		t.Fatalf("scan: %s", got)
	}
	newMsg := corpus.At(1, 0, corpus.Options{Folders: []string{"Lists/Go"}})
	p := changePlan{localSeen: map[string][]string{"INBOX": {"a", "b"}, "Lists/Go": {"c"}}, localNew: []corpus.Message{newMsg}}
	if err := applyLocal(scan.m, scan.dirs, p); err != nil {
		t.Fatal(err)
	}
	after, err := scanMaildir(root, scanOpts{folderOf: rp.Folder}, &d)
	if err != nil || d.err() != nil {
		t.Fatal(err, d.err())
	}
	diffMirror(&d, p.expect(scan.m, false, true), after.m, false)
	if err := d.err(); err != nil {
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

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		in    string
		total int
		want  int
	}{
		{"1%", 10000, 100}, {"1%", 100000, 1000}, {"1%", 20, 1}, {"0%", 1000, 0}, {"250", 100000, 250}, {"0", 10, 0}, {"0.5%", 2000, 10},
	} {
		var s share
		if err := s.Set(tc.in); err != nil {
			t.Fatalf("Set(%q): %v", tc.in, err)
		}
		if got := s.count(tc.total); got != tc.want {
			t.Errorf("%s of %d = %d, want %d", tc.in, tc.total, got, tc.want)
		}
		if s.String() != tc.in {
			t.Errorf("String() = %q, want %q", s.String(), tc.in)
		}
	}
	for _, bad := range []string{"-1", "x%", "101%", ""} {
		var s share
		if s.Set(bad) == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

func TestLinkTree(t *testing.T) {
	src, dst := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, d := range []string{"cur", ".Archive/cur"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"cur/1:2,S": "one", ".Archive/cur/2:2,": "two", ".Archive/maildirfolder": ""}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := linkTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != body {
			t.Errorf("%s: %q, %v; want %q", name, got, err, body)
		}
	}
	// A rename in one tree leaves the other's name.
	if err := os.Rename(filepath.Join(dst, "cur/1:2,S"), filepath.Join(dst, "cur/1:2,")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "cur/1:2,S")); err != nil {
		t.Errorf("source lost its name: %v", err)
	}
}

func TestCheckDisk(t *testing.T) {
	dir := t.TempDir()
	if err := checkDisk(dir, 1, 10, corpus.Options{}, 3, "test"); err != nil {
		t.Errorf("10 small messages: %v", err)
	}
	err := checkDisk(dir, 1, 1<<40, corpus.Options{RealSizes: true}, 3, "Dovecot's and one per tool")
	if err == nil || !strings.Contains(err.Error(), "not enough disk space in "+dir) {
		t.Errorf("2^40 messages: %v", err)
	}
}

func TestEachParallel(t *testing.T) {
	opts := corpus.Options{RealSizes: true}
	i := 0
	err := eachParallel(5, 60, opts, func(m corpus.Message) error {
		if want := corpus.At(5, i, opts); m.MessageID != want.MessageID || !bytes.Equal(m.Raw, want.Raw) {
			t.Fatalf("message %d: got %s", i, m.MessageID)
		}
		i++
		return nil
	})
	if err != nil || i != 60 {
		t.Fatalf("%d messages, %v", i, err)
	}
	stop := fmt.Errorf("stop")
	i = 0
	if err := eachParallel(5, 1000, opts, func(corpus.Message) error { i++; return stop }); err != stop || i != 1 {
		t.Errorf("after an error: %d calls, %v", i, err)
	}
}
