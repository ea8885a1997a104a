package imapd

import (
	"errors"
	"math"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// turn waits for the turn of a local change to the given folders (see
// index.Store.LocalChange): taken before the rows a change acts on are
// read, so that no sync run changes them in between, and released once
// the door calls return.
func (s *session) turn(folders ...index.FolderID) (release func(), err error) {
	release, err = s.srv.o.Store.LocalChange(s.srv.ctx, folders...)
	if err != nil {
		return nil, s.storeErr("waiting for the sync", err)
	}
	return release, nil
}

// setFlags gives messages of v's mailbox new flags through the door
// (Synced nil: the sync pushes them); the caller holds the turn (see
// turn) since it read the rows. The hub sends the change to every
// other session of the mailbox; this one answers its command itself.
func (s *session) setFlags(v *view, changes []index.FlagChange) error {
	if len(changes) == 0 {
		return nil
	}
	b := v.box
	b.mu.Lock()
	for _, c := range changes {
		b.own[c.Message.LocalUID] = v
	}
	b.mu.Unlock()
	err := s.srv.o.Store.SetFlags(s.srv.ctx, changes, nil)
	if err == nil {
		b.waitFor(s.srv.hub, func() bool {
			for _, c := range changes {
				if b.own[c.Message.LocalUID] == v {
					return false
				}
			}
			return true
		})
	}
	b.mu.Lock()
	for _, c := range changes {
		if b.own[c.Message.LocalUID] == v {
			delete(b.own, c.Message.LocalUID)
		}
	}
	b.mu.Unlock()
	if err != nil {
		return s.storeErr("changing flags", err)
	}
	return nil
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, sf *imap.StoreFlags, o *imap.StoreOptions) error {
	v := s.view
	if err := v.checkWritable(); err != nil {
		return err
	}
	if err := v.checkSeqs(numSet); err != nil {
		return err
	}
	flags, kw := maildir.FlagsFromIMAP(sf.Flags)
	items := v.resolve(numSet)
	for len(items) > 0 {
		chunk := items[:min(len(items), fetchChunk)]
		items = items[len(chunk):]
		release, err := s.turn(v.folder.ID)
		if err != nil {
			return err
		}
		rows, err := s.rows(v, chunk, rowsFull)
		if err != nil {
			release()
			return err
		}
		var changes []index.FlagChange
		for _, m := range rows {
			f, k := storeFlags(sf.Op, m.Flags, m.Keywords, flags, kw)
			if f != m.Flags || !sameKeywords(k, m.Keywords) {
				changes = append(changes, index.FlagChange{Message: m, Flags: f, Keywords: k})
			}
		}
		err = s.setFlags(v, changes)
		release()
		if err != nil {
			return err
		}
		if sf.Silent {
			continue
		}
		for _, it := range chunk {
			if m := rows[it.uid]; m != nil {
				rw := w.CreateMessage(it.seq)
				rw.WriteUID(imap.UID(m.LocalUID))
				rw.WriteFlags(imapFlags(m.Flags, m.Keywords))
				if err := rw.Close(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// storeFlags returns a message's flags and keywords after a STORE.
func storeFlags(op imap.StoreFlagsOp, f maildir.Flags, kw []string, sf maildir.Flags, skw []string) (maildir.Flags, []string) {
	has := func(list []string, k string) bool {
		return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, k) })
	}
	switch op {
	case imap.StoreFlagsAdd:
		out := slices.Clone(kw)
		for _, k := range skw {
			if !has(out, k) {
				out = append(out, k)
			}
		}
		return f | sf, out
	case imap.StoreFlagsDel:
		var out []string
		for _, k := range kw {
			if !has(skw, k) {
				out = append(out, k)
			}
		}
		return f &^ sf, out
	}
	return sf, slices.Clone(skw)
}

func sameKeywords(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// ordered returns the rows of items in their order.
func ordered(items []item, rows map[uint32]*index.Message) []*index.Message {
	out := make([]*index.Message, 0, len(rows))
	for _, it := range items {
		if m := rows[it.uid]; m != nil {
			out = append(out, m)
		}
	}
	return out
}

// waitAdded waits until the session's of folder id see local UID uid, if
// some session has it selected.
func (s *session) waitAdded(id index.FolderID, uid uint32) {
	if b := s.srv.hub.lookup(id); b != nil {
		b.waitFor(s.srv.hub, func() bool { return b.maxUID >= uid })
	}
}

// opChunk is how many messages COPY and MOVE hand the store at a time.
const opChunk = 500

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	v := s.view
	to, err := s.srv.target(s.srv.ctx, dest)
	if err != nil {
		return nil, err
	}
	if err := v.checkSeqs(numSet); err != nil {
		return nil, err
	}
	items := v.resolve(numSet)
	data := &imap.CopyData{UIDValidity: to.LocalUIDValidity}
	var last uint32
	for len(items) > 0 {
		chunk := items[:min(len(items), opChunk)]
		items = items[len(chunk):]
		release, err := s.turn(v.folder.ID, to.ID)
		if err != nil {
			return nil, err
		}
		rows, err := s.rows(v, chunk, rowsFull)
		if err != nil {
			release()
			return nil, err
		}
		msgs := ordered(chunk, rows)
		copies, err := s.srv.o.Store.CopyTo(s.srv.ctx, msgs, to.ID)
		release()
		if err != nil {
			return nil, s.storeErr("copying messages", err)
		}
		for i, m := range msgs {
			data.SourceUIDs.AddNum(imap.UID(m.LocalUID))
			data.DestUIDs.AddNum(imap.UID(copies[i].LocalUID))
			last = max(last, copies[i].LocalUID)
		}
	}
	if last == 0 {
		return nil, nil // nothing copied: no COPYUID
	}
	s.waitAdded(to.ID, last)
	return data, nil
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	v := s.view
	if err := v.checkWritable(); err != nil {
		return err
	}
	to, err := s.srv.target(s.srv.ctx, dest)
	if err != nil {
		return err
	}
	if err := v.checkSeqs(numSet); err != nil {
		return err
	}
	items := v.resolve(numSet)
	data := &imap.CopyData{UIDValidity: to.LocalUIDValidity}
	var old []uint32
	var last uint32
	for len(items) > 0 {
		chunk := items[:min(len(items), opChunk)]
		items = items[len(chunk):]
		release, err := s.turn(v.folder.ID, to.ID)
		if err != nil {
			return err
		}
		rows, err := s.rows(v, chunk, rowsFull)
		if err != nil {
			release()
			return err
		}
		msgs := ordered(chunk, rows)
		for _, m := range msgs {
			old = append(old, m.LocalUID)
			data.SourceUIDs.AddNum(imap.UID(m.LocalUID))
		}
		_, err = s.srv.o.Store.MoveTo(s.srv.ctx, msgs, to.ID)
		release()
		if err != nil {
			return s.storeErr("moving messages", err)
		}
		for _, m := range msgs {
			data.DestUIDs.AddNum(imap.UID(m.LocalUID))
			last = max(last, m.LocalUID)
		}
	}
	if len(old) == 0 {
		return nil
	}
	if err := w.WriteCopyData(data); err != nil {
		return err
	}
	b := v.box
	b.waitFor(s.srv.hub, func() bool {
		for _, uid := range old {
			if b.index(uid) >= 0 {
				return false
			}
		}
		return true
	})
	s.waitAdded(to.ID, last)
	return nil // the EXPUNGEs follow with the command's poll
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, set *imap.UIDSet) error {
	v := s.view
	if err := v.checkWritable(); err != nil {
		return err
	}
	release, err := s.turn(v.folder.ID)
	if err != nil {
		return err
	}
	var rows []*index.Message
	err = s.srv.o.Store.Read(s.srv.ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.LocalFlagged(v.folder.ID, maildir.FlagDeleted)
		return err
	})
	if err != nil {
		release()
		return s.storeErr("expunging", err)
	}
	if set != nil {
		last := v.lastUID()
		rows = slices.DeleteFunc(rows, func(m *index.Message) bool { return !inUIDSet(*set, m.LocalUID, last) })
	}
	if len(rows) == 0 {
		release()
		return nil
	}
	err = s.srv.o.Store.Expunge(s.srv.ctx, rows)
	release()
	if errors.Is(err, index.ErrArchiveView) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: oneLine(err.Error())}
	}
	if err != nil {
		return s.storeErr("expunging", err)
	}
	b := v.box
	b.waitFor(s.srv.hub, func() bool {
		for _, m := range rows {
			if b.index(m.LocalUID) >= 0 {
				return false
			}
		}
		return true
	})
	return nil // the EXPUNGEs follow with the command's poll
}

