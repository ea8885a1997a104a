package imapsync

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// What the plan reads of the selected folder upstream: UIDs, flags, sizes
// and identities, one FETCH or SEARCH each.

// fetchChangedSince reads the flags of the messages of the selected folder
// whose MODSEQ is above since into server, and returns the highest MODSEQ
// among them.
func fetchChangedSince(c *imapclient.Client, since uint64, server map[uint32]*serverMsg) (uint64, error) {
	return readFlags(c, startChangedSince(c, since), server)
}

// startChangedSince sends fetchChangedSince's FETCH; readFlags reads its
// answer. Commands sent in between go out without waiting for it.
func startChangedSince(c *imapclient.Client, since uint64) *imapclient.FetchCommand {
	opts := &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: since}
	return c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts)
}

// readFlags reads the answer to a FETCH of UID and FLAGS (and MODSEQ) into
// server and returns the highest MODSEQ in it.
func readFlags(c *imapclient.Client, cmd *imapclient.FetchCommand, server map[uint32]*serverMsg) (uint64, error) {
	var highest uint64
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			return 0, abortFetch(c, cmd, err)
		}
		if buf.UID == 0 {
			continue
		}
		highest = max(highest, buf.ModSeq)
		sm := &serverMsg{uid: uint32(buf.UID)}
		sm.flags, sm.keywords = maildir.FlagsFromIMAP(buf.Flags)
		server[sm.uid] = sm
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("FETCH FLAGS: %w", err)
	}
	return highest, nil
}

// fetchMeta fetches UID, FLAGS and RFC822.SIZE (and the Message-ID when
// rows must be matched by content) of every message from UID from on.
func fetchMeta(c *imapclient.Client, from uint32, withIDs bool) (map[uint32]*serverMsg, error) {
	return fetchMetaSet(c, imap.UIDSet{imap.UIDRange{Start: imap.UID(from), Stop: 0}}, from, withIDs)
}

// fetchMetaSet is fetchMeta for a UID set; UIDs below from are ignored.
func fetchMetaSet(c *imapclient.Client, set imap.UIDSet, from uint32, withIDs bool) (map[uint32]*serverMsg, error) {
	out, _, err := startMeta(c, set, withIDs).read(c, from)
	return out, err
}

// metaFetch is a FETCH of fetchMetaSet's, sent (startMeta) and not yet
// read (read): other commands can go out behind it.
type metaFetch struct {
	cmd       *imapclient.FetchCommand
	idSection *imap.FetchItemBodySection // the Message-ID's; nil: not asked
}

func startMeta(c *imapclient.Client, set imap.UIDSet, withIDs bool) *metaFetch {
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true}
	m := &metaFetch{}
	if withIDs {
		m.idSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
		opts.BodySection = []*imap.FetchItemBodySection{m.idSection}
		opts.InternalDate = true
	}
	m.cmd = c.Fetch(set, opts)
	return m
}

// read reads the FETCH's answer. complete says whether every message
// came with all the items asked: go-imap gives the FETCH an unsolicited
// FETCH response (a flag change another session made) of a UID in its
// set, and the command's own answer for that UID then goes elsewhere.
func (m *metaFetch) read(c *imapclient.Client, from uint32) (out map[uint32]*serverMsg, complete bool, err error) {
	out, complete = map[uint32]*serverMsg{}, true
	for {
		msg := m.cmd.Next()
		if msg == nil {
			break
		}
		buf, err := CollectMessage(msg)
		if err != nil {
			return nil, false, abortFetch(c, m.cmd, err)
		}
		if buf.UID == 0 || uint32(buf.UID) < from {
			continue // "from:*" includes the last message even below from
		}
		sm := &serverMsg{uid: uint32(buf.UID), size: buf.RFC822Size}
		sm.flags, sm.keywords = maildir.FlagsFromIMAP(buf.Flags)
		complete = complete && buf.RFC822Size > 0
		if m.idSection != nil {
			section := buf.FindBodySection(m.idSection)
			complete = complete && section != nil && !buf.InternalDate.IsZero()
			sm.messageID = index.ParseHeader(section).MessageID
			if !buf.InternalDate.IsZero() {
				sm.date = buf.InternalDate.Unix()
			}
		}
		out[sm.uid] = sm
	}
	if err := m.cmd.Close(); err != nil {
		return nil, false, fmt.Errorf("FETCH: %w", err)
	}
	return out, complete, nil
}

// metaRead is a metaFetch's outcome, read in a goroutine of its own.
type metaRead struct {
	msgs     map[uint32]*serverMsg
	complete bool
	err      error
}

// readTo reads the FETCH's answer (read) and sends the outcome on r.
func (m *metaFetch) readTo(r chan<- metaRead, c *imapclient.Client, from uint32) {
	msgs, complete, err := m.read(c, from)
	r <- metaRead{msgs, complete, err}
}

