package backup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestBackupSecondAddsOnlyChanged: after a first backup and 10 changes
// (flags changed on 4 messages, 3 removed, 3 new), the second backup's
// new files (inodes the first snapshot does not have) are exactly the 3
// new messages, byte for byte the store's, besides what every snapshot
// has of its own (its index copy, its manifest, the small marker files);
// every other message file is the first snapshot's, and the second
// snapshot holds the store's messages byte for byte under their current
// names.
func TestBackupSecondAddsOnlyChanged(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 100
	}
	s := newTestStore(t, n)
	to := filepath.Join(t.TempDir(), "backups")
	r1 := mustBackup(t, s, to, 0)

	inbox := s.messages(t, "INBOX")
	s.setFlags(t, inbox[:4])
	s.remove(t, inbox[10:13])
	added := s.deliver(t, 3)
	r2 := mustBackup(t, s, to, 0)
	checkSame(t, s, r2.Snapshot)

	first := map[string]bool{} // "dev:ino" of the first snapshot's files
	walkFiles(t, r1.Snapshot, func(rel string, fi os.FileInfo) {
		first[inode(fi)] = true
	})
	var want []string
	var wantBytes int64
	for _, id := range added {
		var m *index.Message
		err := s.st.Read(context.Background(), func(tx *index.ReadTx) error {
			var err error
			m, err = tx.MessageByID(id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		f, _ := s.folderOf(m.Folder)
		want = append(want, path.Join(f.Path, m.File))
		wantBytes += m.Size
	}
	var got []string
	walkFiles(t, r2.Snapshot, func(rel string, fi os.FileInfo) {
		if first[inode(fi)] {
			return
		}
		base := path.Base(rel)
		if rel == ".postfach/index.db" || rel == ManifestName || base == ".postfach-uidvalidity" || base == maildir.AccountMarker {
			return
		}
		got = append(got, rel)
		stored, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("%s: new in the snapshot, not in the store: %v", rel, err)
			return
		}
		b, err := os.ReadFile(filepath.Join(r2.Snapshot, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(b, stored) {
			t.Errorf("%s: the snapshot's bytes differ from the store's (%v)", rel, err)
		}
	})
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("second backup added\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r2.Copied != 3 || r2.CopiedBytes != wantBytes || r2.Linked != n-3 || r2.Files != n {
		t.Errorf("second backup: %d files, %d linked, %d copied (%d bytes); want %d, %d, 3 (%d bytes)", r2.Files, r2.Linked, r2.Copied, r2.CopiedBytes, n, n-3, wantBytes)
	}
	if r := mustVerifySnapshot(t, r2.Snapshot); len(r.Differences) != 0 {
		t.Errorf("verify: %v", r.Differences)
	}
}

// walkFiles calls fn for every regular file below dir, with its
// '/'-separated path relative to dir.
func walkFiles(t testing.TB, dir string, fn func(rel string, fi os.FileInfo)) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fn(filepath.ToSlash(rel), fi)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func inode(fi os.FileInfo) string {
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