// lastUID is the greatest UID in the mailbox ("*" of a UID set).
func (v *view) lastUID() uint32 {
	v.box.mu.Lock()
	defer v.box.mu.Unlock()
	if n := len(v.box.uids); n > 0 {
		return v.box.uids[n-1]
	}
	return 0
}

func inUIDSet(set imap.UIDSet, uid, last uint32) bool {
	for _, r := range set {
		start, stop := static(uint32(r.Start), uint32(r.Stop), last)
		if start <= uid && uid <= stop {
			return true
		}
	}
	return false
}

func (s *session) Append(mailbox string, r imap.LiteralReader, o *imap.AppendOptions) (*imap.AppendData, error) {
	to, err := s.srv.target(s.srv.ctx, mailbox)
	if err != nil {
		return nil, err
	}
	flags, kw := maildir.FlagsFromIMAP(o.Flags)
	m, err := s.srv.o.Store.Append(s.srv.ctx, to.ID, r, flags, kw, o.Time)
	if err != nil {
		return nil, s.storeErr("appending a message", err)
	}
	s.waitAdded(to.ID, m.LocalUID)
	return &imap.AppendData{UID: imap.UID(m.LocalUID), UIDValidity: to.LocalUIDValidity}, nil
}

// none is a UID set no message is in (local UIDs never get that far).
var none = imap.UIDSet{{Start: math.MaxUint32, Stop: math.MaxUint32}}