// startChangedFlags sends the FETCH that fills server (readFlags) with
// the flags of messages that may have changed: those with a MODSEQ above
// the recorded one when the server has CONDSTORE, else all of them; nil
// when the server's HIGHESTMODSEQ is the recorded one (nothing to ask).
// The range is 1:*, not just below the recorded UIDNEXT: a row for a
// newer message may exist already (indexed from disk after an interrupted
// run) and must get the server's keywords, which file names do not carry.
func startChangedFlags(c *imapclient.Client, since uint64, condstore bool, highest uint64) *imapclient.FetchCommand {
	opts := &imap.FetchOptions{UID: true, Flags: true}
	if condstore && since != 0 {
		if highest == since {
			return nil
		}
		opts.ChangedSince = since
	}
	return c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts)
}

// startSearchAll sends a UID SEARCH for every UID in the selected folder
// (ESEARCH keeps the answer compact when the server has it);
// readSearchAll reads its answer. Commands sent in between go out without
// waiting for it.
func startSearchAll(c *imapclient.Client) *imapclient.SearchCommand {
	var opts *imap.SearchOptions
	if c.Caps().Has(imap.CapESearch) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	return c.UIDSearch(&imap.SearchCriteria{}, opts)
}

// readSearchAll returns the UIDs startSearchAll's command answered. The
// answer is counted before it is walked (see uidset.go): one with far
// more UIDs than the folder has messages (see searchLimit) is refused
// with a folder-level error.
func readSearchAll(c *imapclient.Client, cmd *imapclient.SearchCommand) ([]uint32, error) {
	data, err := cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("UID SEARCH: %w", err)
	}
	var exists uint32
	if mbox := c.Mailbox(); mbox != nil {
		exists = mbox.NumMessages
	}
	set, _ := data.All.(imap.UIDSet) // nil (no ALL): no message
	n, err := checkUIDSet(set, exists, "UID SEARCH")
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, n)
	walkUIDs(set, func(u uint32) { out = append(out, u) })
	return out, nil
}

// searchLimit is the most UIDs a UID SEARCH ALL may answer in a folder of
// exists messages (its EXISTS, as go-imap tracks it up to the answer).
// Mail delivered while the run works may be in the answer before its
// EXISTS reaches us (Dovecot does so: with a mail client or the agent's
// IDLE beside a sync, the count was one short), so the limit has room for
// a burst of arrivals; what it stops is an answer such as 1:4294967295,
// which would be walked for hours.
func searchLimit(exists uint32) uint64 {
	return uint64(exists) + 1000 + uint64(exists)/10
}

// earlyRead is what changed upstream in a folder compared incrementally,
// asked as soon as the folder is selected (startEarly), where readChanged
// would ask it only once the Maildir is reconciled with the index: the
// FETCH CHANGEDSINCE; when messages came (UIDNEXT moved), the UID SEARCH
// behind it; and when the prescan found new local files, the identities
// of up to matchFew new server messages, which matchFresh compares them
// with. The two FETCHes are read side by side by goroutines of their own
// (see readChanged for why side by side) while the worker reconciles,
// which needs no connection; the SEARCH is readChanged's to read. Over a
// network the answers are in by the time the reconcile is done, instead
// of a round trip after it.
type earlyRead struct {
	search   *imapclient.SearchCommand // nil: not sent
	idsAsked bool
	ids      metaRead // when idsAsked, once done
	done     chan struct{}
	server   map[uint32]*serverMsg
	err      error
}

// startEarly sends what earlyRead holds and starts reading it; fresh
// asks for the new messages' identities too.
func startEarly(c *imapclient.Client, j *folderJob, sel *imap.SelectData, condstore, fresh bool) *earlyRead {
	e := &earlyRead{done: make(chan struct{}), server: map[uint32]*serverMsg{}}
	flags := startChangedFlags(c, j.f.HighestModSeq, condstore, sel.HighestModSeq)
	if uint32(sel.UIDNext) != j.f.UIDNext {
		e.search = startSearchAll(c)
	}
	var ids chan metaRead
	if fresh {
		ids = askNewIDs(c, j.f.UIDNext, uint32(sel.UIDNext))
		e.idsAsked = ids != nil
	}
	go func() {
		defer close(e.done)
		if flags != nil {
			_, e.err = readFlags(c, flags, e.server)
		}
		if ids != nil {
			e.ids = <-ids
			if e.err == nil {
				e.err = e.ids.err
			}
		}
	}()
	return e
}

// wait returns once every FETCH sent early is read, with the first
// error; nil e waits for nothing.
func (e *earlyRead) wait() error {
	if e == nil {
		return nil
	}
	<-e.done
	return e.err
}

// askNewIDs sends the FETCH of the identities of the messages from UID lo
// to hi-1 (the recorded UIDNEXT to the server's), when there are some and
// at most matchFew, and reads its answer in a goroutine of its own, which
// sends it on the channel returned (nil: nothing asked). Read beside the
// commands sent before it: Dovecot answers the first command of a row only
// after the responses of the last, and go-imap's reader waits for each
// literal it hands on to be read.
func askNewIDs(c *imapclient.Client, lo, hi uint32) chan metaRead {
	if lo == 0 || hi <= lo || hi-lo > matchFew {
		return nil
	}
	ids := make(chan metaRead, 1)
	m := startMeta(c, imap.UIDSet{imap.UIDRange{Start: imap.UID(lo), Stop: imap.UID(hi - 1)}}, true)
	go m.readTo(ids, c, lo)
	return ids
}
