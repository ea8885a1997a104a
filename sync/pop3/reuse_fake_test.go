package pop3

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Scripted servers that give an identity that named a stored message to a
// new one. In each case the new message must be downloaded before anything
// is deleted, and a DELE must go only to a message whose content is stored.

// lfMsg is a message as the fetcher stores it (CRLF as LF).
func lfMsg(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// sent is the script lines that send a message's lines, then the end.
func sent(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("S: " + l + "\n")
	}
	return b.String() + "S: .\n"
}

// lostQuit ends a session whose QUIT the server carries out but whose reply
// never arrives.
const lostQuit = `
	C: QUIT
	CLOSE
`

func checkStored(t *testing.T, s *fakeStore, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := s.messages(); !slices.Equal(got, want) {
		t.Errorf("stored %q\nwant %q", got, want)
	}
}

// Without UIDL, the identity is the header and the size: a message with the
// header and size of one deleted earlier is a new message.
func TestFetchNoUIDLReused(t *testing.T) {
	one := []string{"Subject: alarm", "", "body one"}
	two := []string{"Subject: alarm", "", "body two"} // same header, same size
	noUIDL := fakeLogin + `
		C: UIDL
		S: -ERR unknown command
		C: LIST
		S: +OK
		S: 1 28
		S: .
		C: TOP 1 0
		S: +OK
		S: Subject: alarm
		S:
		S: .
	`

	t.Run("after a deletion", func(t *testing.T) {
		s := newFakeStore(t)
		res, err := s.run(noUIDL+"C: RETR 1\nS: +OK\n"+sent(one...)+`
			C: DELE 1
			S: +OK
			C: QUIT
			S: +OK
		`, false, 0)
		if err != nil || res.New != 1 || res.Deleted != 1 {
			t.Fatalf("first run: %+v, %v", res, err)
		}
		res, err = s.run(noUIDL+"C: RETR 1\nS: +OK\n"+sent(two...)+`
			C: DELE 1
			S: +OK
			C: QUIT
			S: +OK
		`, false, 0)
		if err != nil || res.New != 1 || res.Deleted != 1 {
			t.Errorf("second run: %+v, %v", res, err)
		}
		checkStored(t, s, lfMsg(one...), lfMsg(two...))
	})

	// The first run's QUIT reply is lost: its identity is remembered, and
	// only the body can tell whether the message listed next time is the
	// one stored. It is downloaded and compared before any DELE.
	for _, tc := range []struct {
		name  string
		body  []string
		want  []string
		isNew int
	}{
		{"lost quit, new message", two, []string{lfMsg(one...), lfMsg(two...)}, 1},
		{"lost quit, same message", one, []string{lfMsg(one...)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore(t)
			res, err := s.run(noUIDL+"C: RETR 1\nS: +OK\n"+sent(one...)+`
				C: DELE 1
				S: +OK
			`+lostQuit, false, 0)
			if err == nil || res.New != 1 || res.Deleted != 0 {
				t.Fatalf("first run: %+v, %v", res, err)
			}
			res, err = s.run(noUIDL+"C: RETR 1\nS: +OK\n"+sent(tc.body...)+`
				C: DELE 1
				S: +OK
				C: QUIT
				S: +OK
			`, false, 0)
			if err != nil || res.New != tc.isNew || res.Deleted != 1 {
				t.Errorf("second run: %+v, %v", res, err)
			}
			checkStored(t, s, tc.want...)
			if u := s.uidls(); len(u) != 0 {
				t.Errorf("identities of deleted messages kept: %v", u)
			}
		})
	}
}

// A UIDL whose message left the server comes back on a message of the same
// size with another header.
func TestFetchReusedUIDLSameSize(t *testing.T) {
	one := []string{"Subject: one", "", "body"}
	two := []string{"Subject: two", "", "body"}
	listing := fakeLogin + `
		C: UIDL
		S: +OK
		S: 1 a
		S: .
		C: LIST
		S: +OK
		S: 1 22
		S: .
	`
	first := listing + "C: RETR 1\nS: +OK\n" + sent(one...)

	// keep=false: the first run's QUIT reply is lost, so UIDL a is still
	// known when it names message two.
	t.Run("keep=false", func(t *testing.T) {
		s := newFakeStore(t)
		if res, err := s.run(first+"C: DELE 1\nS: +OK\n"+lostQuit, false, 0); err == nil || res.New != 1 {
			t.Fatalf("first run: %+v, %v", res, err)
		}
		res, err := s.run(listing+"C: TOP 1 0\nS: +OK\n"+sent(two[:2]...)+"C: RETR 1\nS: +OK\n"+sent(two...)+`
			C: DELE 1
			S: +OK
			C: QUIT
			S: +OK
		`, false, 0)
		if err != nil || res.New != 1 || res.Reused != 1 || res.Deleted != 1 {
			t.Errorf("second run: %+v, %v", res, err)
		}
		checkStored(t, s, lfMsg(one...), lfMsg(two...))
	})

	// delete_after_days: the stored copy is old enough to go when the
	// UIDL names another message: that one is downloaded, and kept on the
	// server until it is old enough itself.
	t.Run("delete_after_days", func(t *testing.T) {
		s := newFakeStore(t)
		if res, err := s.run(first+"C: QUIT\nS: +OK\n", true, 1); err != nil || res.New != 1 {
			t.Fatalf("first run: %+v, %v", res, err)
		}
		defer SetTestClock(func() time.Time { return time.Now().AddDate(0, 0, 2) })()
		res, err := s.run(listing+"C: TOP 1 0\nS: +OK\n"+sent(two[:2]...)+"C: RETR 1\nS: +OK\n"+sent(two...)+`
			C: QUIT
			S: +OK
		`, true, 1)
		if err != nil || res.New != 1 || res.Reused != 1 || res.Deleted != 0 {
			t.Errorf("second run: %+v, %v", res, err)
		}
		checkStored(t, s, lfMsg(one...), lfMsg(two...))
		if u := s.uidls(); len(u) != 1 || u["a"].MessageID == 0 {
			t.Errorf("identities %v", u)
		}
	})

	// The same message after a lost QUIT: its header matches the stored
	// copy, so it is deleted without a second download; unless the server
	// refuses TOP or the local copy is gone: then it stays on the server.
	t.Run("same message", func(t *testing.T) {
		s := newFakeStore(t)
		if res, err := s.run(first+"C: DELE 1\nS: +OK\n"+lostQuit, false, 0); err == nil || res.New != 1 {
			t.Fatalf("first run: %+v, %v", res, err)
		}
		res, err := s.run(listing+"C: TOP 1 0\nS: -ERR no TOP here\nC: QUIT\nS: +OK\n", false, 0)
		if err != nil || res.New != 0 || res.Deleted != 0 || res.Unproven != 1 {
			t.Errorf("run without TOP: %+v, %v", res, err)
		}
		res, err = s.run(listing+"C: TOP 1 0\nS: +OK\n"+sent(one[:2]...)+"C: DELE 1\nS: +OK\nC: QUIT\nS: +OK\n", false, 0)
		if err != nil || res.New != 0 || res.Deleted != 1 {
			t.Errorf("run with TOP: %+v, %v", res, err)
		}
		checkStored(t, s, lfMsg(one...))
	})
}
