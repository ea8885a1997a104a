package imapd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

const (
	testUser = "me"
	testPass = "secret"
)

// testStore is a store with one account ("acct") and its folders, made
// through the door.
func testStore(t testing.TB, folders ...string) (*index.Store, map[string]*index.Folder) {
	t.Helper()
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	var acct index.AccountID
	if err := st.Write(ctx, func(tx *index.Tx) error {
		acct, err = tx.EnsureAccount("acct")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := map[string]*index.Folder{}
	for _, name := range folders {
		f, err := st.CreateFolder(ctx, acct, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = f
	}
	return st, out
}

// deliver stores a message as a sync would: through Deliver, with an
// upstream UID and the folder's upstream UIDVALIDITY set.
func deliver(t *testing.T, st *index.Store, f *index.Folder, uid uint32, raw string, flags maildir.Flags) *index.Message {
	t.Helper()
	d, err := st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a := &index.Arrival{Folder: f, File: w}
	a.Row.UID, a.Row.Flags, a.Row.SyncedFlags = uid, flags, flags
	a.Row.RFC822Size = int64(len(raw)) // as upstream reports it
	a.Row.Header = index.ParseHeader(w.Header())
	a.Row.InternalDate = time.Date(2026, 11, 3, 10, 20, 30, 0, time.UTC)
	a.Row.DeferText = true // full text left to IndexPending, as the sync does
	if err := st.Deliver(context.Background(), &index.Batch{Arrivals: []*index.Arrival{a}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx *index.Tx) error {
		return tx.SetRemoteState(f.ID, 777, uid+1, 0)
	}); err != nil {
		t.Fatal(err)
	}
	m := a.Row.Message
	return &m
}

// startServer serves st for accounts on a listener on 127.0.0.1 and
// returns its address.
func startServer(t testing.TB, st *index.Store, accounts ...string) (*Server, string) {
	t.Helper()
	if len(accounts) == 0 {
		accounts = []string{"acct"}
	}
	srv, err := New(Options{Store: st, Accounts: accounts, Auth: func(_ net.Addr, u, p string) error {
		if u == testUser && p == testPass {
			return nil
		}
		return errors.New("wrong credentials")
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// python runs testdata/<script> against addr and decodes the JSON it
// prints last.
func python(t *testing.T, script, addr string, out any, args ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("python3", append([]string{"testdata/" + script, host, port, testUser, testPass}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		t.Fatalf("%s: output %q: %v\n%s", script, stdout.String(), err, stderr.String())
	}
}
