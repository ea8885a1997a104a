package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

func TestLFWriter(t *testing.T) {
	for _, tc := range []struct {
		in   []string // the Writes
		want string
	}{
		{[]string{"a\r\nb\r\n"}, "a\nb\n"},
		{[]string{"a\r", "\nb\r", "\n"}, "a\nb\n"},       // CRLF split across Writes
		{[]string{"a\rb\r", "c\r"}, "a\rb\rc\r"},         // lone CRs stay, also the last
		{[]string{"\r", "\r", "\n", "x"}, "\r\nx"},       // CR CR LF: the first CR stays
		{[]string{"", "\r\n", "", "\r\n\r\n"}, "\n\n\n"}, // empty Writes
	} {
		var buf bytes.Buffer
		lf := &lfWriter{w: &buf}
		for _, s := range tc.in {
			if n, err := lf.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if err := lf.flush(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tc.want || lf.n != int64(len(tc.want)) {
			t.Errorf("lfWriter(%q) = %q (n %d), want %q", tc.in, buf.String(), lf.n, tc.want)
		}
	}
}

func TestReadMessage(t *testing.T) {
	lf := "Subject: x\nMessage-ID: <a@b>\n\nbody\rline\n" // a lone CR stays
	crlf := "Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody\rline\r\n"
	want := sha256.Sum256([]byte(lf))
	read := func(s string, o readOpts) (string, digest, int64, string) {
		t.Helper()
		id, sum, size, bad, err := readMessage(iotest.OneByteReader(strings.NewReader(s)), o)
		if err != nil {
			t.Fatal(err)
		}
		return id, sum, size, bad
	}
	if id, sum, size, bad := read(lf, readOpts{}); id != "a@b" || sum != want || size != int64(len(lf)) || bad != "" {
		t.Errorf("LF file: %q %s %d %q", id, sum, size, bad)
	}
	if id, sum, size, _ := read(crlf, readOpts{crlf: true}); id != "a@b" || sum != want || size != int64(len(lf)) {
		t.Errorf("CRLF from the server: %q %s %d, want %s", id, sum, size, digest(want))
	}
	// mbsync's X-TUID line is left out when asked, only one of them, only
	// in the header.
	tuid := "Subject: x\nMessage-ID: <a@b>\nX-TUID: 0123456789ab\n\nbody\rline\n"
	if _, sum, _, _ := read(tuid, readOpts{dropTUID: true}); sum != want {
		t.Errorf("X-TUID not left out")
	}
	if _, sum, _, _ := read(tuid, readOpts{}); sum == want {
		t.Errorf("X-TUID left out without dropTUID")
	}
	two := "X-TUID: 0123456789ab\n" + tuid
	if _, sum, _, _ := read(two, readOpts{dropTUID: true}); sum == want {
		t.Errorf("two X-TUID lines: both left out")
	}
	inBody := "Subject: x\nMessage-ID: <a@b>\n\nX-TUID: 0123456789ab\n"
	if _, sum, _, _ := read(inBody, readOpts{dropTUID: true}); sum != sha256.Sum256([]byte(inBody)) {
		t.Errorf("X-TUID in the body left out")
	}
	// A header line longer than the reader's buffer.
	long := "Subject: " + strings.Repeat("x", 100<<10) + "\nMessage-ID: <long@b>\n\nbody\n"
	if id, sum, _, _ := read(long, readOpts{}); id != "long@b" || sum != sha256.Sum256([]byte(long)) {
		t.Errorf("long header line: %q", id)
	}
	if id, _, _, bad := read("Subject: x\n\nbody\n", readOpts{}); id != "" || bad != "no Message-ID" {
		t.Errorf("no Message-ID: %q %q", id, bad)
	}
	if id, _, _, bad := read("", readOpts{}); id != "" || bad == "" {
		t.Errorf("empty message: %q %q", id, bad)
	}
}

// Every corpus message hashes the same as the server's bytes (CRLF) and as
// a file (LF); corpusMirror is what the server holds after seeding.
func TestExpectMessage(t *testing.T) {
	for i := range 30 {
		m := corpus.At(2, i, corpus.Options{})
		e := expectMessage(m, true)
		id, sum, size, _, err := readMessage(bytes.NewReader(m.Raw), readOpts{crlf: true})
		if err != nil || id != m.MessageID || sum != e.Sum || size != e.Size {
			t.Fatalf("message %d: read %q %s %d %v, expected %q %s %d", i, id, sum, size, err, m.MessageID, e.Sum, e.Size)
		}
		file := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		if _, sum, _, _, _ := readMessage(bytes.NewReader(file), readOpts{}); sum != e.Sum || int64(len(file)) != e.Size {
			t.Fatalf("message %d: the file hashes otherwise", i)
		}
		if letters, kw := splitFlags(m.Flags); e.Flags != letters || e.Keywords != kw {
			t.Fatalf("message %d: flags %q %q", i, e.Flags, e.Keywords)
		}
		if e := expectMessage(m, false); e.Flags != "" || e.Keywords != "" {
			t.Fatalf("message %d without flags: %q %q", i, e.Flags, e.Keywords)
		}
	}
}

func TestFolderLayouts(t *testing.T) {
	mb := &mbsyncReplica{root: "/x"}
	pf := &postfachReplica{store: "/x"}
	fm := &fetchmailReplica{root: "/x"}
	for _, tc := range []struct {
		r         replica
		rel, want string // want "" : an error
	}{
		{mb, "INBOX", "INBOX"},
		{mb, "Archive", "Archive"},
		{mb, "Lists/Go", "Lists/Go"},
		{mb, "Entw&APw-rfe", "Entwürfe"},
		{mb, "A&-B", "A&B"},
		{mb, "&ZeVnLIqe-/x", "日本語/x"},
		{mb, ".", ""},
		{mb, "Entwürfe", ""},    // isync 1.4 keeps the server's modified UTF-7
		{mb, "Entw&APw", ""},    // unterminated
		{mb, "Entw&AP-rfe", ""}, // not UTF-16
		{pf, "bench/INBOX", "INBOX"},
		{pf, "bench/Entwürfe", "Entwürfe"},
		{pf, "bench/Lists/Go", "Lists/Go"},
		{pf, "bench/%25x", "%x"},
		{pf, "bench/%78", ""}, // not how postfach encodes "x"
		{pf, "INBOX", ""},
		{pf, "other/INBOX", ""},
		{pf, ".", ""},
		{fm, ".", "INBOX"},
		{fm, "INBOX", ""},
	} {
		got, err := tc.r.Folder(tc.rel)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%T.Folder(%q) = %q, want an error", tc.r, tc.rel, got)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%T.Folder(%q) = %q, %v; want %q", tc.r, tc.rel, got, err, tc.want)
		}
	}
}

