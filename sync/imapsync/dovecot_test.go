package imapsync_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

// counter counts the bytes of protocol traffic, to prove what was (not)
// downloaded.
type counter struct{ n atomic.Int64 }

func (c *counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

type env struct {
	opts  func(*imapsync.Options) // adjusts every run's options
	t     testing.TB
	d     *testenv.Dovecot
	root  string
	store *index.Store
}

func newEnv(t testing.TB, opts ...testenv.Option) *env {
	t.Helper()
	d := testenv.StartDovecot(t, opts...)
	root := t.TempDir()
	e := &env{t: t, d: d, root: root}
	e.openIndex()
	return e
}

func (e *env) openIndex() {
	st, err := index.OpenStore(e.root)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.t.Cleanup(func() { st.Close() })
}

func (e *env) sync() (*imapsync.Result, int64) {
	e.t.Helper()
	res, traffic, err := e.trySync(false)
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
	return res, traffic
}

func (e *env) trySync(force bool) (*imapsync.Result, int64, error) {
	var traffic counter
	pass, _ := e.d.Password(testenv.DefaultUser.Name)
	o := imapsync.Options{
		Force:   force,
		Account: "acct",
		Root:    e.root,
		Index:   e.store,
		Endpoint: imapconn.Endpoint{
			Addr: e.d.IMAPAddr(), TLS: "none",
			Username: testenv.DefaultUser.Name, Password: pass,
			Debug: &traffic,
		},
	}
	if e.opts != nil {
		e.opts(&o)
	}
	if os.Getenv("POSTFACH_TEST_LOG") == "1" { // the runs' debug log on stderr
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	res, err := imapsync.Sync(context.Background(), o)
	return res, traffic.n.Load(), err
}

func (e *env) compare() map[string][]mirrortest.ServerMessage {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	server, err := mirrortest.ServerFolders(c)
	if err != nil {
		e.t.Fatal(err)
	}
	diffs := mirrortest.Compare(context.Background(), server, e.root, "acct", e.store)
	for i, d := range diffs {
		if i == 20 {
			e.t.Errorf("... and %d more", len(diffs)-20)
			break
		}
		e.t.Error(d)
	}
	if len(diffs) > 0 {
		e.t.FailNow()
	}
	return server
}

func count(server map[string][]mirrortest.ServerMessage) int {
	n := 0
	for _, m := range server {
		n += len(m)
	}
	return n
}

// TestMirror is the foundation's acceptance path against a real Dovecot:
// a full mirror, a no-change resync, server-side changes, a lost index and
// a UIDVALIDITY change.
func TestMirror(t *testing.T) {
	e := newEnv(t)
	n := 2000
	if testing.Short() {
		n = 300
	}
	msgs := corpus.Generate(1, n, corpus.Options{BigAttachmentEvery: 700})
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)

	start := time.Now()
	res, _ := e.sync()
	t.Logf("initial sync of %d messages: %v", n, time.Since(start))
	if got := res.Totals().New; got != n {
		t.Fatalf("downloaded %d messages, want %d", got, n)
	}
	server := e.compare()
	if len(server) < 4 {
		t.Fatalf("server has %d folders, want >= 4", len(server))
	}

	// A second run downloads nothing and costs little traffic.
	start = time.Now()
	res, traffic := e.sync()
	t.Logf("no-change resync: %v, %d bytes of traffic", time.Since(start), traffic)
	if tot := res.Totals(); tot.New != 0 || tot.FlagsChanged != 0 || tot.Expunged != 0 {
		t.Fatalf("no-change resync did something: %+v", tot)
	}
	if traffic > 20<<10 {
		t.Errorf("no-change resync moved %d bytes", traffic)
	}

	t.Run("server changes", func(t *testing.T) {
		c := e.d.Client(t, testenv.DefaultUser.Name)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		// flag 1..5, unflag seen on 6..10, expunge 11..13
		if err := c.Store(imap.SeqSetNum(1, 2, 3, 4, 5), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Label7"}, Silent: true}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(6, 7, 8, 9, 10), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(11, 12, 13), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
		more := corpus.Generate(2, 40, corpus.Options{Folders: []string{"INBOX", "Neu/Ordner"}})
		e.d.Seed(t, testenv.DefaultUser.Name, more)

		res, _ := e.sync()
		tot := res.Totals()
		if tot.New != 40 || tot.Expunged != 3 {
			t.Errorf("got %+v, want 40 new and 3 expunged", tot)
		}
		if tot.FlagsChanged < 5 || tot.FlagsChanged > 10 {
			t.Errorf("flag changes %d, want 5..10", tot.FlagsChanged)
		}
		e.compare()
	})

	t.Run("lost index", func(t *testing.T) {
		e.store.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(index.DefaultPath(e.root) + suffix)
		}
		e.openIndex()
		res, traffic := e.sync()
		tot := res.Totals()
		server := e.compare()
		if tot.New != 0 || tot.Rebuilt != count(server) {
			t.Errorf("after losing the index: %+v, want 0 new and %d rebuilt", tot, count(server))
		}
		if traffic > 2<<20 {
			t.Errorf("rebuilding the index moved %d bytes: bodies were downloaded again", traffic)
		}
	})

	t.Run("uidvalidity change", func(t *testing.T) {
		// Dovecot assigns a new UIDVALIDITY when its uidlist and index
		// are gone.
		md := e.d.MailDir(testenv.DefaultUser.Name)
		for _, f := range []string{"dovecot-uidlist", "dovecot.index", "dovecot.index.log", "dovecot.index.cache"} {
			os.Remove(filepath.Join(md, f))
		}
		before := e.inboxUIDValidity(t)
		res, _ := e.sync()
		after := e.inboxUIDValidity(t)
		if before == after {
			t.Fatalf("UIDVALIDITY did not change (%d)", after)
		}
		if tot := res.Totals(); tot.New != 0 || tot.Uploaded != 0 {
			t.Errorf("after a UIDVALIDITY change: %d messages downloaded and %d uploaded again", tot.New, tot.Uploaded)
		}
		e.compare()
	})
}

func (e *env) inboxUIDValidity(t *testing.T) uint32 {
	var uv uint32
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, "INBOX")
		if err != nil {
			return err
		}
		uv = f.UIDValidity
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return uv
}
