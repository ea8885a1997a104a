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
	for _, m := range uidl {
		w, ok := want[m.UID]
		if !ok {
			// A key that cannot be a UIDL: the SHA-256 form.
			for _, k := range []string{long, odd} {
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
	for _, k := range []string{long, odd} {
		if u := uidlOf(k); len(u) > 70 || strings.ContainsFunc(u, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Errorf("uidlOf(%q) = %q", k, u)
		}
	}
	var pe *pop3.Error
	if err := c2.Quit(); err != nil && !errors.As(err, &pe) {
		t.Error(err)
	}
}
