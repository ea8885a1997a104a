package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needTool returns the path of a program the test drives; missing, it
// fails the test (bash .ci/run installs them), as internal/clienttest does.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed (bash .ci/run installs it): %v", name, err)
	}
	return p
}

// serveImplicit serves srv on a second listener with implicit TLS (what
// the agent does for tls = "implicit") and returns its address.
func (s *testServer) serveImplicit(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(tls.NewListener(ln, cfg))
	return ln.Addr().String()
}

// byKey maps the Maildir key of each message of acct's INBOX to the
// corpus message it was delivered from (by Message-ID).
func byKey(t *testing.T, ts *testStore, msgs []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range ts.rows(t, "acct", "INBOX") {
		for _, m := range msgs {
			if strings.Contains(m, "Message-ID: <"+r.Header.MessageID+">") {
				out[r.Key] = m
			}
		}
	}
	if len(out) != len(ts.rows(t, "acct", "INBOX")) {
		t.Fatalf("matched %d of the rows to the corpus", len(out))
	}
	return out
}

// headerOf is the wire form of m's header and the empty line after it
// (what TOP n 0 sends).
func headerOf(m string) string {
	w := string(wireForm(m))
	if i := strings.Index(w, "\r\n\r\n"); i >= 0 {
		return w[:i+4]
	}
	return w
}

type poplibOut struct {
	Welcome    string
	CapaBefore []string `json:"capa_before"`
	CapaAfter  []string `json:"capa_after"`
	STLS       string
	Login      string
	Stat       []int64
	List       []string
	UIDL       []string
	Msgs       map[string]string
	Tops       map[string]string
	Quit       string
	Error      string
}

// poplibProc is one testdata/popclient.py process, running sessions on
// request.
type poplibProc struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

func startPoplib(t *testing.T) *poplibProc {
	t.Helper()
	py := needTool(t, "python3")
	cmd := exec.Command(py, filepath.Join("testdata", "popclient.py"))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 64<<20)
	return &poplibProc{in: in, out: sc}
}

// session runs one poplib session against addr (see popclient.py).
func (p *poplibProc) session(t *testing.T, addr, login, mode, cafile, dele, end string) *poplibOut {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	req, _ := json.Marshal([]string{host, port, login, testPass, mode, cafile, dele, end})
	if _, err := p.in.Write(append(req, '\n')); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("popclient.py: no answer: %v", p.out.Err())
	}
	var out poplibOut
	if err := json.Unmarshal(p.out.Bytes(), &out); err != nil {
		t.Fatalf("popclient.py output %.300q: %v", p.out.Bytes(), err)
	}
	if out.Error != "" {
		t.Fatalf("popclient.py %s: %s", mode, out.Error)
	}
	return &out
}

