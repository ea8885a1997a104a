package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
)

// TestTwowaySmoke runs the twoway scenario (scale's unit) on a tiny
// mailbox of the real corpus, built as the scale scenario builds it: every
// phase (the second no-change resync too) timed and verified for both
// tools, with a peak RSS for every process, and -changes taken as a share.
func TestTwowaySmoke(t *testing.T) {
	testenv.NeedDovecot(t) // fails, not skips, with CI=true
	if _, err := exec.LookPath("mbsync"); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("skipping: needs mbsync (apt-get install isync): %v", err)
		}
		t.Fatal(err)
	}
	var o scaleOptions
	o.sizes = []int{40}
	o.seed, o.runs, o.local, o.corpus = 1, 1, 6, corpusReal
	o.changeShare = share{pct: 5, of: true}
	o.dir = t.TempDir()
	// Dovecot's users must pass through the parents, as with -dir.
	for d := o.dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reps, err := scaleReports(context.Background(), o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := reps[0]
	var out strings.Builder
	rep.writeText(&out)
	t.Logf("\n%s", out.String())
	if rep.Corpus.Messages != 40 || !strings.HasPrefix(rep.CorpusKind, "real") || rep.Changes != 2 || rep.LocalChanges != 6 {
		t.Errorf("%d messages, corpus %q, changes %d, local %d", rep.Corpus.Messages, rep.CorpusKind, rep.Changes, rep.LocalChanges)
	}
	var names []string
	for _, ph := range rep.Phases {
		names = append(names, ph.Name)
		for _, pr := range ph.Peers {
			if len(pr.Runs) != 1 || pr.Median.Wall <= 0 || pr.Median.MaxRSSKiB <= 0 {
				t.Errorf("%s, %s: runs %+v", ph.Name, pr.Peer, pr.Runs)
			}
		}
	}
	want := []string{phaseInitialOnce, phaseIncremental, phaseResync, phaseResyncAgain}
	if !slices.Equal(names, want) {
		t.Errorf("phases %q, want %q", names, want)
	}
	if ph := rep.Phases[1]; ph.Work != 2+2+6 {
		t.Errorf("incremental counted as %d changes, want 10", ph.Work)
	}
	if f := rep.Floor; f == nil || len(f.Runs) != 1 || f.Median <= 0 || f.Folders <= 0 || len(f.Ratios) != 4 {
		t.Errorf("server floor %+v", f)
	} else if !strings.Contains(out.String(), "server floor of a no-change run: ") {
		t.Errorf("the text report lacks the server floor")
	}
	var js strings.Builder
	if err := rep.writeJSON(&js); err != nil || !strings.Contains(js.String(), `"server_floor": {`) {
		t.Errorf("the JSON report lacks the server floor (%v)", err)
	}
}

// TestGrowth checks the scale table: each job and tool at each size, the
// ratios last/first of time and peak RSS.
func TestGrowth(t *testing.T) {
	var reps []*report
	for i, n := range []int{10000, 100000} {
		r := &report{Scenario: "scale", Runs: 1, Changes: n / 100, LocalChanges: 100, CorpusKind: "real",
			Peers: []peerInfo{{Name: "postfach"}, {Name: "mbsync"}}}
		r.Corpus.Messages = n
		f := time.Duration(1 + 9*i) // ×10 at the second size
		for _, ph := range []string{phaseInitialOnce, phaseResync, phaseResyncAgain} {
			r.add(ph, n, "postfach", sample{Wall: f * time.Second, MaxRSSKiB: int64(1+i) * 1024})
			r.add(ph, n, "mbsync", sample{Wall: 2 * f * time.Second, MaxRSSKiB: 512})
		}
		r.finish()
		reps = append(reps, r)
	}
	g := growthOf(reps)
	if len(g) != 6 {
		t.Fatalf("%d rows, want 6", len(g))
	}
	if r := g[2]; r.Phase != phaseResync || r.Peer != "postfach" || r.WallRatio != 10 || r.RSSRatio != 2 || !slices.Equal(r.WallS, []float64{1, 10}) {
		t.Errorf("row %+v", r)
	}
	if r := g[5]; r.Phase != phaseResyncAgain || r.Peer != "mbsync" || r.WallRatio != 10 || r.RSSRatio != 1 {
		t.Errorf("row %+v", r)
	}
	// Each report shows every phase's peak RSS beside its time.
	var one strings.Builder
	reps[1].writeText(&one)
	if !strings.Contains(one.String(), "postfach peak RSS") || !regexp.MustCompile(`resync again +10\.000 s +20\.000 s +0\.50 +2\.0 MiB +0\.5 MiB`).MatchString(one.String()) {
		t.Errorf("report lacks the peak RSS beside the time:\n%s", one.String())
	}
	var out strings.Builder
	writeGrowth(&out, reps, g)
	for _, want := range []string{"from 10000 to 100000 messages (mailbox ×10.0", "peak RSS @100000", "resync again  postfach", "at 100000: 1000 \\Seen toggled + 1000 new upstream, 100 local"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("10000, 100000")
	if err != nil || !slices.Equal(got, []int{10000, 100000}) {
		t.Errorf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"10000", "100000,10000", "0,10", "a,b"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q): no error", bad)
		}
	}
}
