package pop3_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/nethint"
	"github.com/postfach/postfach/sync/pop3"
)

// TestDovecot runs the client against a real Dovecot POP3 server: seeded
// over IMAP, fetched and deleted over POP3, compared byte for byte. It is
// skipped without Dovecot, and fails without it when CI=true.
func TestDovecot(t *testing.T) {
	user := testenv.User{Name: "pop", Password: "pop-secret"}
	locked := testenv.User{Name: "locked", Password: "locked-secret"}
	d := testenv.StartDovecot(t, user, locked, testenv.WithTLS(testenv.TLSOn),
		// APOP needs the mechanism (and a plaintext passdb); the session
		// lock makes a second session get [IN-USE].
		testenv.WithConfig("auth_mechanisms = plain login apop\npop3_lock_session = yes"))

	msgs := corpus.Generate(42, 8, corpus.Options{
		Folders:            []string{"INBOX"},
		BigAttachmentEvery: 4,
		BigAttachmentSize:  3 << 20,
	})
	msgs = append(msgs, corpus.Message{Folder: "INBOX", Date: time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC), Raw: []byte(
		"From: dots@example.org\r\nSubject: dot-stuffing\r\nMessage-ID: <dots@example.org>\r\n\r\n" +
			".\r\n..\r\n.leading dot\r\n. \r\nend\r\n")})
	// Dovecot keeps a lone CR but serves a bare LF as CRLF, and adds a CRLF
	// to a message without one at its end (which LIST does not count).
	oddRaw := "Subject: odd line ends\r\n\r\na lone \r here\r\nbare\nLF\r\nno final line end"
	oddServed := "Subject: odd line ends\r\n\r\na lone \r here\r\nbare\r\nLF\r\nno final line end\r\n"
	msgs = append(msgs, corpus.Message{Folder: "INBOX", Date: time.Date(2023, 1, 2, 3, 4, 6, 0, time.UTC), Raw: []byte(oddRaw)})
	d.Seed(t, user.Name, msgs)
	served := func(i int) []byte { // message i as Dovecot serves it
		if i == len(msgs)-1 {
			return []byte(oddServed)
		}
		return msgs[i].Raw
	}
	listSize := func(i int) int64 {
		if i == len(msgs)-1 {
			return int64(len(oddServed) - 2)
		}
		return int64(len(msgs[i].Raw))
	}

	dial := func(t *testing.T, addr string, mode pop3.TLSMode) *pop3.Client {
		t.Helper()
		c, err := pop3.Dial(t.Context(), addr, &pop3.Options{TLS: mode, TLSConfig: d.TLSConfig(), Timeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("Dial %s %s: %v", mode, addr, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Dovecot makes a session wait about 10s for the lock before it answers
	// [IN-USE]: run that wait beside the other subtests, with its own user
	// (and not at all with -short).
	inUse := make(chan error, 1)
	if testing.Short() {
		inUse <- nil
	} else {
		go func() { inUse <- secondSession(t, d, locked) }()
	}

	t.Run("login", func(t *testing.T) {
		for _, tc := range []struct {
			addr string
			mode pop3.TLSMode
		}{
			{d.POP3Addr(), pop3.TLSNone},
			{d.POP3Addr(), pop3.TLSStartTLS},
			{d.POP3SAddr(), pop3.TLSImplicit},
		} {
			c := dial(t, tc.addr, tc.mode)
			if c.TLS() != (tc.mode != pop3.TLSNone) {
				t.Errorf("%s: TLS() = %v", tc.mode, c.TLS())
			}
			if err := c.Login(t.Context(), user.Name, user.Password); err != nil {
				t.Fatalf("%s: Login: %v", tc.mode, err)
			}
			if err := c.Quit(); err != nil {
				t.Errorf("%s: Quit: %v", tc.mode, err)
			}
		}
	})

	t.Run("apop and user/pass", func(t *testing.T) {
		c := dial(t, d.POP3Addr(), pop3.TLSNone)
		if err := c.APOP(user.Name, user.Password); err != nil {
			t.Fatalf("APOP: %v (greeting %q)", err, c.Greeting())
		}
		if err := c.Quit(); err != nil {
			t.Error(err)
		}
		c = dial(t, d.POP3Addr(), pop3.TLSNone)
		if err := c.User(user.Name); err != nil {
			t.Fatal(err)
		}
		if err := c.Pass(user.Password); err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Error(err)
		}
	})

	var uids []pop3.MsgInfo
	t.Run("fetch", func(t *testing.T) {
		c := dial(t, d.POP3Addr(), pop3.TLSStartTLS)
		if err := c.Login(t.Context(), user.Name, user.Password); err != nil {
			t.Fatal(err)
		}
		caps, err := c.Capa()
		if err != nil || !caps.Has("PIPELINING") || !caps.Has("UIDL") || !caps.Has("TOP") {
			t.Errorf("Capa() = %v, %v", caps, err)
		}
		n, size, err := c.Stat()
		var total int64
		for i := range msgs {
			total += listSize(i)
		}
		if err != nil || n != len(msgs) || size != total {
			t.Errorf("Stat() = %d, %d, %v; want %d, %d", n, size, err, len(msgs), total)
		}
		list, err := c.List()
		if err != nil || len(list) != len(msgs) {
			t.Fatalf("List() = %v, %v", list, err)
		}
		for i, m := range list {
			if m.Num != i+1 || m.Size != listSize(i) {
				t.Errorf("List()[%d] = %+v, want size %d", i, m, listSize(i))
			}
		}
		uids, err = c.UIDL()
		if err != nil || len(uids) != len(msgs) {
			t.Fatalf("UIDL() = %v, %v", uids, err)
		}
		for _, m := range uids {
			if m.UIDProblem != "" || len(m.UID) != 16 {
				t.Errorf("UID %+v (pop3_uidl_format = %%08Xu%%08Xv)", m)
			}
		}
		if one, err := c.UIDLOne(2); err != nil || one != uids[1] {
			t.Errorf("UIDLOne(2) = %+v, %v; want %+v", one, err, uids[1])
		}

		r, err := c.Top(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		head, err := io.ReadAll(r)
		hdrEnd := bytes.Index(msgs[0].Raw, []byte("\r\n\r\n")) + 4
		if err != nil || !bytes.Equal(head, msgs[0].Raw[:hdrEnd]) {
			t.Errorf("TOP 1 0 = %q, %v; want the header %q", head, err, msgs[0].Raw[:hdrEnd])
		}

		nums := make([]int, len(msgs))
		for i := range nums {
			nums[i] = len(msgs) - i // backwards, to see that order is kept
		}
		var got []int
		err = c.RetrMany(t.Context(), nums, func(num int, r io.Reader) error {
			got = append(got, num)
			return compareReader(r, served(num-1))
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, nums) {
			t.Errorf("RetrMany called fn for %v, want %v", got, nums)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if len(uids) != len(msgs) {
			t.Fatal("an earlier subtest failed to list the messages")
		}
		// Without QUIT nothing is deleted.
		c := dial(t, d.POP3Addr(), pop3.TLSNone)
		if err := c.Login(t.Context(), user.Name, user.Password); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleMany(t.Context(), []int{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if n, _, err := c.Stat(); n != len(msgs)-3 || err != nil {
			t.Errorf("Stat after DELE = %d, %v", n, err)
		}
		err := c.Dele(2)
		var e *pop3.Error
		if !errors.As(err, &e) || e.Command != "DELE 2" {
			t.Errorf("second DELE 2 = %v", err)
		}
		c.Close()
		remaining(t, d, user, uids)

		// With QUIT they are gone.
		c = dial(t, d.POP3Addr(), pop3.TLSNone)
		if err := c.Login(t.Context(), user.Name, user.Password); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleMany(t.Context(), []int{1, 3}); err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
		remaining(t, d, user, slices.Concat(uids[1:2], uids[3:]))
	})

	if err := <-inUse; err != nil {
		t.Error(err)
	}

	// Last: after a failed login Dovecot delays every later login from the
	// same address by seconds (auth penalty), even with auth_failure_delay=0.
	t.Run("wrong password", func(t *testing.T) {
		c := dial(t, d.POP3Addr(), pop3.TLSNone)
		err := c.Login(t.Context(), user.Name, "wrong")
		if !pop3.IsAuthError(err) || pop3.IsTemporary(err) || !nethint.Permanent(err) ||
			err.Error() != "pop3: AUTH PLAIN: -ERR [AUTH] Authentication failed." {
			t.Errorf("Login with a wrong password = %v", err)
		}
	})
}

// secondSession logs in as user twice; the second session must be refused
// with a temporary error while the first holds the lock.
func secondSession(t *testing.T, d *testenv.Dovecot, user testenv.User) error {
	ctx := t.Context()
	opts := &pop3.Options{TLS: pop3.TLSNone, Timeout: 60 * time.Second}
	c1, err := pop3.Dial(ctx, d.POP3Addr(), opts)
	if err != nil {
		return err
	}
	defer c1.Close()
	if err := c1.Login(ctx, user.Name, user.Password); err != nil {
		return err
	}
	c2, err := pop3.Dial(ctx, d.POP3Addr(), opts)
	if err != nil {
		return err
	}
	defer c2.Close()
	err = c2.Login(ctx, user.Name, user.Password)
	var e *pop3.Error
	if !errors.As(err, &e) || e.Code != "IN-USE" || !pop3.IsTemporary(err) || pop3.IsAuthError(err) || nethint.Permanent(err) {
		return fmt.Errorf("second session: Login = %v, want -ERR [IN-USE]", err)
	}
	return c1.Quit()
}

// remaining checks that the maildrop holds the messages with these UIDs,
// renumbered from 1.
func remaining(t *testing.T, d *testenv.Dovecot, user testenv.User, want []pop3.MsgInfo) {
	t.Helper()
	c, err := pop3.Dial(t.Context(), d.POP3Addr(), &pop3.Options{TLS: pop3.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(t.Context(), user.Name, user.Password); err != nil {
		t.Fatal(err)
	}
	got, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	var gotUIDs, wantUIDs []string
	for _, m := range got {
		gotUIDs = append(gotUIDs, m.UID)
	}
	for _, m := range want {
		wantUIDs = append(wantUIDs, m.UID)
	}
	if !slices.Equal(gotUIDs, wantUIDs) {
		t.Errorf("UIDs on the server: %v, want %v", gotUIDs, wantUIDs)
	}
	if err := c.Quit(); err != nil {
		t.Error(err)
	}
}

// compareReader reads r to the end and compares it with want, without
// holding more than a buffer of r at a time.
func compareReader(r io.Reader, want []byte) error {
	buf := make([]byte, 64<<10)
	off := 0
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if off+n > len(want) || !bytes.Equal(buf[:n], want[off:off+n]) {
				end := min(off+n, len(want))
				return fmt.Errorf("body differs at octet %d (of %d): got %q, want %q",
					off, len(want), cut(buf[:n]), cut(want[off:end]))
			}
			off += n
		}
		if err == io.EOF {
			if off != len(want) {
				return fmt.Errorf("body is %d octets, want %d", off, len(want))
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func cut(b []byte) []byte { return b[:min(len(b), 80)] }
