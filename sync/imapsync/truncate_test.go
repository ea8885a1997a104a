package imapsync_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestTruncatedDownload cuts real connections to Dovecot in the middle of
// a large message body, the way a network failure or a dying server does,
// and checks that nothing short is ever stored as a message: go-imap's
// literal reader just ends early when its connection dies, and a body that
// ends before its announced size used to be committed as complete, for
// good (issue 8, defect 1).
//
// Each round starts from an empty store and syncs through a faultproxy
// that (1) drops the connection in the middle of the first literal of at
// least 1 MB, (2) resets it there, or (3) holds the stream there while
// the test kills Dovecot's imap processes with SIGKILL, as the issue's
// reproduction did. After the faulted run every file in the Maildir that
// carries a UID must be the server's message of that UID, byte for byte;
// a clean run then completes the mirror (mirrortest.Compare), and the
// index passes PRAGMA integrity_check.
func TestTruncatedDownload(t *testing.T) {
	e := newEnv(t)
	// Large messages (5.5 MB): Linux buffers up to about 2.5 MB of a
	// message between a killed Dovecot and the proxy, which must not hold
	// all of it for the kill to cut it.
	n := 24
	if testing.Short() {
		n = 8
	}
	msgs := corpus.Generate(8, n, corpus.Options{BigAttachmentEvery: 4, BigAttachmentSize: 4 << 20})
	e.d.Seed(t, testenv.DefaultUser.Name, msgs)
	server, err := mirrortest.ServerFolders(e.d.Client(t, testenv.DefaultUser.Name))
	if err != nil {
		t.Fatal(err)
	}

	p, err := faultproxy.Start(e.d.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	// A small receive buffer keeps most of a large body in Dovecot while
	// the proxy holds the stream, so that the kill really cuts it.
	p.ReadBuffer = 64 << 10
	t.Cleanup(func() { p.Close() })

	killed := 0
	rounds := []faultproxy.Fault{
		{Name: "drop", Dir: faultproxy.Down, Literal: 1 << 20, Action: faultproxy.Drop, Max: 1},
		{Name: "reset", Dir: faultproxy.Down, Literal: 1 << 20, After: 300 << 10, Action: faultproxy.Reset, Max: 1},
		{Name: "kill imap", Dir: faultproxy.Down, Literal: 1 << 20, After: 64 << 10, Action: faultproxy.Call, Max: 1,
			Fn: func() { killed += killIMAP(t, e.d) }},
	}
	for _, f := range rounds {
		t.Run(f.Name, func(t *testing.T) {
			r := e.fresh(t)
			p.Clear()
			p.Add(f)
			before := len(p.Truncations())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := imapsync.Sync(ctx, r.options(p.Addr()))
			cancel()
			if p.Count(f.Name) != 1 {
				t.Fatalf("the fault fired %d times, want 1 (%+v)", p.Count(f.Name), p.Fired())
			}
			cut := p.Truncations()[before:]
			if len(cut) == 0 {
				t.Fatalf("no literal was cut short (the body was already in the socket buffers)")
			}
			t.Logf("cut: %+v; sync: %v", cut, err)
			if err == nil {
				t.Errorf("the faulted sync reported success")
			}
			r.nothingShort(t, server)
			testenv.CheckIndex(t, r.root)

			p.Clear()
			if _, err := imapsync.Sync(context.Background(), r.options(p.Addr())); err != nil {
				t.Fatalf("clean sync: %v", err)
			}
			r.compare()
			testenv.CheckIndex(t, r.root)
		})
	}
	if killed == 0 {
		t.Errorf("the kill round killed no imap process")
	}
}

// fresh returns an env on the same Dovecot with an empty store.
func (e *env) fresh(t *testing.T) *env {
	r := &env{t: t, d: e.d, root: t.TempDir()}
	r.openIndex()
	return r
}

// options are the Options of a run of this env's store through addr.
func (e *env) options(addr string) imapsync.Options {
	pass, _ := e.d.Password(testenv.DefaultUser.Name)
	o := imapsync.Options{
		Account: "acct", Root: e.root, Index: e.store, DialAttempts: 1,
		Endpoint: imapconn.Endpoint{Addr: addr, TLS: "none", Username: testenv.DefaultUser.Name, Password: pass},
	}
	if e.opts != nil {
		e.opts(&o)
	}
	return o
}

// nothingShort checks every message file of the store that carries a UID
// (in cur/ or new/, indexed or not: the next run would index it from its
// tag) against the server's message of that UID.
func (e *env) nothingShort(t *testing.T, server map[string][]mirrortest.ServerMessage) {
	t.Helper()
	checked := 0
	for folder, msgs := range server {
		byUID := map[uint32][]byte{}
		for _, m := range msgs {
			byUID[m.UID] = bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		}
		path, err := maildir.FolderDir(e.root, "acct", folder)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			continue // not reached by the faulted run
		}
		d, err := maildir.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := d.Scan()
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if en.UID == 0 {
				continue
			}
			got, err := os.ReadFile(d.FilePath(en))
			if err != nil {
				t.Fatal(err)
			}
			want, ok := byUID[en.UID]
			switch {
			case !ok:
				t.Errorf("%s: %s: UID %d is not on the server", folder, en.Name, en.UID)
			case !bytes.Equal(got, want):
				t.Errorf("%s: UID %d stored with %d bytes, the server's message has %d: a truncated message was committed",
					folder, en.UID, len(got), len(want))
			}
			checked++
		}
	}
	t.Logf("%d stored messages checked against the server", checked)
}

// killIMAP kills Dovecot's imap processes (the children of its master
// named "imap") with SIGKILL and returns how many it killed.
func killIMAP(t *testing.T, d *testenv.Dovecot) int {
	master := d.MasterPID()
	if master == 0 {
		t.Error("Dovecot's master pid is unknown")
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Error(err)
		return 0
	}
	n := 0
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		if s[lp+1:rp] != "imap" || len(fields) < 2 || fields[1] != strconv.Itoa(master) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
