package mirrortest_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestCompareSeesEverything: after a clean sync Compare finds nothing;
// then each kind of damage, made to its own message or folder, is
// reported: a local-only folder, a row without file, a file without row,
// rows of a folder that exists nowhere, a server message missing locally,
// a local message missing on the server, a second copy of a message,
// a truncated file, and a $Forwarded (P) flag set on one side only.
func TestCompareSeesEverything(t *testing.T) {
	d := testenv.StartDovecot(t)
	user := testenv.DefaultUser.Name
	d.Seed(t, user, corpus.Generate(8, 40, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pass, _ := d.Password(user)
	_, err = imapsync.Sync(context.Background(), imapsync.Options{Account: "acct", Root: root, Index: st,
		Endpoint: imapsync.Endpoint{Addr: d.IMAPAddr(), TLS: "none", Username: user, Password: pass}})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Client(t, user)
	compare := func() []string {
		server, err := mirrortest.ServerFolders(c)
		if err != nil {
			t.Fatal(err)
		}
		return mirrortest.Compare(context.Background(), server, root, "acct", st)
	}
	if diffs := compare(); len(diffs) > 0 {
		t.Fatalf("after a clean sync:\n%s", strings.Join(diffs, "\n"))
	}

	dir := func(folder string) *maildir.Dir {
		p, err := maildir.FolderDir(root, "acct", folder)
		if err != nil {
			t.Fatal(err)
		}
		return &maildir.Dir{Path: p}
	}
	inbox, archive := dir("INBOX"), dir("Archive")
	es, err := inbox.Scan()
	if err != nil || len(es) < 6 {
		t.Fatalf("INBOX: %d files, %v", len(es), err)
	}
	var want []string

	// A row without file (and so a server message missing locally).
	if err := os.Remove(inbox.FilePath(es[0])); err != nil {
		t.Fatal(err)
	}
	want = append(want, "row "+es[0].Key+" (uid ", "uid "+itoa(es[0].UID)+": 0 local files")
	// A second copy of a message.
	copyName := "1.2_3.copy,U=" + itoa(es[1].UID) + ":2,"
	data, err := os.ReadFile(inbox.FilePath(es[1]))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(inbox.Path, "cur", copyName), data)
	want = append(want, "uid "+itoa(es[1].UID)+": 2 local files", "cur/"+copyName+" has no index row")
	// A truncated file.
	if err := os.WriteFile(inbox.FilePath(es[2]), data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	want = append(want, "uid "+itoa(es[2].UID)+": content differs", "uid "+itoa(es[2].UID)+": row says")
	// A local message the server does not have, with a row.
	if err := os.Rename(inbox.FilePath(es[3]), filepath.Join(inbox.Path, "cur", es[3].Key+",U=999999:2,S")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "file cur/"+es[3].Key+",U=999999:2,S: not on the server", "uid "+itoa(es[3].UID)+": 0 local files")
	// A file without row.
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		a, _ := tx.Account("acct")
		f, err := tx.FolderByName(a, "INBOX")
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Key == es[4].Key {
				return tx.DeleteMessage(r.ID)
			}
		}
		t.Fatalf("no row for %s", es[4].Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "file "+es[4].Sub+"/"+es[4].Name+" has no index row")
	// $Forwarded on the server only.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(imap.UID(es[5].UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagForwarded}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	want = append(want, "uid "+itoa(es[5].UID)+": local flags")
	// A local-only folder.
	writeFile(t, filepath.Join(root, "acct", "Local", "cur", "1.2_4.host:2,S"), data)
	os.MkdirAll(filepath.Join(root, "acct", "Local", "new"), 0o700)
	os.MkdirAll(filepath.Join(root, "acct", "Local", "tmp"), 0o700)
	want = append(want, `folder "Local": local only`)
	// Rows of a folder that exists nowhere.
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		a, _ := tx.Account("acct")
		f, err := tx.EnsureFolder(a, "Ghost", "acct/Ghost")
		if err != nil {
			return err
		}
		nm := &index.NewMessage{}
		nm.Folder, nm.Key, nm.File, nm.UID = f.ID, "1.2_5.ghost", "cur/1.2_5.ghost,U=1:2,", 1
		_, err = tx.AddMessage(nm)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, `folder "Ghost": in the index (1 rows), not on the server`)
	// A server message missing locally: a whole folder's worth.
	aes, _ := archive.Scan()
	for _, e := range aes {
		os.Remove(archive.FilePath(e))
	}
	if len(aes) == 0 {
		t.Fatal("Archive is empty")
	}
	want = append(want, `folder "Archive" uid `+itoa(aes[0].UID)+": 0 local files")

	diffs := strings.Join(compare(), "\n")
	for _, w := range want {
		if !strings.Contains(diffs, w) {
			t.Errorf("Compare does not report %q; it found:\n%s", w, diffs)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