// postfach's keywords come from its index, by file path.
func TestPostfachKeywords(t *testing.T) {
	store := t.TempDir()
	st, err := index.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		folder, path, file string
		kw                 []string
	}{
		{"INBOX", "bench/INBOX", "cur/a,U=1:2,S", []string{"$Label1", "$Important"}},
		{"INBOX", "bench/INBOX", "new/b", nil},
		{"Entwürfe", "bench/Entwürfe", "cur/c,U=3:2,", []string{"x"}},
	}
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		acct, err := tx.EnsureAccount(postfachAccount)
		if err != nil {
			return err
		}
		for i, r := range rows {
			f, err := tx.EnsureFolder(acct, r.folder, r.path)
			if err != nil {
				return err
			}
			m := &index.NewMessage{Message: index.Message{Folder: f.ID, Key: fmt.Sprint(i), File: r.file, Keywords: r.kw}, DeferText: true}
			if _, err := tx.AddMessage(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	got, err := (&postfachReplica{store: store}).Keywords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		filepath.Join(store, "bench/INBOX/cur/a,U=1:2,S"):   "$Important $Label1",
		filepath.Join(store, "bench/INBOX/new/b"):           "",
		filepath.Join(store, "bench/Entwürfe/cur/c,U=3:2,"): "x",
	}
	if !maps.Equal(got, want) {
		t.Errorf("Keywords = %v, want %v", got, want)
	}
}

// keywordsReplica is postfach's layout with the keywords given, instead of
// read from an index.
type keywordsReplica struct {
	*postfachReplica
	kw map[string]string
}

func (r keywordsReplica) Keywords(context.Context) (map[string]string, error) { return r.kw, nil }

