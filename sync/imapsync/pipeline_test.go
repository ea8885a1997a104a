package imapsync_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// throughProxy starts a fault proxy in front of the env's Dovecot and
// makes the next syncs go through it, with the given number of
// connections and any other options set by more.
func (e *env) throughProxy(connections int, more ...func(*imapsync.Options)) *faultproxy.Proxy {
	e.t.Helper()
	p, err := faultproxy.Start(e.d.IMAPAddr())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close() })
	e.opts = func(o *imapsync.Options) {
		o.Endpoint.Addr = p.Addr()
		o.Connections = connections
		for _, f := range more {
			f(o)
		}
	}
	return p
}

// holdUntilSent adds to p two faults: sent, a line the client sends
// (Dir Up), and held, a server answer (Dir Down) held back until sent
// has gone up or 3 seconds passed. The result tells, once the run is
// over, whether sent went up while held waited: the client sent it
// without waiting for that answer.
func holdUntilSent(p *faultproxy.Proxy, sent, held faultproxy.Fault) *atomic.Bool {
	var went, during atomic.Bool
	sent.Dir, sent.Max, sent.Action, sent.Fn = faultproxy.Up, 1, faultproxy.Call, func() { went.Store(true) }
	held.Dir, held.Max, held.Action, held.Fn = faultproxy.Down, 1, faultproxy.Call, func() {
		during.Store(waitUntil(went.Load))
	}
	p.Add(sent, held)
	return &during
}

// waitUntil waits for ok to hold, 3 seconds at most, and tells whether it
// came to.
func waitUntil(ok func() bool) bool {
	for deadline := time.Now().Add(3 * time.Second); !ok() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	return ok()
}

// flaggedUpstream returns an env whose INBOX of 30 messages (corpus seed
// 7, options opts) is mirrored, and then UID 3 is flagged upstream.
func flaggedUpstream(t *testing.T) (*env, corpus.Options) {
	e := newEnv(t)
	opts := corpus.Options{Folders: []string{"INBOX"}}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 30, opts))
	e.sync()
	e.serverSetFlags("INBOX", 3, imap.StoreFlagsAdd, imap.FlagFlagged)
	return e, opts
}

// TestSearchBehindFetch: when a folder changed upstream (flags, and a new
// message), the plan's UID SEARCH goes out right behind its FETCH
// CHANGEDSINCE, without waiting a round trip for the FETCH's answer: the
// proxy holds back the first FETCH answer and the SEARCH reaches the
// server meanwhile. The run's outcome is the same.
func TestSearchBehindFetch(t *testing.T) {
	e, opts := flaggedUpstream(t)
	e.d.Seed(t, testenv.DefaultUser.Name, []corpus.Message{corpus.At(7, 30, opts)})

	p := e.throughProxy(1)
	during := holdUntilSent(p, faultproxy.Fault{Name: "search sent", Pattern: "UID SEARCH"},
		faultproxy.Fault{Name: "hold the FETCH answer", Pattern: " FETCH ("})
	res, _ := e.sync()
	if p.Count("hold the FETCH answer") != 1 {
		t.Fatalf("no FETCH answer was held (%+v)", p.Fired())
	}
	if !during.Load() {
		t.Errorf("the UID SEARCH waited for the FETCH's answer")
	}
	if tot := res.Totals(); tot.New != 1 || tot.FlagsChanged != 1 {
		t.Errorf("sync did %+v, want 1 new message and 1 flag change", tot)
	}
	e.compare()
}

// TestStoresInARow: the STOREs of a folder's flag pushes (here one that
// adds \Seen and one that takes it away) go out one behind the other: the
// proxy holds back the first one's answer and the second reaches the
// server meanwhile. Both are carried out.
func TestStoresInARow(t *testing.T) {
	e := newEnv(t)
	opts := corpus.Options{Folders: []string{"INBOX"}}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(8, 20, opts))
	e.sync()
	var seen, unseen *maildir.Entry
	for _, en := range e.entries("INBOX") {
		switch {
		case en.Flags&maildir.FlagSeen != 0 && seen == nil:
			seen = &en
		case en.Flags&maildir.FlagSeen == 0 && unseen == nil:
			unseen = &en
		}
	}
	if seen == nil || unseen == nil {
		t.Fatalf("the corpus has no read and unread message to toggle")
	}
	d := e.dir("INBOX")
	if _, err := d.SetFlags(*seen, seen.Flags&^maildir.FlagSeen); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetFlags(*unseen, unseen.Flags|maildir.FlagSeen); err != nil {
		t.Fatal(err)
	}

	p := e.throughProxy(1)
	during := holdUntilSent(p, faultproxy.Fault{Name: "second STORE sent", Pattern: "UID STORE", Count: 2},
		faultproxy.Fault{Name: "hold the first STORE's answer", Pattern: "MODSEQ ("})
	res, _ := e.sync()
	if p.Count("hold the first STORE's answer") != 1 || p.Count("second STORE sent") != 1 {
		t.Fatalf("faults fired: %+v", p.Fired())
	}
	if !during.Load() {
		t.Errorf("the second STORE waited for the first one's answer")
	}
	if tot := res.Totals(); tot.FlagsPushed != 2 {
		t.Errorf("sync did %+v, want 2 flag changes pushed", tot)
	}
	e.compare()
}

