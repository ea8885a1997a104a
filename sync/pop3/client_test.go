package pop3

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestGreetingAPOP(t *testing.T) {
	// The example of RFC 1939 section 7.
	c := dialFake(t, `
		S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
		C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
		S: +OK maildrop has 1 message (369 octets)
		C: QUIT
		S: +OK bye
	`, nil)
	if got := c.Greeting(); got != "POP3 server ready <1896.697170952@dbc.mtview.ca.us>" {
		t.Errorf("Greeting() = %q", got)
	}
	if err := c.APOP("mrose", "tanstaaf"); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); !errors.Is(err, ErrClosed) {
		t.Errorf("Noop after Quit: %v, want ErrClosed", err)
	}
}

func TestAPOPWithoutTimestamp(t *testing.T) {
	c := dialFake(t, `S: +OK ready`, nil)
	if err := c.APOP("u", "p"); !errors.Is(err, ErrNoAPOP) {
		t.Errorf("APOP = %v, want ErrNoAPOP", err)
	}
}

func TestGreetingRefused(t *testing.T) {
	addr := startFake(t, `S: -ERR [SYS/TEMP] Too many connections, try later`, false)
	_, err := Dial(t.Context(), addr, &Options{TLS: TLSNone})
	var e *Error
	if !errors.As(err, &e) || e.Command != "greeting" || e.Code != "SYS/TEMP" || !IsTemporary(err) {
		t.Fatalf("Dial = %v, want a temporary *Error for the greeting", err)
	}
	if want := "pop3: greeting: -ERR [SYS/TEMP] Too many connections, try later"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

func TestCapaCached(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK Capability list follows
		S: TOP
		S: UIDL
		S: SASL PLAIN login
		S: RESP-CODES
		S: pipelining
		S: IMPLEMENTATION Fake 1.0
		S: .
	`, nil)
	caps, err := c.Capa()
	if err != nil {
		t.Fatal(err)
	}
	want := Caps{"TOP": {}, "UIDL": {}, "SASL": {"PLAIN", "login"}, "RESP-CODES": {},
		"PIPELINING": {}, "IMPLEMENTATION": {"Fake", "1.0"}}
	if !reflect.DeepEqual(caps, want) {
		t.Errorf("Capa() = %v, want %v", caps, want)
	}
	if !caps.HasSASL("LOGIN") || !caps.Has("Pipelining") || caps.Has("STLS") {
		t.Errorf("Has/HasSASL wrong for %v", caps)
	}
	caps["TOP"] = nil      // the cache is not shared
	again, err := c.Capa() // from the cache: the script has no second CAPA
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("second Capa() = %v, %v", again, err)
	}
}

func TestCapaUnknown(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: -ERR unknown command
		C: USER bob
		S: +OK
		C: PASS secret
		S: +OK logged in
	`, nil)
	caps, err := c.Capa()
	if err != nil || len(caps) != 0 {
		t.Fatalf("Capa() = %v, %v; want none, nil", caps, err)
	}
	// Login asks again only after logging in; here it uses the cache.
	if err := c.Login(t.Context(), "bob", "secret"); err != nil {
		t.Fatal(err)
	}
}