func (s *session) Search(kind imapserver.NumKind, c *imap.SearchCriteria, o *imap.SearchOptions) (*imap.SearchData, error) {
	v := s.view
	v.static(c)
	// What SearchLocal reads must be complete first: full-text entries
	// still pending, IMAP views not computed yet (BCC, HEADER, SENT*).
	if err := s.srv.o.Store.PrepareSearch(s.srv.ctx, v.folder.ID, c); err != nil {
		return nil, s.storeErr("searching", err)
	}
	var found []uint32
	err := s.srv.o.Store.Read(s.srv.ctx, func(tx *index.ReadTx) error {
		var err error
		found, err = tx.SearchLocal(v.folder.ID, c)
		return err
	})
	if err != nil {
		return nil, s.storeErr("searching", err)
	}
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uidSet imap.UIDSet
	b := v.box
	b.mu.Lock()
	for _, uid := range found {
		seq := v.seqOf(uid)
		if seq == 0 {
			continue // not announced to the client (yet), or expunged
		}
		uidSet.AddNum(imap.UID(uid))
		seqs.AddNum(seq)
		num := seq
		if kind == imapserver.NumKindUID {
			num = uid
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	b.mu.Unlock()
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqs
	}
	if o.ReturnSave {
		v.searchRes = uidSet
	}
	return data, nil
}

// static turns c's sequence sets into UID sets and resolves "*" and "$"
// in its UID sets, through NOT and OR, as SearchLocal wants them.
func (v *view) static(c *imap.SearchCriteria) {
	var out []imap.UIDSet
	for _, set := range c.SeqNum {
		var u imap.UIDSet
		for _, it := range v.resolve(set) {
			u.AddNum(imap.UID(it.uid))
		}
		out = append(out, u)
	}
	last := v.lastUID()
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			out = append(out, v.searchRes)
			continue
		}
		var u imap.UIDSet
		for _, r := range set {
			start, stop := static(uint32(r.Start), uint32(r.Stop), last)
			if start != 0 {
				u.AddRange(imap.UID(start), imap.UID(stop))
			}
		}
		out = append(out, u)
	}
	for i := range out {
		if len(out[i]) == 0 {
			out[i] = none
		}
	}
	c.SeqNum, c.UID = nil, out
	for i := range c.Not {
		v.static(&c.Not[i])
	}
	for i := range c.Or {
		v.static(&c.Or[i][0])
		v.static(&c.Or[i][1])
	}
}
