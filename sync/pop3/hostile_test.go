package pop3

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A message longer than its LIST size allows (past the slack) is not
// stored, not even in part, and is reported; its rest is read and thrown
// away, and the messages after it are fetched in the same session. One a
// little longer (within the slack) is stored as sent.
func TestFetchBodyLongerThanListed(t *testing.T) {
	s := newFakeStore(t)
	res, err := s.run(fakeLogin+`
		C: UIDL
		S: +OK
		S: 1 one
		S: 2 two
		S: 3 three
		S: 4 four
		S: .
		C: LIST
		S: +OK
		S: 1 22
		S: 2 1000
		S: 3 24
		S: 4 12
		S: .
		C: CAPA
		S: +OK
		S: USER
		S: .
		C: RETR 1
		S: +OK
		S: Subject: one
		S:
		S: body
		S: .
		C: RETR 2
		S: +OK
		S: Subject: two
		S:
		BIG 300000
		C: RETR 3
		S: +OK
		S: Subject: three
		S:
		S: body
		S: .
		C: RETR 4
		S: +OK
		S: Subject: four
		S:
		S: a little longer than listed
		S: .
		C: QUIT
		S: +OK
	`, true, 0)
	var tooLarge *TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Num != 2 || tooLarge.Listed != 1000 || tooLarge.Ended {
		t.Fatalf("Fetch error = %v; want message 2 too large", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "message 2") || !strings.Contains(msg, "not stored") || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q", msg)
	}
	if res == nil || res.New != 3 || res.Failed != 1 {
		t.Fatalf("result %+v", res)
	}
	got := s.messages()
	want := []string{"Subject: four\n\na little longer than listed\n", "Subject: one\n\nbody\n", "Subject: three\n\nbody\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stored %q, want %q", got, want)
	}
	if _, ok := s.uidls()["two"]; ok {
		t.Error("the refused message's identity was recorded")
	}
}

// A body that goes on and on (an endless RETR) is stopped: nothing of it is
// stored, the session ends after at most the drain budget, and what came
// before it is stored.
func TestFetchBodyEndless(t *testing.T) {
	s := newFakeStore(t)
	flooded.Store(0)
	res, err := s.run(fakeLogin+`
		C: UIDL
		S: +OK
		S: 1 one
		S: 2 two
		S: .
		C: LIST
		S: +OK
		S: 1 22
		S: 2 1000
		S: .
		C: CAPA
		S: +OK
		S: USER
		S: .
		C: RETR 1
		S: +OK
		S: Subject: one
		S:
		S: body
		S: .
		C: RETR 2
		S: +OK
		S: Subject: two
		S:
		FLOOD 200000000 endless endless endless endless endless endless endless
	`, true, 0)
	var tooLarge *TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Num != 2 {
		t.Fatalf("Fetch error = %v; want message 2 too large", err)
	}
	if res == nil || res.New != 1 {
		t.Fatalf("result %+v", res)
	}
	if got := s.messages(); len(got) != 1 || got[0] != "Subject: one\n\nbody\n" {
		t.Errorf("stored %q", got)
	}
	// The client hung up after the drain budget (plus what the socket
	// buffers held), far from the 200 MB the server meant to send.
	if n := flooded.Load(); n > 64<<20 {
		t.Errorf("the server sent %d bytes before the client hung up", n)
	}
}

// A UIDL listing that never ends is refused once it passes maxReplyBytes,
// with a clear error, in bounded memory.
func TestUIDLListingBounded(t *testing.T) {
	flooded.Store(0)
	line := "1 " + strings.Repeat("u", 8000)
	c := dialFake(t, `
		S: +OK ready
		C: UIDL
		S: +OK
		FLOOD 300000000 `+line+`
	`, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	begin := time.Now()
	_, err := c.UIDL()
	runtime.ReadMemStats(&after)
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "reply longer than") {
		t.Fatalf("UIDL = %v; want a protocol error for the length", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 3*maxReplyBytes {
		t.Errorf("UIDL allocated %d bytes", n)
	}
	if n := flooded.Load(); n > 2*maxReplyBytes {
		t.Errorf("the server sent %d bytes before the client hung up (took %v)", n, time.Since(begin))
	}
}