func TestLoginUserPass(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: USER
		S: RESP-CODES
		S: .
		C: USER bob
		S: +OK
		C: PASS wrong
		S: -ERR [AUTH] Authentication failed.
		C: USER bob
		S: +OK
		C: PASS secret
		S: +OK Logged in.
		C: CAPA
		S: +OK
		S: USER
		S: PIPELINING
		S: .
		C: STAT
		S: +OK 2 320
	`, nil)
	err := c.Login(t.Context(), "bob", "wrong")
	if want := "pop3: PASS: -ERR [AUTH] Authentication failed."; err == nil || err.Error() != want {
		t.Fatalf("Login = %v, want %q", err, want)
	}
	if !IsAuthError(err) || IsTemporary(err) {
		t.Errorf("IsAuthError = %v, IsTemporary = %v", IsAuthError(err), IsTemporary(err))
	}
	if err := c.Login(t.Context(), "bob", "secret"); err != nil {
		t.Fatal(err)
	}
	caps, err := c.Capa() // asked again after login
	if err != nil || !caps.Has("PIPELINING") {
		t.Fatalf("Capa after login = %v, %v", caps, err)
	}
	n, size, err := c.Stat()
	if n != 2 || size != 320 || err != nil {
		t.Errorf("Stat() = %d, %d, %v", n, size, err)
	}
}

func TestLoginSASLPlain(t *testing.T) {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00s3cret"))
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: SASL PLAIN
		S: USER
		S: .
		C: AUTH PLAIN `+ir+`
		S: -ERR [IN-USE] Mailbox locked by another session
		C: AUTH PLAIN `+ir+`
		S: +OK Logged in.
	`, nil)
	err := c.Login(t.Context(), "bob", "s3cret")
	if want := "pop3: AUTH PLAIN: -ERR [IN-USE] Mailbox locked by another session"; err == nil || err.Error() != want {
		t.Fatalf("Login = %v, want %q", err, want)
	}
	if IsAuthError(err) || !IsTemporary(err) {
		t.Errorf("IsAuthError = %v, IsTemporary = %v", IsAuthError(err), IsTemporary(err))
	}
	if err := c.Login(t.Context(), "bob", "s3cret"); err != nil {
		t.Fatal(err)
	}
}

func TestAuthLongInitialResponse(t *testing.T) {
	pass := strings.Repeat("p", 300)
	ir := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00" + pass))
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: SASL PLAIN
		S: .
		C: AUTH PLAIN
		S: +
		C: `+ir+`
		S: +OK Logged in.
	`, nil)
	if err := c.Login(t.Context(), "bob", pass); err != nil {
		t.Fatal(err)
	}
}

func TestCommandLineChecks(t *testing.T) {
	c := dialFake(t, `S: +OK ready`, nil)
	if err := c.User("bob\r\nDELE 1"); err == nil {
		t.Error("User with CRLF: no error")
	}
	if err := c.Pass(strings.Repeat("x", 300)); err == nil || !strings.Contains(err.Error(), "255") {
		t.Errorf("Pass with a 300-octet password: %v", err)
	}
	if err := c.Dele(0); err == nil {
		t.Error("Dele(0): no error")
	}
	if _, err := c.Top(1, -1); err == nil {
		t.Error("Top(1, -1): no error")
	}
}

func TestStatListUIDL(t *testing.T) {
	long := strings.Repeat("u", 71)
	var logBuf syncBuffer
	c := dialFake(t, `
		S: +OK ready
		C: STAT
		S: +OK 3 4711
		C: LIST
		S: +OK 3 messages
		S: 1 120
		S: 2 4500 extra info is allowed
		S: 3 91
		S: .
		C: UIDL
		S: +OK
		S: 1 000000017a4f
		S: 2 `+long+`
		S: 3 000000017a4f
		S: .
		C: UIDL 2
		S: +OK 2 abc
		C: UIDL 9
		S: -ERR There's no message 9.
	`, &Options{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	n, size, err := c.Stat()
	if n != 3 || size != 4711 || err != nil {
		t.Errorf("Stat() = %d, %d, %v", n, size, err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if want := []MsgInfo{{Num: 1, Size: 120}, {Num: 2, Size: 4500}, {Num: 3, Size: 91}}; !reflect.DeepEqual(list, want) {
		t.Errorf("List() = %v, want %v", list, want)
	}
	uids, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	if len(uids) != 3 || uids[0] != (MsgInfo{Num: 1, UID: "000000017a4f"}) {
		t.Fatalf("UIDL() = %v", uids)
	}
	if uids[1].UID != long || !strings.Contains(uids[1].UIDProblem, "more than 70") {
		t.Errorf("over-long UID: %+v", uids[1])
	}
	if uids[2].UID != "000000017a4f" || uids[2].UIDProblem != "same UID as message 1" {
		t.Errorf("repeated UID: %+v", uids[2])
	}
	if !strings.Contains(logBuf.String(), "count=2") {
		t.Errorf("no warning logged: %q", logBuf.String())
	}
	m, err := c.UIDLOne(2)
	if m != (MsgInfo{Num: 2, UID: "abc"}) || err != nil {
		t.Errorf("UIDLOne(2) = %+v, %v", m, err)
	}
	_, err = c.UIDLOne(9)
	var e *Error
	if !errors.As(err, &e) || e.Command != "UIDL 9" || e.Code != "" || IsAuthError(err) {
		t.Errorf("UIDLOne(9) = %v", err)
	}
}

func TestDeleQuit(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: DELE 1
		S: +OK Marked to be deleted.
		C: DELE 1
		S: -ERR Message is deleted.
		C: RSET
		S: +OK
		C: DELE 2
		S: +OK
		C: QUIT
		S: -ERR [SYS/PERM] Some deleted messages were not removed
	`, nil)
	if err := c.Dele(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Dele(1); !errors.As(err, new(*Error)) || IsTemporary(err) {
		t.Errorf("second DELE 1: %v", err)
	}
	if err := c.Rset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Dele(2); err != nil {
		t.Fatal(err)
	}
	err := c.Quit()
	var e *Error
	if !errors.As(err, &e) || e.Code != "SYS/PERM" || IsTemporary(err) {
		t.Errorf("Quit = %v", err)
	}
	if err := c.Noop(); !errors.Is(err, ErrClosed) {
		t.Errorf("Noop after Quit: %v", err)
	}
}

