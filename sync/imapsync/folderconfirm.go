package imapsync

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// What the folder plan asks before it takes a folder for renamed or gone
// (see folderops.go). Each question costs at most a STATUS, or an EXAMINE
// and one FETCH of a few UIDs, and is asked only of a folder the index
// knows that is missing on one side: rare, and never in a no-change run.

// sampleSize is how many of a folder's messages confirm a rename upstream.
const sampleSize = 8

// findRemote returns the server folder of f: the one synced under its name,
// else one renamed upstream (see sameRemote).
func (p *folderPlanner) findRemote(ctx context.Context, f *index.Folder) (*remoteFolder, error) {
	if r := p.remoteByName(f.Name); r != nil {
		return r, nil
	}
	if f.UIDValidity == 0 {
		return nil, nil
	}
	for i := range p.remote {
		r := &p.remote[i]
		if p.claimedR[r.Local] {
			continue
		}
		if st, err := p.statusOf(r); err != nil {
			return nil, err
		} else if st == nil || st.UIDValidity != f.UIDValidity {
			continue
		}
		same, err := p.sameRemote(ctx, f, r)
		if err != nil {
			return nil, err
		}
		if same {
			p.claimedR[r.Local] = true
			return r, nil
		}
	}
	return nil, nil
}

// findLocal returns the local folder of f: the one under its name, else
// one renamed locally (see sameLocal).
func (p *folderPlanner) findLocal(ctx context.Context, f *index.Folder) (*localFolder, error) {
	if l := p.localByName(f.Name); l != nil {
		return l, nil
	}
	if f.UIDValidity == 0 {
		return nil, nil
	}
	for i := range p.locals {
		l := &p.locals[i]
		if p.claimedL[l.name] || l.uv != f.UIDValidity {
			continue
		}
		same, err := p.sameLocal(ctx, f, l)
		if err != nil {
			return nil, err
		}
		if same {
			p.claimedL[l.name] = true
			return l, nil
		}
	}
	return nil, nil
}

// sameRemote reports whether the server folder r, whose UIDVALIDITY is
// f's, is f renamed: a sample of f's messages, spread over its UIDs, must
// be there under the same UIDs with the same Message-ID and size (one may
// be gone since; none may differ). A folder with no message upstream to
// compare is the same if r is empty or its UIDNEXT is f's.
func (p *folderPlanner) sameRemote(ctx context.Context, f *index.Folder, r *remoteFolder) (bool, error) {
	sample, err := p.sampleRows(ctx, f)
	if err != nil {
		return false, err
	}
	if len(sample) == 0 {
		st, err := p.statusOf(r)
		if err != nil || st == nil {
			return false, err
		}
		return st.NumMessages != nil && *st.NumMessages == 0 || f.UIDNext != 0 && uint32(st.UIDNext) == f.UIDNext, nil
	}
	p.selected = true
	sel, err := p.c.Select(r.Remote, &imap.SelectOptions{ReadOnly: true}).Wait()
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return false, nil // gone meanwhile, or not selectable after all
	} else if err != nil {
		return false, fmt.Errorf("EXAMINE %s: %w", r.Remote, err)
	}
	if sel.UIDValidity != f.UIDValidity {
		return false, nil
	}
	var set imap.UIDSet
	for _, m := range sample {
		set.AddNum(imap.UID(m.UID))
	}
	server, err := fetchMetaSet(p.c, set, 0, true)
	if err != nil {
		return false, err
	}
	matched := 0
	for _, m := range sample {
		sm := server[m.UID]
		if sm == nil {
			continue // expunged since
		}
		if !sameIdentity(m, sm) {
			p.s.log.Debug("not a rename: another message under a sampled UID", "folder", f.Name, "server", r.Remote, "uid", m.UID)
			return false, nil
		}
		matched++
	}
	return matched > 0, nil
}

// statusOf returns the status of a server folder: from the LIST where the
// server has LIST-STATUS, else from one STATUS, asked once a run (only for
// the candidates of a known folder missing under its name: rare). nil: the
// server would not tell.
func (p *folderPlanner) statusOf(r *remoteFolder) (*imap.StatusData, error) {
	if r.Status != nil {
		return r.Status, nil
	}
	if st, ok := p.statuses[r.Remote]; ok {
		return st, nil
	}
	st, err := p.c.Status(r.Remote, statusOptions(p.c)).Wait()
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		st, err = nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("STATUS %s: %w", r.Remote, err)
	}
	if p.statuses == nil {
		p.statuses = map[string]*imap.StatusData{}
	}
	p.statuses[r.Remote] = st
	return st, nil
}

