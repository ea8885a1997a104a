package imapsync

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
)

// Folders selected ahead. When every known folder changed here (the LIST
// asked no STATUS: see folderLevel), each will be planned, and the first
// plan starts only once the Maildir has been read (prescan). Meanwhile the
// connections are idle: the first SELECTs the folder the first worker will
// plan, the largest, and each connection dialed ahead (predial), as it
// comes up, the next largest (bindSpares). A changed folder's SELECT is
// the server's longest command (Dovecot reads the folder's directory
// again: a quarter of a second for 40,000 messages), and the server's
// reading now overlaps the prescan's. The worker that owns a connection
// takes the folder selected on it first (runJobs, worker.takeBound) and
// its plan uses the answer instead of SELECTing again (selectForPlan).
//
// The answer holds while the connection stays on the folder with nothing
// heard of it since: another SELECT on the connection (the folder-level
// pass's moves select other folders), or news of the folder (EXISTS,
// EXPUNGE), replaces go-imap's record of the selected mailbox, and the
// plan SELECTs again. A connection dialed ahead hears nothing of what the
// folder level does on the first one after its SELECT (a UID MOVE into
// its folder, whose rows then carry UIDs above the UIDNEXT it read): when
// the folder level changed anything upstream, those answers are not
// used (spareAheadStale). Mail that arrives unheard meanwhile is what
// arrives after any SELECT: the plan's FETCH CHANGEDSINCE finds it, and
// the state the run records is at worst older than the server's, so the
// next run looks again.

// selectedAhead is a folder selected on a connection while the Maildir
// was read.
type selectedAhead struct {
	remote              string
	readOnly, condstore bool
	spare               bool // selected on a connection dialed ahead (bindSpares)
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
// jobs orders them), and keeps its answer for the plan; the others, the
// largest first, are selected ahead on the connections dialed ahead
// (bindSpares). It does not wait for the answers: the rest of the folder
// level goes on meanwhile; takeAhead waits. A SELECT the server refuses is
// forgotten: the plan SELECTs itself and reports.
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
	order := make([]int, len(folders))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rows[b], rows[a]) })
	s.sendAhead(c, folders[order[0]], false)
	rest := make([]remoteFolder, 0, len(order)-1)
	for _, i := range order[1:] {
		rest = append(rest, folders[i])
	}
	s.bindSpares(rest)
}

// sendAhead sends the SELECT of rf on c (a connection dialed ahead if
// spare), records it for takeAhead, and keeps its answer once it comes.
func (s *syncer) sendAhead(c *imapclient.Client, rf remoteFolder, spare bool) {
	o := &s.opts
	a := &selectedAhead{remote: rf.Remote, readOnly: !o.push(), condstore: c.Caps().Has(imap.CapCondStore),
		spare: spare, done: make(chan struct{})}
	before := c.Mailbox()
	cmd := c.Select(a.remote, &imap.SelectOptions{ReadOnly: a.readOnly, CondStore: a.condstore})
	s.aheadMu.Lock()
	if s.aheads == nil {
		s.aheads = map[*imapclient.Client]*selectedAhead{}
	}
	s.aheads[c] = a
	s.aheadMu.Unlock()
	go func() {
		defer close(a.done)
		data, err := cmd.Wait()
		if err != nil {
			s.log.Debug("selecting ahead", "folder", rf.Local, "err", err)
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

// boundSpare is a connection dialed ahead with the folder selected on it
// ahead (c nil: that dial failed).
type boundSpare struct {
	c      *imapclient.Client
	remote string
}

// bindSpares selects ahead each of folders (the largest first) on a
// connection dialed ahead (predial), as they come, for as many as are
// being dialed and not taken: those connections are idle until the
// plans start, after the Maildir is read, and a changed folder's SELECT
// is the server's longest command (Dovecot reads the folder's directory
// again). Each goes, with its folder, to a worker of runJobs, which plans
// that folder first (worker.takeBound), or closeSpares logs out of it.
func (s *syncer) bindSpares(folders []remoteFolder) {
	m := min(len(folders), int(s.claims.Load()))
	if m <= 0 {
		return
	}
	s.claims.Add(int32(-m))
	s.bound = make(chan boundSpare, m)
	s.boundLeft.Store(int32(m))
	for _, rf := range folders[:m] {
		s.boundRemotes = append(s.boundRemotes, rf.Remote)
	}
	go func() {
		for _, rf := range folders[:m] {
			c := <-s.spares
			if c != nil {
				s.sendAhead(c, rf, true)
			}
			s.bound <- boundSpare{c: c, remote: rf.Remote}
		}
	}()
}

// takeBound returns a connection bindSpares selected a folder on, if one
// is left, waiting for it.
func (s *syncer) takeBound() (boundSpare, bool) {
	if s.boundLeft.Add(-1) < 0 {
		return boundSpare{}, false
	}
	return <-s.bound, true
}

// aheadOn returns the folder selected ahead on c not taken yet, or nil.
func (s *syncer) aheadOn(c *imapclient.Client) *selectedAhead {
	s.aheadMu.Lock()
	defer s.aheadMu.Unlock()
	return s.aheads[c]
}

// takeAhead returns, once, the answer of the SELECT made ahead of remote on
// c with these options, if it still holds (see above), waiting for it.
func (s *syncer) takeAhead(c *imapclient.Client, remote string, readOnly, condstore bool) *imap.SelectData {
	s.aheadMu.Lock()
	a := s.aheads[c]
	if a == nil || a.remote != remote || a.readOnly != readOnly || a.condstore != condstore {
		s.aheadMu.Unlock()
		return nil
	}
	delete(s.aheads, c)
	s.aheadMu.Unlock()
	if a.spare && s.spareAheadStale.Load() {
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
