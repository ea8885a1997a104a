package imapsync_test

import (
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestNoActions: with NoActions a run keeps no Action (one per message
// downloaded otherwise: 8 MB for 100,000 new messages, issue 14) and
// counts as before; the next run without it records its actions again.
func TestNoActions(t *testing.T) {
	e := newEnv(t)
	const n = 30
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(37, n, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.opts = func(o *imapsync.Options) { o.NoActions = true }
	res, _ := e.sync()
	if got := res.Totals().New; got != n {
		t.Errorf("%d new messages, want %d", got, n)
	}
	if acts := res.Actions(); len(acts) != 0 {
		t.Errorf("%d actions kept, want none: %v", len(acts), acts[0])
	}
	e.compare()

	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(38, 3, corpus.Options{}))
	e.opts = nil
	res, _ = e.sync()
	if got, acts := res.Totals().New, res.Actions(); got != 3 || len(acts) != 3 {
		t.Errorf("without NoActions: %d new, %d actions; want 3 and 3", got, len(acts))
	}
	e.compare()
}
