package imapsync

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
)

// A folder selected ahead. When every known folder changed here (the LIST
// asked no STATUS: see folderLevel), each will be planned, and the first
// plan starts only once the Maildir has been read (prescan). Meanwhile the
// first connection is idle: it SELECTs the folder the first worker will
// plan, the largest, whose SELECT is the server's longest (Dovecot reads a
// changed folder's directory again: a quarter of a second for 40,000
// messages). The first worker, which owns that connection, takes that
// folder first (runJobs) and its plan uses the answer instead of
// SELECTing again (selectForPlan).
//
// The answer holds while the connection stays on the folder with nothing
// heard of it since: another SELECT on the connection (the folder-level
// pass's moves select other folders), or news of the folder (EXISTS,
// EXPUNGE), replaces go-imap's record of the selected mailbox, and the
// plan SELECTs again. Mail that arrives unheard meanwhile is what arrives
// after any SELECT: the plan's FETCH CHANGEDSINCE finds it, and the state
// the run records is at worst older than the server's, so the next run
// looks again.

// selectedAhead is a folder selected on the first connection while the
// Maildir was read.
type selectedAhead struct {
	c                   *imapclient.Client
	remote              string
	readOnly, condstore bool
	// done is closed once the SELECT is answered; data and mbox are set
	// before, if the answer holds (nil otherwise).
	done chan struct{}
	data *imap.SelectData
	// mbox is the connection's selected mailbox as the SELECT left it
	// (see above).
	mbox *imapclient.SelectedMailbox
}

// selectAhead sends on c, as the folder's plan would, the SELECT of the
// largest of folders (by the index's rows; the first listed of equals, as
// jobs orders them), and keeps its answer for the plan. It does not wait
// for the answer: the rest of the folder level and the other folders'
// SELECTs go on meanwhile (the SELECT of a folder changed since the
// server last looked is its longest command, and the connections of the
// other folders are idle until the run's plans start); takeAhead waits.
// A SELECT the server refuses is forgotten: the plan SELECTs itself and
// reports.
func (s *syncer) selectAhead(ctx context.Context, c *imapclient.Client, acct index.AccountID, folders []remoteFolder) {
	o := &s.opts
	if o.DryRun || len(folders) == 0 {
		return
	}
	rows := make([]int, len(folders))
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		known, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for i, rf := range folders {
			if k := slices.IndexFunc(known, func(f *index.Folder) bool { return f.Name == rf.Local }); k >= 0 {
				if rows[i], _, err = tx.RowsStamp(known[k].ID); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return
	}
	largest := 0
	for i := range folders {
		if rows[i] > rows[largest] {
			largest = i
		}
	}
	a := &selectedAhead{c: c, remote: folders[largest].Remote, readOnly: !o.push(), condstore: c.Caps().Has(imap.CapCondStore),
		done: make(chan struct{})}
	before := c.Mailbox()
	cmd := c.Select(a.remote, &imap.SelectOptions{ReadOnly: a.readOnly, CondStore: a.condstore})
	s.ahead.Store(a)
	go func() {
		defer close(a.done)
		data, err := cmd.Wait()
		if err != nil {
			s.log.Debug("selecting ahead", "folder", folders[largest].Local, "err", err)
			return
		}
		// go-imap wakes Wait before it records the mailbox the SELECT
		// opened (completeCommand): until then Mailbox is the one before,
		// and the plan would take a later record for news of the folder.
		mbox := c.Mailbox()
		for deadline := time.Now().Add(time.Second); mbox == before && time.Now().Before(deadline); mbox = c.Mailbox() {
			time.Sleep(20 * time.Microsecond)
		}
		// Never recorded (the connection went), or another SELECT on c,
		// sent behind this one by the folder level (moves), came first:
		// the plan SELECTs.
		if mbox == before || mbox == nil || mbox.Name != a.remote {
			return
		}
		a.data, a.mbox = data, mbox
	}()
}

// takeAhead returns, once, the answer of the SELECT made ahead of remote on
// c with these options, if it still holds (see above), waiting for it.
func (s *syncer) takeAhead(c *imapclient.Client, remote string, readOnly, condstore bool) *imap.SelectData {
	a := s.ahead.Load()
	if a == nil || a.c != c || a.remote != remote || a.readOnly != readOnly || a.condstore != condstore {
		return nil
	}
	if !s.ahead.CompareAndSwap(a, nil) {
		return nil
	}
	<-a.done
	if a.data == nil || c.Mailbox() != a.mbox {
		return nil
	}
	aheadTaken.Add(1)
	return a.data
}

// aheadTaken counts the plans that took a SELECT made ahead (for tests).
var aheadTaken atomic.Int64