// sampleRows returns up to sampleSize of f's upstream rows, spread over
// their UIDs, that have an identity to compare (Message-ID or size).
func (p *folderPlanner) sampleRows(ctx context.Context, f *index.Folder) ([]*index.Message, error) {
	var rows []*index.Message
	err := p.s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.FileRows(f.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	rows = slices.DeleteFunc(rows, func(m *index.Message) bool { return m.UID == 0 })
	slices.SortFunc(rows, func(a, b *index.Message) int { return int(a.UID) - int(b.UID) })
	if len(rows) > sampleSize {
		picked := make([]*index.Message, 0, sampleSize)
		for i := range sampleSize {
			picked = append(picked, rows[i*(len(rows)-1)/(sampleSize-1)])
		}
		rows = picked
	}
	if err := fill(ctx, p.s.opts.Index, rows); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rows, func(m *index.Message) bool { return m.Header.MessageID == "" && m.RFC822Size == 0 }), nil
}

// sameIdentity reports whether a server message is the row's message: the
// same Message-ID and size (internal date and size without Message-ID), as
// far as the row knows them.
func sameIdentity(m *index.Message, sm *serverMsg) bool {
	if m.Header.MessageID != "" && m.Header.MessageID != sm.messageID {
		return false
	}
	if m.RFC822Size != 0 && m.RFC822Size != sm.size {
		return false
	}
	if m.Header.MessageID == "" && !m.InternalDate.IsZero() && m.InternalDate.Unix() != sm.date {
		return false
	}
	return true
}

// sameLocal reports whether the local folder l, whose recorded UIDVALIDITY
// is f's, is f renamed: it holds a file of f (Maildir keys are unique), or
// f has no message at all. A folder copied from elsewhere with its
// .postfach-uidvalidity, or another account's folder of the same
// UIDVALIDITY, is not.
func (p *folderPlanner) sameLocal(ctx context.Context, f *index.Folder, l *localFolder) (bool, error) {
	var rows []*index.Message
	err := p.s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.FileRows(f.ID)
		return err
	})
	if err != nil || len(rows) == 0 {
		return err == nil, err
	}
	entries, err := (&maildir.Dir{Path: l.path}).Scan()
	if err != nil {
		return false, err
	}
	keys := make(map[string]bool, len(entries))
	for _, e := range entries {
		keys[e.Key] = true
	}
	for _, m := range rows {
		if keys[m.Key] {
			return true, nil
		}
	}
	return false, nil
}

// goneCheck is what confirmGone found.
type goneCheck struct {
	gone   bool
	listed *remoteFolder // not gone: the LIST left out a folder the server has under f's name
	why    string        // not gone, and not to be synced: why
}

// confirmGone asks whether a known folder that the server did not list is
// gone. It is not if a server folder has its name but is not synced as f
// (folder_map changed, the patterns exclude what it maps to, it collides),
// if it was renamed to such a folder (sameRemote), or if STATUS of its name
// answers: then the LIST left it out (listed). It is gone when STATUS
// answers NO, without a response code or with NONEXISTENT, and a LIST of
// just its name has no selectable folder; any other answer is not sure
// (why).
func (p *folderPlanner) confirmGone(ctx context.Context, f *index.Folder) (goneCheck, error) {
	name := p.names.Remote(f.Name)
	if a := p.remoteNamed(name); a != nil {
		return goneCheck{why: p.whyNotSynced(a)}, nil
	}
	if f.UIDValidity != 0 {
		for i := range p.all {
			a := &p.all[i]
			if p.remoteByName(a.Local) != nil {
				continue // synced: findRemote looked at those
			}
			if st, err := p.statusOf(a); err != nil {
				return goneCheck{}, err
			} else if st == nil || st.UIDValidity != f.UIDValidity {
				continue
			}
			same, err := p.sameRemote(ctx, f, a)
			if err != nil {
				return goneCheck{}, err
			}
			if same {
				return goneCheck{why: "renamed upstream: " + p.whyNotSynced(a)}, nil
			}
		}
	}
	st, err := p.c.Status(name, statusOptions(p.c)).Wait()
	if err == nil {
		return goneCheck{listed: &remoteFolder{Remote: name, Local: f.Name, Delim: p.names.Delim, Status: st}}, nil
	}
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		return goneCheck{}, fmt.Errorf("STATUS %s: %w", name, err)
	}
	if imapErr.Type != imap.StatusResponseTypeNo || imapErr.Code != "" && imapErr.Code != imap.ResponseCodeNonExistent {
		return goneCheck{why: fmt.Sprintf("the server did not list it, and STATUS %q answered %q", name, imapErr.Text)}, nil
	}
	// A NO without a code may be a passing failure too (some servers
	// say "NO Server Unavailable"): a LIST of just this name must agree.
	list, err := p.c.List("", name, nil).Collect()
	if err != nil {
		if errors.As(err, &imapErr) {
			return goneCheck{why: fmt.Sprintf("the server did not list it, and LIST %q answered %q", name, imapErr.Text)}, nil
		}
		return goneCheck{}, fmt.Errorf("LIST %s: %w", name, err)
	}
	for _, l := range list {
		if l.Mailbox == name && !hasAttr(l.Attrs, imap.MailboxAttrNoSelect) && !hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			return goneCheck{why: fmt.Sprintf("STATUS %q answered %q, but LIST has it", name, imapErr.Text)}, nil
		}
	}
	return goneCheck{gone: true}, nil
}