// testStore is a tool's Maildir written by a test, as the tool writes it.
type testStore struct {
	rp    replica
	dirOf func(folder string) string // the folder's directory
	tuid  bool                       // add an X-TUID line, as mbsync does
	kw    map[string]string          // keywordsReplica's keywords
	paths map[string]string          // Message-ID -> file
	msgs  []corpus.Message
}

var mbsyncDirs = map[string]string{"INBOX": "INBOX", "Archive": "Archive", "Lists/Go": "Lists/Go", "Entwürfe": "Entw&APw-rfe"}

// newTestStore writes msgs into a fresh Maildir, in the layout of an mbsync
// or postfach replica: LF line ends, flags in the file name, in cur/ (or
// new/ for every third message).
func newTestStore(t *testing.T, tool string, msgs []corpus.Message) *testStore {
	root := t.TempDir()
	s := &testStore{paths: map[string]string{}, msgs: msgs}
	switch tool {
	case "mbsync":
		s.rp = &mbsyncReplica{root: root}
		s.dirOf = func(f string) string { return filepath.Join(root, mbsyncDirs[f]) }
		s.tuid = true
	case "postfach":
		s.kw = map[string]string{}
		s.rp = keywordsReplica{&postfachReplica{store: root}, s.kw}
		s.dirOf = func(f string) string { return filepath.Join(root, "bench", maildir.EncodeFolder(f)) }
		if err := os.MkdirAll(filepath.Join(root, ".postfach"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"INBOX", "Archive", "Lists/Go", "Entwürfe"} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(s.dirOf(f), sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, m := range msgs {
		letters, kw := splitFlags(m.Flags)
		sub := "cur"
		if i%3 == 0 {
			sub = "new"
		}
		p := filepath.Join(s.dirOf(folderName(m.Folder)), sub, fmt.Sprintf("%d.bench,U=%d:2,%s", i, i+1, letters))
		body := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		if s.tuid {
			end := bytes.Index(body, []byte("\n\n"))
			body = slices.Concat(body[:end+1], []byte("X-TUID: 0123456789ab\n"), body[end+1:])
		}
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		s.paths[m.MessageID] = p
		if s.kw != nil {
			s.kw[p] = kw
		}
	}
	return s
}

func (s *testStore) verify(want mirror) error {
	_, err := verifyReplica(context.Background(), s.rp, want, true)
	return err
}

// TestVerifyReplica: a tool's Maildir that holds the corpus verifies; each
// kind of damage is reported, naming the folder, the message and what
// differs.
func TestVerifyReplica(t *testing.T) {
	msgs := corpus.Generate(4, 40, corpus.Options{})
	msgs[5].Flags = append(msgs[5].Flags, "$Label1", imap.FlagForwarded) // a keyword and P for sure
	want := mirror{}
	for _, f := range []string{"INBOX", "Archive", "Lists/Go", "Entwürfe"} {
		want[f] = map[string]mirrorMsg{}
	}
	for _, m := range msgs {
		want[folderName(m.Folder)][m.MessageID] = expectMessage(m, true)
	}
	// The message broken, and another in another folder.
	victim, other := msgs[5], msgs[0]
	for _, m := range msgs[1:] {
		if folderName(m.Folder) != folderName(victim.Folder) {
			other = m
			break
		}
	}
	vf, of := folderName(victim.Folder), folderName(other.Folder)
	id := "<" + victim.MessageID + ">"
	// A directory each tool makes for no folder: isync 1.4 keeps the
	// server's modified UTF-7, postfach encodes "x" as itself.
	alien := map[string]string{"mbsync": "Entwürfe", "postfach": "bench/%78"}
	for _, tool := range []string{"mbsync", "postfach"} {
		t.Run(tool, func(t *testing.T) {
			if err := newTestStore(t, tool, msgs).verify(want); err != nil {
				t.Fatalf("intact store: %v", err)
			}
			for _, tc := range []struct {
				name   string
				tools  string // "" both
				damage func(t *testing.T, s *testStore)
				want   []string
			}{
				{"flipped flag", "", func(t *testing.T, s *testStore) {
					p := s.paths[victim.MessageID]
					rename(t, p, filepath.Join(filepath.Dir(p), toggleLetter(filepath.Base(p), 'F')))
				}, []string{vf + ": " + id + " flags"}},
				{"P lost", "", func(t *testing.T, s *testStore) {
					p := s.paths[victim.MessageID]
					rename(t, p, filepath.Join(filepath.Dir(p), toggleLetter(filepath.Base(p), 'P')))
				}, []string{vf + ": " + id + " flags"}},
				{"truncated body", "", func(t *testing.T, s *testStore) {
					p := s.paths[victim.MessageID]
					st, _ := os.Stat(p)
					if err := os.Truncate(p, st.Size()-20); err != nil {
						t.Fatal(err)
					}
				}, []string{vf + ": " + id + " content differs"}},
				{"one byte changed", "", func(t *testing.T, s *testStore) {
					editFile(t, s.paths[victim.MessageID], func(b []byte) []byte { b[len(b)-3] ^= 1; return b })
				}, []string{vf + ": " + id + " content differs"}},
				{"CRLF kept", "", func(t *testing.T, s *testStore) {
					editFile(t, s.paths[victim.MessageID], func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) })
				}, []string{vf + ": " + id + " content differs"}},
				{"missing", "", func(t *testing.T, s *testStore) {
					if err := os.Remove(s.paths[victim.MessageID]); err != nil {
						t.Fatal(err)
					}
				}, []string{vf + ": " + id + " missing"}},
				{"duplicate", "", func(t *testing.T, s *testStore) {
					p := s.paths[victim.MessageID]
					copyFile(t, p, filepath.Join(filepath.Dir(filepath.Dir(p)), "cur", "copy.bench:2,"))
				}, []string{vf + ": " + id + " twice"}},
				{"in the wrong folder", "", func(t *testing.T, s *testStore) {
					p := s.paths[victim.MessageID]
					rename(t, p, filepath.Join(s.dirOf(of), "cur", filepath.Base(p)))
				}, []string{vf + ": " + id + " missing", of + ": " + id + " should not be there"}},
				{"left in tmp", "", func(t *testing.T, s *testStore) {
					copyFile(t, s.paths[victim.MessageID], filepath.Join(s.dirOf(vf), "tmp", "x"))
				}, []string{vf + ": ", "left in tmp/"}},
				{"no Message-ID", "", func(t *testing.T, s *testStore) {
					if err := os.WriteFile(filepath.Join(s.dirOf(of), "cur", "x:2,"), []byte("Subject: x\n\nbody\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}, []string{of + ": ", "no Message-ID"}},
				{"folder missing", "", func(t *testing.T, s *testStore) {
					if err := os.RemoveAll(s.dirOf(of)); err != nil {
						t.Fatal(err)
					}
				}, []string{"folder " + of + " missing"}},
				{"folder the tool does not make", "", func(t *testing.T, s *testStore) {
					if err := os.MkdirAll(filepath.Join(s.rp.Maildir(), alien[tool], "cur"), 0o755); err != nil {
						t.Fatal(err)
					}
				}, []string{"directory ", alien[tool], "not a folder name"}},
				{"keyword lost", "postfach", func(t *testing.T, s *testStore) {
					s.kw[s.paths[victim.MessageID]] = ""
				}, []string{vf + ": " + id + ` keywords "", want "$Label1"`}},
				{"keyword added", "postfach", func(t *testing.T, s *testStore) {
					s.kw[s.paths[other.MessageID]] = "$Junk"
				}, []string{of + ": <" + other.MessageID + `> keywords "$Junk"`}},
				{"no index row", "postfach", func(t *testing.T, s *testStore) {
					delete(s.kw, s.paths[victim.MessageID])
				}, []string{vf + ": " + id + " has no row in the tool's index"}},
				{"X-TUID in postfach's file", "postfach", func(t *testing.T, s *testStore) {
					editFile(t, s.paths[victim.MessageID], func(b []byte) []byte { return append([]byte("X-TUID: 0123456789ab\n"), b...) })
				}, []string{vf + ": " + id + " content differs"}},
			} {
				if tc.tools != "" && tc.tools != tool {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					s := newTestStore(t, tool, msgs)
					tc.damage(t, s)
					err := s.verify(want)
					if err == nil {
						t.Fatal("no difference found")
					}
					for _, w := range tc.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("the error does not say %q:\n%v", w, err)
						}
					}
				})
			}
		})
	}
	// mbsync does not sync keywords: its Maildir's are not compared.
	s := newTestStore(t, "mbsync", msgs)
	if _, ok := s.rp.(keywordKeeper); ok {
		t.Errorf("mbsync's replica claims to keep keywords")
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func editFile(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServerChangeExpect(t *testing.T) {
	base := mirror{
		"INBOX":   {"a": {UID: 1, Flags: "S"}, "b": {UID: 2}, "c": {UID: 3, Flags: "F"}},
		"Archive": {"d": {UID: 7}},
	}
	added := corpus.At(1, 0, corpus.Options{Folders: []string{"Archive"}})
	ch := &serverChange{
		folders: map[string]*folderChange{
			"INBOX":   {seen: imap.UIDSetNum(2, 3), unseen: imap.UIDSetNum(1)},
			"Archive": {appended: 1},
		},
		appended: []corpus.Message{added},
	}
	got, err := ch.expect(base)
	if err != nil {
		t.Fatal(err)
	}
	want := mirror{
		"INBOX":   {"a": {}, "b": {Flags: "S"}, "c": {Flags: "FS"}},
		"Archive": {"d": {}, added.MessageID: expectMessage(added, true)},
	}
	var d diffs
	diffMirror(&d, want, got, true)
	if err := d.err(); err != nil {
		t.Error(err)
	}
	if base["INBOX"]["a"].Flags != "S" {
		t.Errorf("expect changed base")
	}
	ch.folders["INBOX"].seen = imap.UIDSetNum(9)
	if _, err := ch.expect(base); err == nil {
		t.Errorf("a UID not in base: no error")
	}
}

// TestVerifyServer reads a real Dovecot account: seeded with the corpus it
// verifies; a flag, a keyword, a body or a duplicate on the server that the
// corpus does not have is reported.
func TestVerifyServer(t *testing.T) {
	d := testenv.StartDovecot(t)
	srv := &dovecotServer{d: d, user: testenv.DefaultUser.Name, pass: testenv.DefaultUser.Password}
	const seed, n = 5, 40
	if _, err := srv.seed(seed, n, corpus.Options{}); err != nil {
		t.Fatal(err)
	}
	want := corpusMirror(seed, n, corpus.Options{})
	got, err := verifyServer(srv, want, false)
	if err != nil {
		t.Fatalf("seeded account: %v", err)
	}
	msgs := corpus.Generate(seed, n, corpus.Options{})
	// Three INBOX messages: one gets \Flagged, one a keyword, one is
	// replaced by a truncated copy; a fourth is APPENDed a second time.
	var inbox []corpus.Message
	for _, m := range msgs {
		if folderName(m.Folder) == "INBOX" {
			inbox = append(inbox, m)
		}
	}
	if len(inbox) < 4 {
		t.Fatalf("only %d messages in INBOX", len(inbox))
	}
	c := d.Client(t, srv.user)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uid := func(m corpus.Message) imap.UIDSet { return imap.UIDSetNum(got["INBOX"][m.MessageID].UID) }
	store := func(set imap.UIDSet, f imap.Flag) {
		t.Helper()
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{f}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendRaw := func(raw []byte) {
		t.Helper()
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	flagged, labelled, truncated, doubled := inbox[0], inbox[1], inbox[2], inbox[3]
	store(uid(flagged), imap.FlagFlagged)
	store(uid(labelled), "$Junk")
	store(uid(truncated), imap.FlagDeleted)
	if err := c.UIDExpunge(uid(truncated)).Close(); err != nil {
		t.Fatal(err)
	}
	appendRaw(truncated.Raw[:len(truncated.Raw)-40])
	appendRaw(doubled.Raw)
	_, err = verifyServer(srv, want, false)
	if err == nil {
		t.Fatal("no difference found")
	}
	for _, w := range []string{
		"INBOX: <" + flagged.MessageID + "> flags",
		"INBOX: <" + labelled.MessageID + `> keywords "$Junk`,
		"INBOX: <" + truncated.MessageID + "> content differs",
		"INBOX: <" + doubled.MessageID + "> twice",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not say %q:\n%v", w, err)
		}
	}
}
