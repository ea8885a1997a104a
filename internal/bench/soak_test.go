package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
)

// TestSoakSmoke runs the soak scenario for a few seconds: the agent runs,
// is sampled in busy and quiet halves, stops on SIGTERM, and both sides
// verify against the changes made.
func TestSoakSmoke(t *testing.T) {
	testenv.NeedDovecot(t) // fails, not skips, with CI=true
	o := soakOptions{duration: 6 * time.Second, cycle: 6 * time.Second, interval: 500 * time.Millisecond, rate: 240, messages: 40}
	if testing.Short() {
		o.duration, o.cycle = 4*time.Second, 4*time.Second
	}
	rep, err := soak(context.Background(), o, []string{"-duration", o.duration.String()}, io.Discard)
	var out strings.Builder
	if rep != nil {
		rep.writeText(&out)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	phases := map[string]int{}
	for _, s := range rep.Samples {
		phases[s.Phase]++
		if s.RSSKiB <= 0 || s.Threads <= 0 || s.FDs <= 0 {
			t.Errorf("sample %+v: a zero reading", s)
		}
	}
	if phases["busy"] == 0 || phases["quiet"] == 0 {
		t.Errorf("samples per phase %v, want both", phases)
	}
	if rep.Verified == "" || rep.Changes[0] == 0 || rep.Changes[1] == 0 {
		t.Errorf("changes %v, verified %q", rep.Changes, rep.Verified)
	}
	// Six seconds are too few to judge idle CPU (the quiet half may begin
	// while the agent still syncs what the busy half did): the smoke run
	// checks the resources; the hour-long run judges the CPU as well.
	for _, c := range rep.Checks {
		if !c.Passed && !strings.HasPrefix(c.What, "CPU") {
			t.Errorf("%s not flat:\n%s", c.What, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}