func TestSTLS(t *testing.T) {
	addr := startFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: STLS
		S: USER
		S: .
		C: STLS
		S: +OK Begin TLS negotiation now.
		TLS
		C: CAPA
		S: +OK
		S: USER
		S: SASL PLAIN
		S: .
		C: AUTH PLAIN AGJvYgBzZWNyZXQ=
		S: +OK Logged in.
		C: QUIT
		S: +OK
	`, false)
	var debug syncBuffer
	c, err := Dial(t.Context(), addr, &Options{TLS: TLSStartTLS, TLSConfig: clientTLS, Debug: &debug})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.TLS() {
		t.Error("TLS() = false after STLS")
	}
	if err := c.Login(t.Context(), "bob", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if d := debug.String(); !strings.Contains(d, "C"+"APA\r\n+OK\r\nUSER\r\nSASL PLAIN") || !strings.Contains(d, "AUTH PLAIN AGJvYgBzZWNyZXQ=") {
		t.Errorf("debug output misses the traffic after STLS:\n%s", d)
	}
}

func TestSTLSMissing(t *testing.T) {
	addr := startFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: USER
		S: .
	`, false)
	_, err := Dial(t.Context(), addr, &Options{TLS: TLSStartTLS, TLSConfig: clientTLS})
	if !errors.Is(err, ErrNoSTLS) {
		t.Fatalf("Dial = %v, want ErrNoSTLS", err)
	}
}

func TestSTLSInjection(t *testing.T) {
	// The server sends a reply before the handshake in the same packet as
	// its +OK: it must not be taken as part of the TLS session.
	addr := startFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: STLS
		S: .
		C: STLS
		R: +OK go ahead\r\n+OK injected\r\n
	`, false)
	_, err := Dial(t.Context(), addr, &Options{TLS: TLSStartTLS, TLSConfig: clientTLS})
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("Dial = %v, want a ProtocolError", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	addr := startFake(t, `
		S: +OK ready
		C: NOOP
		S: +OK
	`, true)
	c, err := Dial(t.Context(), addr, &Options{TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.TLS() {
		t.Error("TLS() = false")
	}
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	// Without the test CA the certificate is refused.
	addr = startFake(t, ``, true)
	if _, err := Dial(t.Context(), addr, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Dial with an unknown CA = %v", err)
	}
}

func TestOptionsChecked(t *testing.T) {
	if _, err := Dial(t.Context(), "127.0.0.1:1", &Options{TLS: "ssl"}); err == nil || !strings.Contains(err.Error(), "unknown TLS mode") {
		t.Errorf("Dial with TLS ssl = %v", err)
	}
	if _, err := Dial(t.Context(), "no-port", nil); err == nil {
		t.Error("Dial without a port: no error")
	}
}
