package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// edgeMessages are stored besides the corpus: what mboxrd quoting and
// the export's added lines must survive.
var edgeMessages = []string{
	"Subject: from lines\n\nFrom the start\n>From quoted\n>>From twice\nFrom\nFrom:\n",
	"Subject: no newline at the end\n\nFrom x",
	"Status: RO\nX-Status: F\nX-Keywords: theirs\nSubject: has the headers already\n\nbody\n",
	"X-Postfach-Export: v=1; added=0; flags=-; eol=yes; sha256=00\n\nlooks like ours\n",
	"Subject: blank lines\n\n\n\n\nFrom \n\n",
	"Subject: binary\n\n\x00\x01\xff\r bare CR\rFrom \r\n",
	"Return-Path: <bounce+x@example.org>\nSubject: sender\n\nx\n",
}

// content is what a message is, for comparing stores: its folder, bytes,
// flags, keywords and internal date.
type content struct {
	account, folder string
	flags           maildir.Flags
	keywords        string
	date            int64
	sha             [32]byte
}

func (c content) String() string {
	return fmt.Sprintf("%s/%s %x flags %s kw %q date %d", c.account, c.folder, c.sha[:6], c.flags.Info(), c.keywords, c.date)
}

// storeContent returns the messages of the store at root with the
// index at dbPath (opened from a copy: the snapshot is not changed), as
// sorted content lines, and the folders it has; each file is read and
// compared with its row.
func storeContent(t *testing.T, root, dbPath string) (msgs []string, folders []string) {
	t.Helper()
	cpy := filepath.Join(t.TempDir(), "index.db")
	data, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cpy, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := index.Open(cpy)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Read(context.Background(), func(tx *index.ReadTx) error {
		accts, err := tx.Accounts()
		if err != nil {
			return err
		}
		for _, a := range accts {
			fs, err := tx.Folders(a.ID)
			if err != nil {
				return err
			}
			for _, f := range fs {
				folders = append(folders, a.Name+"/"+f.Name)
				ms, err := tx.Messages(f.ID)
				if err != nil {
					return err
				}
				for _, m := range ms {
					raw, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path), filepath.FromSlash(m.File)))
					if err != nil {
						return err
					}
					c := content{account: a.Name, folder: f.Name, flags: m.Flags, date: m.InternalDate.Unix(), sha: sha256.Sum256(raw)}
					kw := slices.Clone(m.Keywords)
					sort.Strings(kw)
					c.keywords = strings.Join(kw, " ")
					if c.sha != m.SHA256 {
						t.Errorf("%s: the file differs from its row", c)
					}
					msgs = append(msgs, c.String())
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(msgs)
	sort.Strings(folders)
	return msgs, folders
}

// TestFormatsRestoreSameContent: a store exported as a directory, a
// tar.zst and an mbox export; each verifies clean, and each, made a
// snapshot directory by Materialize, holds the store's messages (bytes,
// flags, keywords, internal date, folder) and folders, no more, no less.
func TestFormatsRestoreSameContent(t *testing.T) {
	n := 600
	if testing.Short() {
		n = 150
	}
	s := newTestStore(t, n)
	edge := s.folders["Lists/Go"].ID
	for i, m := range edgeMessages {
		kws := []string{"$Label1", "odd%kw"}[:i%3]
		fl := maildir.Flags(i*11) & 0x3f
		if _, err := s.st.Append(context.Background(), edge, strings.NewReader(m), fl, kws, time.Unix(1700000000+int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	// A folder whose name needs encoding, with a message.
	var uni *index.Folder
	err := s.st.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		rel, err := index.FolderPath("acct", "Entwürfe/a.mbox")
		if err != nil {
			return err
		}
		uni, err = tx.EnsureFolder(a, "Entwürfe/a.mbox", rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.st.Dir(*uni)
	if _, err := maildir.Open(d.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.Append(context.Background(), uni.ID, strings.NewReader("Subject: ü\n\nx\n"), maildir.FlagSeen, nil, time.Unix(1600000000, 0)); err != nil {
		t.Fatal(err)
	}
	liveDB := filepath.Join(t.TempDir(), "live.db")
	if err := s.st.SnapshotInto(context.Background(), liveDB); err != nil {
		t.Fatal(err)
	}
	wantMsgs, wantFolders := storeContent(t, s.root, liveDB)
	if len(wantMsgs) != n+len(edgeMessages)+1 {
		t.Fatalf("the store has %d messages", len(wantMsgs))
	}

	to := filepath.Join(t.TempDir(), "backups")
	for _, format := range []string{FormatDir, FormatTarZst, FormatMbox} {
		t.Run(format, func(t *testing.T) {
			res, err := Backup(context.Background(), Options{Store: s.st, To: to, Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if res.Files != len(wantMsgs) || len(res.Dropped)+len(res.Mismatched) != 0 {
				t.Fatalf("backup: %+v", res)
			}
			var rep *Report
			if format == FormatTarZst {
				rep, err = VerifyArchive(context.Background(), res.Snapshot, nil)
			} else {
				rep, err = VerifySnapshot(context.Background(), res.Snapshot, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Differences) != 0 || rep.Files == 0 {
				t.Fatalf("verify: %d files, %v", rep.Files, rep.Differences)
			}
			tmp := filepath.Join(t.TempDir(), "tmp")
			dir, err := Materialize(context.Background(), res.Snapshot, tmp)
			if err != nil {
				t.Fatal(err)
			}
			if (format == FormatDir) != (dir == res.Snapshot) || format != FormatDir && !strings.HasPrefix(dir, tmp) {
				t.Fatalf("materialized at %s", dir)
			}
			if rep := mustVerifySnapshot(t, dir); len(rep.Differences) != 0 {
				t.Fatalf("verify of the materialized copy: %v", rep.Differences)
			}
			got, folders := storeContent(t, dir, filepath.Join(dir, ".postfach", "index.db"))
			if !slices.Equal(folders, wantFolders) {
				t.Errorf("folders %q, want %q", folders, wantFolders)
			}
			if !slices.Equal(got, wantMsgs) {
				for _, m := range diff(got, wantMsgs) {
					t.Error(m)
				}
			}
		})
	}
	snaps, err := List(to)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 {
		t.Fatalf("List: %+v", snaps)
	}
	for i, f := range []string{FormatDir, FormatTarZst, FormatMbox} {
		if snaps[i].Format != f || !snaps[i].Complete {
			t.Errorf("List: %+v", snaps[i])
		}
	}
}

// diff names the lines only in got, and only in want.
func diff(got, want []string) []string {
	var out []string
	g := map[string]int{}
	for _, l := range got {
		g[l]++
	}
	for _, l := range want {
		g[l]--
	}
	for l, k := range g {
		if k > 0 {
			out = append(out, fmt.Sprintf("restored but not in the store (%d): %s", k, l))
		} else if k < 0 {
			out = append(out, fmt.Sprintf("in the store, not restored (%d): %s", -k, l))
		}
	}
	sort.Strings(out)
	return out
}

// rewriteTar copies the tar.zst at src to dst, entry by entry, through
// edit: it may change an entry's content (returning it), drop it
// (returning nil), and add entries with extra after the last.
func rewriteTar(t *testing.T, src, dst string, edit func(h *tar.Header, data []byte) []byte, extra func(tw *tar.Writer)) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw, _ := zstd.NewWriter(out)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if data = edit(h, data); data == nil {
			continue
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	extra(tw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTarZstDamaged: in a tar.zst with a message changed, one left out,
// a file added, a symbolic link, a path that leaves the snapshot and a
// device, verify names each, and Materialize refuses it without writing
// anything outside its tmp; a tar.zst cut short cannot be verified nor
// materialized.
func TestTarZstDamaged(t *testing.T) {
	s := newTestStore(t, 20)
	to := t.TempDir()
	res, err := Backup(context.Background(), Options{Store: s.st, To: to, Format: FormatTarZst})
	if err != nil {
		t.Fatal(err)
	}
	inbox := s.messages(t, "INBOX")
	fi := s.folders["INBOX"]
	changed, dropped := path.Join(fi.Path, inbox[0].File), path.Join(fi.Path, inbox[1].File)
	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	rewriteTar(t, res.Snapshot, bad, func(h *tar.Header, data []byte) []byte {
		switch h.Name {
		case changed:
			data[len(data)/2] ^= 1
		case dropped:
			return nil
		}
		return data
	}, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "acct/extra", Mode: 0o600, Size: 1})
		tw.Write([]byte("x"))
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "acct/link", Linkname: "/etc/passwd"})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../escape", Mode: 0o600, Size: 1})
		tw.Write([]byte("x"))
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeChar, Name: "acct/dev", Devmajor: 1, Devminor: 3})
	})
	rep, err := VerifyArchive(context.Background(), bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		changed:      "content differs from the manifest",
		dropped:      "missing (the manifest lists it)",
		"acct/extra": "not in the manifest",
		"acct/link":  "not a regular file or directory",
		"../escape":  "a path that leaves the snapshot",
		"acct/dev":   "not a regular file or directory",
	}
	named := map[string]bool{}
	for _, d := range rep.Differences {
		named[d.Path] = true
		if w, ok := want[d.Path]; ok && !strings.Contains(d.What, w) {
			t.Errorf("%s: %q, want %q", d.Path, d.What, w)
		}
	}
	for p := range want {
		if !named[p] {
			t.Errorf("%s not named; differences: %v", p, rep.Differences)
		}
	}
	base := t.TempDir()
	tmp := filepath.Join(base, "tmp")
	if _, err := Materialize(context.Background(), bad, tmp); err == nil || !strings.Contains(err.Error(), "differences from its manifest") {
		t.Errorf("Materialize of a damaged archive: %v", err)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 1 {
		t.Errorf("Materialize wrote beside its tmp: %v", ents)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("Materialize left %v in tmp", ents)
	}

	data, err := os.ReadFile(res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short.tar.zst")
	os.WriteFile(short, data[:len(data)/2], 0o600)
	if _, err := VerifyArchive(context.Background(), short, nil); err == nil {
		t.Errorf("verify of an archive cut short did not fail")
	}
	if _, err := Materialize(context.Background(), short, tmp); err == nil {
		t.Errorf("Materialize of an archive cut short did not fail")
	}
}

// TestFormatsKeepAndIncomplete: Keep counts the snapshots of every
// format together; a tar.zst cut short (its .part and .work left by a
// backup that died) is removed by the next backup and never counted; a
// backup that fails leaves no tar.zst.
func TestFormatsKeepAndIncomplete(t *testing.T) {
	s := newTestStore(t, 10)
	to := t.TempDir()
	now := time.Date(2026, 12, 5, 2, 30, 0, 0, time.UTC)
	opts := Options{Store: s.st, To: to, Keep: 2, Now: func() time.Time { return now }}
	var made []string
	for _, f := range []string{FormatTarZst, FormatMbox, FormatDir, FormatTarZst} {
		opts.Format = f
		res, err := Backup(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, res.Snapshot)
		now = now.Add(time.Hour)
	}
	left := func() []string {
		ents, _ := os.ReadDir(to)
		var out []string
		for _, e := range ents {
			if e.Name() != ".lock" {
				out = append(out, e.Name())
			}
		}
		return out
	}
	if got, want := left(), []string{filepath.Base(made[2]), filepath.Base(made[3])}; !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
	// A backup that died: its .part and .work are removed by the next.
	stem := filepath.Join(to, "2026-12-06T000000Z")
	os.WriteFile(stem+tarPartSuffix, []byte("partial"), 0o600)
	os.Mkdir(stem+tarWorkSuffix, 0o700)
	// And one that fails now leaves nothing.
	ctx, cancel := context.WithCancel(context.Background())
	testHookCopied = cancel
	defer func() { testHookCopied = nil }()
	opts.Format = FormatTarZst
	if _, err := Backup(ctx, opts); err == nil {
		t.Fatal("a cancelled backup did not fail")
	}
	testHookCopied = nil
	if got, want := left(), []string{filepath.Base(made[2]), filepath.Base(made[3])}; !slices.Equal(got, want) {
		t.Fatalf("after a failed backup: left %q, want %q", got, want)
	}
}

// TestFormatsWhileWriting: changes between the index's copy and the
// reading of the files leave a consistent tar.zst (the removed message
// dropped from its index, verify clean) and an mbox export without the
// removed message.
func TestFormatsWhileWriting(t *testing.T) {
	for _, format := range []string{FormatTarZst, FormatMbox} {
		t.Run(format, func(t *testing.T) {
			s := newTestStore(t, 100)
			inbox := s.messages(t, "INBOX")
			renamed, moved, removed := inbox[0], inbox[1], inbox[2]
			testHookCopied = func() {
				s.setFlags(t, []*index.Message{renamed})
				if _, err := s.st.MoveTo(context.Background(), []*index.Message{moved}, s.folders["Archive"].ID); err != nil {
					t.Fatal(err)
				}
				s.remove(t, []*index.Message{removed})
				s.deliver(t, 5)
			}
			defer func() { testHookCopied = nil }()
			res, err := Backup(context.Background(), Options{Store: s.st, To: t.TempDir(), Format: format})
			testHookCopied = nil
			if err != nil {
				t.Fatal(err)
			}
			if want := path.Join(s.folders["INBOX"].Path, removed.File); len(res.Dropped) != 1 || res.Dropped[0] != want || res.Files != 99 {
				t.Errorf("%d files, dropped %q, want 99 and %q", res.Files, res.Dropped, want)
			}
			var rep *Report
			if format == FormatTarZst {
				rep, err = VerifyArchive(context.Background(), res.Snapshot, nil)
			} else {
				rep, err = VerifySnapshot(context.Background(), res.Snapshot, nil)
			}
			if err != nil || len(rep.Differences) != 0 {
				t.Fatalf("verify: %v %v", err, rep)
			}
			dir, err := Materialize(context.Background(), res.Snapshot, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if rep := mustVerifySnapshot(t, dir); len(rep.Differences) != 0 {
				t.Fatalf("verify of the materialized copy: %v", rep.Differences)
			}
			got, _ := storeContent(t, dir, filepath.Join(dir, ".postfach", "index.db"))
			if len(got) != 99 {
				t.Errorf("materialized: %d messages", len(got))
			}
		})
	}
}

// TestMaterializeForeignMbox: another tool's mboxrd file becomes a
// folder of the account "mbox", each message whole (quoting undone),
// dated by its From_ line, flagged as its Status, X-Status and
// X-Keywords lines say; an mbox export cut short (no manifest) is
// refused.
func TestMaterializeForeignMbox(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "Old Mail.mbox")
	mbox := "From a@example.org Mon Jan  2 15:04:05 2006\nSubject: one\n\n>From here\n\n" +
		"From b@example.org Tue Jan  3 15:04:05 2006\nSubject: two\nStatus: RO\nX-Status: AF\nX-Keywords: $Forwarded, work\n\nend\n\n"
	if err := os.WriteFile(p, []byte(mbox), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := Materialize(context.Background(), p, filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	got, folders := storeContent(t, out, filepath.Join(out, ".postfach", "index.db"))
	if !slices.Equal(folders, []string{"mbox/Old Mail"}) || len(got) != 2 {
		t.Fatalf("folders %q, messages %q", folders, got)
	}
	for _, m := range []struct {
		raw   string
		date  int64
		flags maildir.Flags
		kw    string
	}{
		{"Subject: one\n\nFrom here\n", 1136214245, 0, ""},
		{"Subject: two\nStatus: RO\nX-Status: AF\nX-Keywords: $Forwarded, work\n\nend\n", 1136300645,
			maildir.FlagSeen | maildir.FlagAnswered | maildir.FlagFlagged | maildir.FlagPassed, "work"},
	} {
		c := content{account: "mbox", folder: "Old Mail", date: m.date, flags: m.flags, keywords: m.kw, sha: sha256.Sum256([]byte(m.raw))}
		if !slices.Contains(got, c.String()) {
			t.Errorf("%q not restored: %q", m.raw, got)
		}
	}

	cut := filepath.Join(dir, "2026-12-05T000000Z.mbox")
	os.MkdirAll(filepath.Join(cut, "acct"), 0o700)
	os.WriteFile(filepath.Join(cut, "acct", "INBOX.mbox"), []byte(mbox), 0o600)
	if _, err := Materialize(context.Background(), cut, filepath.Join(dir, "tmp")); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("Materialize of an export without its manifest: %v", err)
	}
}

// TestMboxExportDamaged: a byte changed in an mbox of an export is named
// by verify (the mbox, against the manifest), and Materialize refuses
// the export.
func TestMboxExportDamaged(t *testing.T) {
	s := newTestStore(t, 30)
	res, err := Backup(context.Background(), Options{Store: s.st, To: t.TempDir(), Format: FormatMbox})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(res.Snapshot, "acct", "INBOX.mbox")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o600)
	rep := mustVerifySnapshot(t, res.Snapshot)
	if len(rep.Differences) != 1 || rep.Differences[0].Path != "acct/INBOX.mbox" || !strings.Contains(rep.Differences[0].What, "content differs from the manifest") {
		t.Errorf("verify: %v", rep.Differences)
	}
	if _, err := Materialize(context.Background(), res.Snapshot, t.TempDir()); err == nil || !strings.Contains(err.Error(), "acct/INBOX.mbox") {
		t.Errorf("Materialize of a damaged export: %v", err)
	}
}
