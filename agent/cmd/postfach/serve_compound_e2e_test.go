// TestServeCompound once lost a message moved and moved back through the
// endpoint during the sync the previous change set off (the sync's scan
// saw the door's file-first move half done); sync runs and local changes
// now take turns per account (index.Store.SyncTurn).

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/agenttest"
)

// TestServeCompound: with the agent online, changes on top of changes
// made through the local endpoint in quick succession (compoundChanges,
// three times, racing the syncs they set off) all reach Dovecot.
func TestServeCompound(t *testing.T) {
	t.Parallel()
	e := newServeEnv(t, "scompound", "INBOX", "Second")
	e.seedUpstream(t, 28, agenttest.Local)
	a := e.start(t)
	local := e.endpoint(t)
	waitLocal(t, e, local)
	start := time.Now()
	changes := 0
	for range 3 {
		changes += compoundChanges(t, e, local)
	}
	made := time.Now()
	at, err := agenttest.Poll(waitLimit, 50*time.Millisecond, func() (bool, error) {
		got, err := e.serverSnapshot(true)
		return err == nil && len(e.model.Diff("server", got)) == 0, err
	})
	if err != nil {
		got, _ := e.serverSnapshot(true)
		local, _ := e.local.Snapshot(false)
		t.Fatalf("the changes made through the endpoint did not all reach Dovecot: %v\n%s\n%s", err,
			strings.Join(e.model.Diff("server", got), "\n"), strings.Join(e.model.Diff("local", local), "\n"))
	}
	t.Logf("%d changes made through the endpoint in %v were all on Dovecot %v after the last", changes,
		made.Sub(start).Round(time.Millisecond), at.Sub(made).Round(time.Millisecond))
	waitLocal(t, e, local)
	stopAgent(t, a)
	e.checkBoth(t)
}
