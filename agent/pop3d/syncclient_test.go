package pop3d

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/pop3"
)

// putFile writes a message file named name into cur/ of acct's INBOX, as
// another program would, and indexes it (index.IndexFile).
func (ts *testStore) putFile(t *testing.T, name, content string) {
	t.Helper()
	f := ts.folder(t, "acct", "INBOX")
	d, _ := ts.st.Dir(*f)
	if err := os.WriteFile(filepath.Join(d.Path, "cur", name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	e, ok := maildir.ParseName(name)
	if !ok {
		t.Fatalf("bad name %q", name)
	}
	e.Sub = "cur"
	if _, err := ts.st.IndexFile(context.Background(), index.Found{Folder: f, Entry: e}); err != nil {
		t.Fatal(err)
	}
}

// TestSyncClient: the project's own POP3 client (sync/pop3) over STLS with
// SASL PLAIN and pipelining: every message byte for byte (a 200 KB line
// included) within its LIST size, RFC 1939-clean UIDLs for keys that are
// not (too long, 8-bit), and the response codes it classifies.
func TestSyncClient(t *testing.T) {
	ts := newTestStore(t)
	msgs := corpus(200 << 10)
	ts.deliver(t, "acct", "INBOX", msgs...)
	long := strings.Repeat("k", 90)
	odd := "schön.key"
	ts.putFile(t, long+":2,S", "Subject: long key\nMessage-ID: <10@x>\n\nlong\n")
	ts.putFile(t, odd+":2,", "Subject: odd key\nMessage-ID: <11@x>\n\nodd\n")
	msgs = append(msgs, "Subject: long key\nMessage-ID: <10@x>\n\nlong\n", "Subject: odd key\nMessage-ID: <11@x>\n\nodd\n")
	want := byKey(t, ts, msgs)
	cfg, certPEM := testCert(t)
	srv := start(t, ts, func(o *Options) { o.TLS = cfg })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func() *pop3.Client {
		c, err := pop3.Dial(ctx, srv.addr, &pop3.Options{TLS: pop3.TLSStartTLS, TLSConfig: &tls.Config{RootCAs: pool}, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	if !c.TLS() {
		t.Fatal("not TLS after STLS")
	}
	caps, err := c.Capa()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has("PIPELINING") || !caps.HasSASL("PLAIN") || caps.Has("STLS") {
		t.Errorf("CAPA under TLS: %v", caps)
	}
	if err := c.Auth(ctx, sasl.NewPlainClient("", testUser, "wrong")); !pop3.IsAuthError(err) {
		t.Errorf("wrong password: %v, want an auth error", err)
	}
	if err := c.Auth(ctx, sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatal(err)
	}
	// A second session on the maildrop: [IN-USE], temporary.
	c2 := dial()
	if err := c2.Login(ctx, testUser, testPass); !pop3.IsTemporary(err) || pop3.IsAuthError(err) {
		t.Errorf("second login: %v, want [IN-USE]", err)
	}

	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	uidl, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(msgs) || len(uidl) != len(msgs) {
		t.Fatalf("LIST %d, UIDL %d, want %d", len(list), len(uidl), len(msgs))
	}
	nums := make([]int, len(list))
	for i, m := range uidl {
		nums[i] = m.Num
		if m.UIDProblem != "" {
			t.Errorf("UIDL %q: %s", m.UID, m.UIDProblem)
		}
	}
	got := map[int][]byte{}
	err = c.RetrMany(ctx, nums, func(num int, r io.Reader) error {
		b, err := io.ReadAll(pop3.LimitBody(r, num, list[num-1].Size))
		got[num] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRetr(t, uidl, list, got, want, long, odd)
	if err := c.TopMany(ctx, nums, 0, func(num int, r io.Reader) error {
		b, err := io.ReadAll(r)
		if !strings.HasPrefix(string(got[num]), string(b)) {
			t.Errorf("TOP %d 0: %q is not the start of the message", num, b)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleMany(ctx, nums[:2]); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if calls := srv.ex.Calls(); len(calls) != 1 || len(calls[0]) != 2 {
		t.Errorf("expunged %q, want 2 messages", calls)
	}
	var pe *pop3.Error
	if err := c2.Quit(); err != nil && !errors.As(err, &pe) {
		t.Error(err)
	}
}

func TestUIDLOf(t *testing.T) {
	for _, k := range []string{"1733.1_2.abc.host", strings.Repeat("k", 70)} {
		if u := uidlOf(k); u != k {
			t.Errorf("uidlOf(%q) = %q, want the key", k, u)
		}
	}
	seen := map[string]bool{}
	for _, k := range []string{"", strings.Repeat("k", 71), "schön", "a b", "a\x7f", "a\x00"} {
		u := uidlOf(k)
		if len(u) > 70 || u == "" || strings.ContainsFunc(u, func(r rune) bool { return r < 0x21 || r > 0x7e }) || seen[u] {
			t.Errorf("uidlOf(%q) = %q", k, u)
		}
		if u != uidlOf(k) {
			t.Errorf("uidlOf(%q) is not stable", k)
		}
		seen[u] = true
	}
}

// checkRetr checks what RETR gave (got, by number) and LIST's sizes
// against the corpus by key (want); UIDLs of keys that cannot be one are
// their SHA-256 form.
func checkRetr(t *testing.T, uidl, list []pop3.MsgInfo, got map[int][]byte, want map[string]string, odd ...string) {
	t.Helper()
	for _, m := range uidl {
		w, ok := want[m.UID]
		if !ok {
			// A key that cannot be a UIDL: the SHA-256 form.
			for _, k := range odd {
				if uidlOf(k) == m.UID {
					w, ok = want[k], true
				}
			}
		}
		if !ok {
			t.Errorf("UIDL %q is no message's", m.UID)
			continue
		}
		if string(got[m.Num]) != string(wireForm(w)) {
			t.Errorf("RETR %d (%s): %.200q, want %.200q", m.Num, m.UID, got[m.Num], wireForm(w))
		}
		if size := int64(len(wireForm(w))) - trailer(w); list[m.Num-1].Size != size {
			t.Errorf("LIST %d: %d, want %d", m.Num, list[m.Num-1].Size, size)
		}
	}
}

// TestFetchChain: postfach's own POP3 fetcher (sync/pop3.Fetch) pulling
// from the endpoint into a second store, as a POP3 account pointed at
// another postfach would: every message stored byte for byte (as LF), none
// fetched twice across a server restart and an index rebuild of the
// source, and with Keep off each message proven (LIST size, TOP header)
// and deleted at QUIT.
func TestFetchChain(t *testing.T) {
	src := newTestStore(t)
	msgs := corpus(20 << 10)
	src.deliver(t, "acct", "INBOX", msgs...)
	dst := newTestStore(t)
	srv := start(t, src, nil)
	fetch := func(keep bool) *pop3.FetchResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := pop3.Fetch(ctx, pop3.FetchOptions{
			Account: "pulled", Root: dst.root, Index: dst.st,
			Addr: srv.addr, TLS: pop3.TLSNone, Username: testUser, Password: testPass,
			Keep: keep, Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := fetch(true)
	if res.New != len(msgs) || res.Deleted != 0 {
		t.Fatalf("first fetch: %+v", res)
	}
	// The stored copies: the wire form with LF line ends.
	want := map[string]bool{}
	for _, m := range msgs {
		want[strings.ReplaceAll(string(wireForm(m)), "\r\n", "\n")] = true
	}
	for _, r := range dst.rows(t, "pulled", "INBOX") {
		b, err := dst.st.OpenBody(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(b)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !want[string(got)] {
			t.Errorf("stored %.200q: no such message", got)
		}
		delete(want, string(got))
	}
	if len(want) != 0 {
		t.Errorf("%d messages not stored", len(want))
	}

	srv.stop(t)
	srv = start(t, src, nil)
	if res := fetch(true); res.New != 0 || res.OnServer != len(msgs) {
		t.Errorf("after a server restart: %+v", res)
	}
	srv.stop(t)
	src.rebuild(t, "acct", "INBOX")
	srv = start(t, src, nil)
	if res := fetch(true); res.New != 0 || res.Reused != 0 {
		t.Errorf("after an index rebuild: %+v", res)
	}
	if res := fetch(false); res.New != 0 || res.Deleted != len(msgs) || res.Unproven != 0 {
		t.Errorf("fetch without keep: %+v", res)
	}
	if n := len(src.rows(t, "acct", "INBOX")); n != 0 {
		t.Errorf("%d messages left in the source", n)
	}
	if n := len(dst.rows(t, "pulled", "INBOX")); n != len(msgs) {
		t.Errorf("%d messages in the destination, want %d", n, len(msgs))
	}
}
