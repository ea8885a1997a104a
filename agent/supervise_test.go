package agent

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/postfach/postfach/configs"
)

// TestBackoff: waits of 1 s, 2 s, 4 s ... (±20 %) up to a minute, and
// from 1 s again after a reset.
func TestBackoff(t *testing.T) {
	var b backoff
	want := time.Second
	for i := range 15 {
		d := b.delay()
		lo, hi := time.Duration(float64(want)*0.8), time.Duration(float64(want)*1.2)
		if d < lo || d > hi {
			t.Fatalf("wait %d: %v, want %v..%v", i, d, lo, hi)
		}
		want = min(2*want, backoffMax)
	}
	if want != backoffMax {
		t.Fatalf("15 waits did not reach the cap: %v", want)
	}
	b.reset()
	if d := b.delay(); d > 1200*time.Millisecond {
		t.Errorf("after a reset: %v, want about 1 s", d)
	}
}

// TestNudgeCoalesces: nudges never block, however many come while the
// service is busy; they leave one wake-up and every folder named.
func TestNudgeCoalesces(t *testing.T) {
	d := &daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s := newService(d, &configs.Account{Name: "work"})
	done := make(chan struct{})
	go func() {
		for range 1000 {
			s.Nudge("INBOX")
			s.Nudge("Lists/Go")
		}
		s.Nudge("")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Nudge blocked")
	}
	if len(s.wake) != 1 {
		t.Errorf("%d wake-ups pending, want 1", len(s.wake))
	}
	if got := slices.Sorted(maps.Keys(s.pending)); !slices.Equal(got, []string{"", "INBOX", "Lists/Go"}) {
		t.Errorf("pending folders %q", got)
	}
}

// TestSameAccount: where an account stands in the file does not make it
// changed; any setting does.
func TestSameAccount(t *testing.T) {
	a := configs.Account{Name: "work", Host: "h", Password: "p", Line: 3, Folders: []string{"*"},
		SMTP: &configs.SMTP{Host: "s", Line: 9}}
	b := a
	b.Line, b.Folders = 30, []string{"*"}
	b.SMTP = &configs.SMTP{Host: "s", Line: 40}
	if !sameAccount(&a, &b) {
		t.Error("an account moved in the file counts as changed")
	}
	for _, change := range []func(*configs.Account){
		func(c *configs.Account) { c.Password = "q" },
		func(c *configs.Account) { c.PollInterval = time.Minute },
		func(c *configs.Account) { c.IdleFolders = []string{"INBOX"} },
		func(c *configs.Account) { c.SMTP = &configs.SMTP{Host: "t"} },
	} {
		c := b
		change(&c)
		if sameAccount(&a, &c) {
			t.Errorf("a changed account counts as the same: %+v", c)
		}
	}
	if a.Line != 3 || a.SMTP.Line != 9 {
		t.Error("sameAccount changed its arguments")
	}
}
