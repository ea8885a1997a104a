package pop3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

// fakeFetch runs Fetch (keep=false) against a scripted server and returns
// the result and the stored identities.
func fakeFetch(t *testing.T, script string) (*FetchResult, map[string]index.POP3UIDL) {
	t.Helper()
	addr := startFake(t, script, false)
	root := t.TempDir()
	st, err := index.Open(index.DefaultPath(root))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := Fetch(t.Context(), FetchOptions{
		Account: "a", Root: root, Index: st, Addr: addr, TLS: TLSNone,
		Username: "bob", Password: "secret", Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	var uidls map[string]index.POP3UIDL
	err = st.Read(context.Background(), func(tx *index.ReadTx) error {
		acct, err := tx.Account("a")
		if err != nil {
			return err
		}
		uidls, err = tx.POP3UIDLs(acct)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, uidls
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
	if len(uidls) != 2 {
		t.Errorf("%d identities stored, want 2", len(uidls))
	}
	for id, u := range uidls {
		if !strings.HasPrefix(id, hashIDPrefix) || !strings.HasSuffix(id, " 22") || u.DeletedAt.IsZero() || u.MessageID == 0 {
			t.Errorf("identity %q: %+v", id, u)
		}
	}
}

// A repeated UIDL: the first message keeps it, the second is recognized by
// its content hash; an over-long UIDL is used as it is.
func TestFetchDuplicateUIDL(t *testing.T) {
	long := strings.Repeat("x", 100)
	res, uidls := fakeFetch(t, fakeLogin+`
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
		C: DELE 1
		S: +OK
		C: DELE 2
		S: +OK
		C: DELE 3
		S: +OK
		C: QUIT
		S: +OK
	`)
	if res.NoUIDL || res.New != 3 || res.Skipped != 0 || res.Deleted != 3 {
		t.Errorf("result %+v", *res)
	}
	_, okSame := uidls["same"]
	_, okLong := uidls[long]
	if len(uidls) != 3 || !okSame || !okLong {
		t.Errorf("identities %v", uidls)
	}
}
