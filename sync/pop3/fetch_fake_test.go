package pop3

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// fakeStore is a local store that scripted servers fill, one Fetch per
// script.
type fakeStore struct {
	t    *testing.T
	root string
	st   *index.Store
}

func newFakeStore(t *testing.T) *fakeStore {
	t.Helper()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fakeStore{t: t, root: root, st: st}
}

// run runs Fetch against a server playing script, with the deletion
// policy given.
func (s *fakeStore) run(script string, keep bool, deleteAfterDays int) (*FetchResult, error) {
	s.t.Helper()
	addr := startFake(s.t, script, false)
	res, err := Fetch(s.t.Context(), FetchOptions{
		Account: "a", Root: s.root, Index: s.st, Addr: addr, TLS: TLSNone,
		Username: "bob", Password: "secret", Timeout: 5 * time.Second,
		Keep: keep, DeleteAfterDays: deleteAfterDays,
	})
	if res != nil {
		s.t.Logf("Fetch: %+v, %v", *res, err)
	}
	return res, err
}

// uidls returns the stored identities.
func (s *fakeStore) uidls() map[string]index.POP3UIDL {
	s.t.Helper()
	var uidls map[string]index.POP3UIDL
	err := s.st.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("a")
		if err != nil {
			return err
		}
		uidls, err = tx.POP3UIDLs(acct)
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return uidls
}

// messages returns the stored messages, sorted, after checking that each
// file has its row (and each row its file), that nothing is pending and
// that tmp/ is empty.
func (s *fakeStore) messages() []string {
	t := s.t
	t.Helper()
	var rows []*index.Message
	var pending []index.POP3Pending
	err := s.st.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("a")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, "INBOX")
		if err != nil {
			return err
		}
		if rows, err = tx.Messages(f.ID); err != nil {
			return err
		}
		pending, err = tx.POP3PendingList(acct)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) > 0 {
		t.Errorf("%d downloads pending", len(pending))
	}
	p, _ := maildir.FolderDir(s.root, "a", "INBOX")
	dir := &maildir.Dir{Path: p}
	files, err := dir.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if tmp, err := os.ReadDir(filepath.Join(p, "tmp")); err != nil || len(tmp) > 0 {
		t.Errorf("tmp/ holds %d files (%v)", len(tmp), err)
	}
	byKey := map[string]*index.Message{}
	for _, m := range rows {
		byKey[m.Key] = m
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(dir.FilePath(f))
		if err != nil {
			t.Fatal(err)
		}
		if m := byKey[f.Key]; m == nil || m.SHA256 != sha256.Sum256(b) || m.Size != int64(len(b)) {
			t.Errorf("file %s: no row, or one that does not match it", f.Name)
		}
		delete(byKey, f.Key)
		out = append(out, string(b))
	}
	for k := range byKey {
		t.Errorf("row with key %s has no file", k)
	}
	slices.Sort(out)
	return out
}

// fakeFetch runs Fetch (keep=false) against a scripted server in a new
// store and returns the result and the stored identities.
func fakeFetch(t *testing.T, script string) (*FetchResult, map[string]index.POP3UIDL) {
	t.Helper()
	s := newFakeStore(t)
	res, err := s.run(script, false, 0)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return res, s.uidls()
}

const fakeLogin = `
	S: +OK ready
	C: CAPA
	S: +OK
	S: USER
	S: .
	C: USER bob
	S: +OK
	C: PASS secret
	S: +OK
`

// Messages 1 and 3 have the same header and size: without UIDL they
// cannot be told apart, so only 1 is fetched and deleted.
func TestFetchNoUIDL(t *testing.T) {
	res, uidls := fakeFetch(t, fakeLogin+`
		C: UIDL
		S: -ERR unknown command
		C: LIST
		S: +OK
		S: 1 22
		S: 2 22
		S: 3 22
		S: .
		C: TOP 1 0
		S: +OK
		S: Subject: one
		S:
		S: .
		C: TOP 2 0
		S: +OK
		S: Subject: two
		S:
		S: .
		C: TOP 3 0
		S: +OK
		S: Subject: one
		S:
		S: .
		C: CAPA
		S: +OK
		S: USER
		S: .
		C: RETR 1
		S: +OK
		S: Subject: one
		S:
		S: body
		S: .
		C: RETR 2
		S: +OK
		S: Subject: two
		S:
		S: body
		S: .
		C: DELE 1
		S: +OK
		C: DELE 2
		S: +OK
		C: QUIT
		S: +OK
	`)
	if !res.NoUIDL || res.New != 2 || res.Skipped != 1 || res.Deleted != 2 || res.OnServer != 3 {
		t.Errorf("result %+v", *res)
	}
	if len(uidls) != 0 {
		t.Errorf("identities of deleted messages kept: %v", uidls)
	}
}

// A repeated UIDL: the first message keeps it, the second is recognized by
// its content hash; an over-long UIDL is used as it is.
func TestFetchDuplicateUIDL(t *testing.T) {
	long := strings.Repeat("x", 100)
	s := newFakeStore(t)
	res, err := s.run(fakeLogin+`
		C: UIDL
		S: +OK
		S: 1 same
		S: 2 same
		S: 3 `+long+`
		S: .
		C: LIST
		S: +OK
		S: 1 22
		S: 2 22
		S: 3 24
		S: .
		C: TOP 2 0
		S: +OK
		S: Subject: two
		S:
		S: .
		C: CAPA
		S: +OK
		S: USER
		S: .
		C: RETR 1
		S: +OK
		S: Subject: one
		S:
		S: body
		S: .
		C: RETR 2
		S: +OK
		S: Subject: two
		S:
		S: body
		S: .
		C: RETR 3
		S: +OK
		S: Subject: three
		S:
		S: body
		S: .
		C: QUIT
		S: +OK
	`, true, 0)
	if err != nil || res.NoUIDL || res.New != 3 || res.Skipped != 0 || res.Deleted != 0 {
		t.Errorf("result %+v, %v", *res, err)
	}
	uidls := s.uidls()
	_, okSame := uidls["same"]
	_, okLong := uidls[long]
	if len(uidls) != 3 || !okSame || !okLong {
		t.Errorf("identities %v", uidls)
	}
	for id, u := range uidls {
		if u.MessageID == 0 || u.RFC822Size == 0 || len(u.HeaderSHA256) != 32 {
			t.Errorf("identity %q: %+v", id, u)
		}
	}
}