// TestUploaderDialedAhead: when the Maildir has a new message to upload,
// the uploader's connection is dialed while the folder is selected, not
// once the plan is ready to upload: the proxy holds back the SELECT's
// answer and the uploader logs in meanwhile.
func TestUploaderDialedAhead(t *testing.T) {
	e := newEnv(t)
	opts := corpus.Options{Folders: []string{"INBOX"}}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(9, 20, opts))
	e.sync()
	e.writeLocal("INBOX", "dialed-ahead")

	p := e.throughProxy(1)
	during := holdUntilSent(p, faultproxy.Fault{Name: "uploader login", Pattern: "U1 LOGIN"},
		faultproxy.Fault{Name: "hold the SELECT's answer", Pattern: "Select completed"})
	res, _ := e.sync()
	if p.Count("hold the SELECT's answer") != 1 {
		t.Fatalf("no SELECT answer was held (%+v)", p.Fired())
	}
	if !during.Load() {
		t.Errorf("the uploader was dialed only after the SELECT")
	}
	if tot := res.Totals(); tot.Uploaded != 1 {
		t.Errorf("sync did %+v, want 1 upload", tot)
	}
	e.compare()
}

// TestManyStoresInARow: Dovecot carries out STOREs sent in a row and
// answers the first only after the last one's FETCH responses, so a
// STORE whose answers (here hundreds) nobody read yet must not hold up
// the connection's reader before the first one's answer: every message
// read here is marked unread upstream and every unread one read, the
// run ends, and both sides agree.
func TestManyStoresInARow(t *testing.T) {
	e := newEnv(t)
	opts := corpus.Options{Folders: []string{"INBOX"}}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(9, 600, opts))
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	half := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 300}}
	if err := c.Store(half, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	e.sync()
	d := e.dir("INBOX")
	seen := 0
	for _, en := range e.entries("INBOX") {
		if en.Flags&maildir.FlagSeen != 0 {
			seen++
		}
		if _, err := d.SetFlags(en, en.Flags^maildir.FlagSeen); err != nil {
			t.Fatal(err)
		}
	}
	if seen < 200 || 600-seen < 200 {
		t.Fatalf("%d of 600 read: want more than 200 of each, so that both STOREs have more answers than go-imap buffers", seen)
	}
	done := make(chan *imapsync.Result, 1)
	go func() {
		res, _ := e.sync()
		done <- res
	}()
	select {
	case res := <-done:
		if tot := res.Totals(); tot.FlagsPushed != 600 {
			t.Errorf("sync did %+v, want 600 flag changes pushed", tot)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the run is stuck after sending its STOREs")
	}
	e.compare()
}

// TestIdentitiesBehindFetch: with new local files to match against a few
// new server messages (matchFresh), the identities of those are asked
// right behind the plan's FETCH CHANGEDSINCE, not a round trip after its
// answer: the proxy holds back that answer and the identities' FETCH
// reaches the server meanwhile.
func TestIdentitiesBehindFetch(t *testing.T) {
	e := newEnv(t)
	opts := corpus.Options{Folders: []string{"INBOX"}}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, 20, opts))
	e.sync()
	e.appendServer("INBOX", "upstream-new")
	e.writeLocal("INBOX", "written-here")

	p := e.throughProxy(1)
	during := holdUntilSent(p, faultproxy.Fault{Name: "identities asked", Pattern: "HEADER.FIELDS"},
		faultproxy.Fault{Name: "hold the FETCH answer", Pattern: " FETCH ("})
	done := make(chan *imapsync.Result, 1)
	go func() {
		res, _ := e.sync()
		done <- res
	}()
	var res *imapsync.Result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the run is stuck")
	}
	if p.Count("hold the FETCH answer") != 1 || p.Count("identities asked") != 1 {
		t.Fatalf("faults fired: %+v", p.Fired())
	}
	if !during.Load() {
		t.Errorf("the identities' FETCH waited for the FETCH CHANGEDSINCE's answer")
	}
	if tot := res.Totals(); tot.New != 1 || tot.Uploaded != 1 {
		t.Errorf("sync did %+v, want 1 download and 1 upload", tot)
	}
	e.compare()
}

// TestAskedBesideReconcile: a folder compared incrementally asks what
// changed upstream (FETCH CHANGEDSINCE, and the identities of the new
// server messages when the prescan found new local files) as soon as it
// is selected, not once the Maildir is reconciled with the index: the
// reconcile is held until both have gone up. The run's outcome is the
// same.
func TestAskedBesideReconcile(t *testing.T) {
	e, _ := flaggedUpstream(t)
	e.appendServer("INBOX", "upstream-new")
	e.writeLocal("INBOX", "written-here")

	p := e.throughProxy(1)
	var flagsSent, idsSent, during atomic.Bool
	p.Add(faultproxy.Fault{Name: "changes asked", Pattern: "CHANGEDSINCE", Dir: faultproxy.Up, Max: 1,
		Action: faultproxy.Call, Fn: func() { flagsSent.Store(true) }},
		faultproxy.Fault{Name: "identities asked", Pattern: "HEADER.FIELDS", Dir: faultproxy.Up, Max: 1,
			Action: faultproxy.Call, Fn: func() { idsSent.Store(true) }})
	var held atomic.Int32
	imapsync.SetReconciledHook(func() {
		held.Add(1)
		during.Store(waitUntil(func() bool { return flagsSent.Load() && idsSent.Load() }))
	})
	defer imapsync.SetReconciledHook(nil)
	res, _ := e.sync()
	if held.Load() != 1 {
		t.Fatalf("%d plans reconciled, want 1", held.Load())
	}
	if !during.Load() {
		t.Errorf("asked only after the reconcile: FETCH CHANGEDSINCE %v, identities %v (faults %+v)", flagsSent.Load(), idsSent.Load(), p.Fired())
	}
	if tot := res.Totals(); tot.New != 1 || tot.FlagsChanged != 1 || tot.Uploaded != 1 {
		t.Errorf("sync did %+v, want 1 download, 1 flag change and 1 upload", tot)
	}
	e.compare()
}