// whyNotSynced says why the server folder a does not sync into the local
// folder that expected it.
func (p *folderPlanner) whyNotSynced(a *remoteFolder) string {
	switch {
	case p.isBlocked(a.Local):
		return fmt.Sprintf("server folder %q shares its local name %q with another", a.Remote, a.Local)
	case !Match(p.s.opts.Folders, a.Local):
		return fmt.Sprintf("server folder %q is local folder %q now, which the folder patterns exclude", a.Remote, a.Local)
	}
	return fmt.Sprintf("server folder %q is synced as local folder %q now", a.Remote, a.Local)
}

// unchangedUpstream reports whether the server folder r is as the last
// sync of f left it, and each of its messages came here: same UIDVALIDITY,
// no message added (UIDNEXT), as many messages as f has rows with a UID
// (max_age_days and max_size leave some upstream only), and none changed
// (HIGHESTMODSEQ, or where it moved, no message with a higher MODSEQ:
// expunges raise it too). It also returns how many messages r has.
func (p *folderPlanner) unchangedUpstream(ctx context.Context, f *index.Folder, r *remoteFolder) (bool, int, error) {
	st := r.Status
	if st == nil || st.NumMessages == nil || st.UIDNext == 0 {
		var err error
		if st, err = p.c.Status(r.Remote, statusOptions(p.c)).Wait(); err != nil {
			return false, 0, fmt.Errorf("STATUS %s: %w", r.Remote, err)
		}
	}
	n := 0
	if st.NumMessages != nil {
		n = int(*st.NumMessages)
	}
	if f.UIDValidity == 0 || st.UIDValidity != f.UIDValidity || uint32(st.UIDNext) != f.UIDNext {
		return false, n, nil
	}
	// Every server message must have come here: max_age_days and max_size
	// leave some upstream only.
	var upstream int
	if err := p.s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		upstream, _, err = tx.SyncCounts(f.ID)
		return err
	}); err != nil {
		return false, n, err
	}
	if upstream != n {
		return false, n, nil
	}
	if st.HighestModSeq == f.HighestModSeq {
		return true, n, nil
	}
	if f.HighestModSeq == 0 || !p.c.Caps().Has(imap.CapCondStore) {
		return false, n, nil
	}
	p.selected = true
	if _, err := p.c.Select(r.Remote, &imap.SelectOptions{ReadOnly: true, CondStore: true}).Wait(); err != nil {
		return false, n, fmt.Errorf("EXAMINE %s: %w", r.Remote, err)
	}
	changed := map[uint32]*serverMsg{}
	if _, err := fetchChangedSince(p.c, f.HighestModSeq, changed); err != nil {
		return false, n, err
	}
	return len(changed) == 0, n, nil
}

// sortForRemoval reads a local folder about to be removed: the files that
// may go with it (deletable, by "sub/name": a file of a row whose UID the
// server confirmed and that did not change here since the last sync), and
// how many others there are (never uploaded; a ,U= tag the folder never
// confirmed; a second file of one key; changed here). Those are recovered.
func (p *folderPlanner) sortForRemoval(ctx context.Context, f *index.Folder, l *localFolder) (map[string]bool, int, error) {
	entries, err := (&maildir.Dir{Path: l.path}).Scan()
	if err != nil {
		return nil, 0, err
	}
	var rows []*index.Message
	if err := p.s.opts.Index.Read(ctx, func(tx *index.ReadTx) error {
		rows, err = tx.Messages(f.ID)
		return err
	}); err != nil {
		return nil, 0, err
	}
	byKey := make(map[string]*index.Message, len(rows))
	for _, m := range rows {
		byKey[m.Key] = m
	}
	deletable := map[string]bool{}
	keep := 0
	for _, e := range entries {
		m := byKey[e.Key]
		if m != nil && m.UID != 0 && (e.UID == 0 || e.UID == m.UID) && e.Flags == m.SyncedFlags &&
			m.Flags == m.SyncedFlags && sameKeywords(m.Keywords, m.SyncedKeywords) {
			deletable[e.Sub+"/"+e.Name] = true
			delete(byKey, e.Key) // a second file of this key is a copy
			continue
		}
		keep++
	}
	return deletable, keep, nil
}