// uidlMap checks a poplib session's messages against the corpus and
// returns its UIDL -> message number map.
func (o *poplibOut) check(t *testing.T, want map[string]string) map[string]string {
	t.Helper()
	nums := map[string]string{}
	for _, l := range o.UIDL {
		n, uidl, _ := strings.Cut(l, " ")
		nums[uidl] = n
		m, ok := want[uidl]
		if !ok {
			t.Errorf("UIDL %q is no message's key", l)
			continue
		}
		got, _ := base64.StdEncoding.DecodeString(o.Msgs[n])
		if string(got) != string(wireForm(m)) {
			t.Errorf("poplib RETR %s (%s):\n got %q\nwant %q", n, uidl, got, wireForm(m))
		}
		top, _ := base64.StdEncoding.DecodeString(o.Tops[n])
		if string(top) != headerOf(m) {
			t.Errorf("poplib TOP %s 0: %q, want %q", n, top, headerOf(m))
		}
	}
	if len(nums) != len(want) || len(o.Msgs) != len(want) {
		t.Errorf("poplib saw %d UIDLs and %d messages, want %d", len(nums), len(o.Msgs), len(want))
	}
	return nums
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPoplib: Python's poplib over STLS, implicit TLS and in the clear
// with AUTH PLAIN gets every message byte for byte (modulo CRLF), with
// TOP; UIDLs stay across a server restart and an index rebuild; DELE
// takes effect at QUIT and not when the connection drops.
func TestPoplib(t *testing.T) {
	ts := newTestStore(t)
	msgs := corpus(1500) // poplib refuses lines over 2048 bytes
	ts.deliver(t, "acct", "INBOX", msgs...)
	want := byKey(t, ts, msgs)
	cfg, certPEM := testCert(t)
	ca := writeFile(t, t.TempDir(), "ca.pem", certPEM, 0o600)
	srv := start(t, ts, func(o *Options) { o.TLS = cfg })
	implicit := srv.serveImplicit(t, cfg)

	py := startPoplib(t)
	o := py.session(t, srv.addr, testUser, "stls", ca, "", "quit")
	if !slices.Contains(o.CapaBefore, "STLS") || slices.Contains(o.CapaAfter, "STLS") || !strings.HasPrefix(o.STLS, "+OK") {
		t.Errorf("CAPA before STLS %q, after %q; STLS %q", o.CapaBefore, o.CapaAfter, o.STLS)
	}
	if !strings.HasPrefix(o.Login, "+OK") || !strings.HasPrefix(o.Quit, "+OK") {
		t.Errorf("login %q, quit %q", o.Login, o.Quit)
	}
	o.check(t, want)
	o = py.session(t, implicit, testUser+"+acct", "ssl", ca, "", "quit")
	o.check(t, want)

	// DELE, then the connection drops: nothing removed.
	o = py.session(t, srv.addr, testUser, "authplain", "", "1,2", "drop")
	o.check(t, want)
	srv.waitIdle(t)
	if n := len(ts.rows(t, "acct", "INBOX")); n != len(msgs) || len(srv.ex.Calls()) != 0 {
		t.Fatalf("after a dropped session: %d rows, expunges %q", n, srv.ex.Calls())
	}

	// A new server on the same store: the same UIDLs; DELE 1 and 3 at QUIT.
	srv.stop(t)
	srv = start(t, ts, nil)
	o = py.session(t, srv.addr, testUser, "plain", "", "1,3", "quit")
	nums := o.check(t, want)
	var gone []string
	for uidl, n := range nums {
		if n == "1" || n == "3" {
			gone = append(gone, uidl)
			delete(want, uidl)
		}
	}
	slices.Sort(gone)
	calls := srv.ex.Calls()
	if len(calls) != 1 || !slices.Equal(slices.Sorted(slices.Values(calls[0])), gone) {
		t.Errorf("expunged %q, want %q", calls, gone)
	}
	if got := keys(byKey(t, ts, msgs)); !slices.Equal(got, keys(want)) {
		t.Errorf("rows left %q, want %q", got, keys(want))
	}

	// The index rebuilt from the files (new rows, new local UIDs, other
	// order): the same UIDLs for the same messages.
	srv.stop(t)
	ts.rebuild(t, "acct", "INBOX")
	srv = start(t, ts, nil)
	o = py.session(t, srv.addr, testUser, "plain", "", "", "quit")
	o.check(t, want)
}

// fetchmail runs Debian's fetchmail once against addr, in its own HOME,
// delivering each message through an MDA into a file of out. tlsLine is
// the rcfile's TLS options; keep says whether to leave the messages.
// It returns fetchmail's exit status (0: mail fetched, 1: none) and the
// messages it delivered in this run.
func fetchmail(t *testing.T, home, addr, tlsLine string, keep bool) (int, []string) {
	t.Helper()
	fm := needTool(t, "fetchmail")
	out := filepath.Join(home, "out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(out)
	save := writeFile(t, home, "save.sh", []byte("#!/bin/sh\nf=$(mktemp "+out+"/msg.XXXXXX) && cat > \"$f\"\n"), 0o700)
	host, port, _ := net.SplitHostPort(addr)
	keepWord := "nokeep"
	if keep {
		keepWord = "keep"
	}
	rc := writeFile(t, home, "fetchmailrc", []byte(`set idfile "`+filepath.Join(home, "fetchids")+`"
set invisible
poll `+host+` service `+port+` protocol POP3 uidl auth password timeout 30
  user "`+testUser+`" there with password "`+testPass+`" is "root" here
  `+keepWord+` no rewrite `+tlsLine+`
  mda "`+save+`"
`), 0o600)
	cmd := exec.Command(fm, "--nosyslog", "--nodetach", "-v", "-f", rc, "--pidfile", filepath.Join(home, "pid"))
	cmd.Env = append(os.Environ(), "HOME="+home, "FETCHMAILHOME="+home)
	b, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	if testing.Verbose() || code > 1 {
		t.Logf("fetchmail (exit %d):\n%s", code, b)
	}
	after, _ := os.ReadDir(out)
	var got []string
	for _, e := range after {
		if !slices.ContainsFunc(before, func(d os.DirEntry) bool { return d.Name() == e.Name() }) {
			data, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(data))
		}
	}
	return code, got
}

// TestFetchmail: fetchmail (over STLS with the certificate checked, and in
// the clear) retrieves every message byte for byte (its MDA gets LF line
// ends); with "uidl" and "keep" it fetches nothing again after a server
// restart or an index rebuild, and exactly a new message; without "keep"
// it deletes what it fetched, at QUIT.
func TestFetchmail(t *testing.T) {
	ts := newTestStore(t)
	msgs := corpus(5000)
	// A message removed first: the local UIDs of the others start at 2
	// before the rebuild and at 1 after it.
	ts.deliver(t, "acct", "INBOX", "Subject: gone\n\n")
	if err := ts.st.Remove(context.Background(), ts.rows(t, "acct", "INBOX"), nil); err != nil {
		t.Fatal(err)
	}
	ts.deliver(t, "acct", "INBOX", msgs...)
	cfg, certPEM := testCert(t)
	home := t.TempDir()
	ca := writeFile(t, home, "ca.pem", certPEM, 0o600)
	srv := start(t, ts, func(o *Options) { o.TLS = cfg })
	stls := `sslproto "tls1.2+" sslcertck sslcommonname "localhost" sslcertfile "` + ca + `"`
	plain := `sslproto "" no sslcertck`

	// What the MDA gets: LF line ends; fetchmail ends a header that has
	// no body with an empty line of its own.
	lf := func(m string) string {
		w := strings.ReplaceAll(string(wireForm(m)), "\r\n", "\n")
		if !strings.Contains(w, "\n\n") {
			w += "\n"
		}
		return w
	}
	same := func(got []string, want []string) {
		t.Helper()
		var w []string
		for _, m := range want {
			w = append(w, lf(m))
		}
		slices.Sort(got)
		slices.Sort(w)
		if len(got) != len(w) {
			t.Errorf("fetchmail delivered %d messages, want %d", len(got), len(w))
			return
		}
		for i := range got {
			if got[i] != w[i] {
				t.Errorf("fetchmail delivered\n%.300q\nwant\n%.300q", got[i], w[i])
			}
		}
	}

	code, got := fetchmail(t, home, srv.addr, stls, true)
	if code != 0 {
		t.Fatalf("fetchmail exit %d", code)
	}
	same(got, msgs)

	srv.stop(t)
	srv = start(t, ts, func(o *Options) { o.TLS = cfg })
	if code, got := fetchmail(t, home, srv.addr, stls, true); code != 1 || len(got) != 0 {
		t.Errorf("after a restart: exit %d, %d messages fetched again", code, len(got))
	}

	srv.stop(t)
	ts.rebuild(t, "acct", "INBOX")
	srv = start(t, ts, nil)
	if code, got := fetchmail(t, home, srv.addr, plain, true); code != 1 || len(got) != 0 {
		t.Errorf("after an index rebuild: exit %d, %d messages fetched again", code, len(got))
	}
	extra := "Subject: new\nMessage-ID: <new@x>\n\nnew one\n"
	ts.deliver(t, "acct", "INBOX", extra)
	code, got = fetchmail(t, home, srv.addr, plain, true)
	if code != 0 {
		t.Fatalf("fetchmail exit %d", code)
	}
	same(got, []string{extra})
	if len(srv.ex.Calls()) != 0 {
		t.Fatalf("keep: expunged %q", srv.ex.Calls())
	}

	// Without keep: fetched (the new mail: none) and the old ones deleted?
	// fetchmail deletes what it retrieves; with uidl, old mail is left
	// unless fetched again, so fetch all from a fresh idfile.
	os.Remove(filepath.Join(home, "fetchids"))
	code, got = fetchmail(t, home, srv.addr, plain, false)
	if code != 0 {
		t.Fatalf("fetchmail exit %d", code)
	}
	same(got, append(slices.Clone(msgs), extra))
	srv.waitIdle(t)
	if n := len(ts.rows(t, "acct", "INBOX")); n != 0 {
		t.Errorf("%d rows left after fetchmail deleted all", n)
	}
}
