package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// fetchChunk is how many messages' rows a FETCH reads at a time.
const fetchChunk = 200

// readAhead is how many rows past the messages it names a FETCH reads
// when it asks only for what never changes of a message (its body, size,
// dates, envelope): a client that fetches message by message, as mbsync
// does, then costs one index read per readAhead messages.
const readAhead = 100

// inMemory is the largest message whose wire form a FETCH holds in
// memory; a larger one is read twice (counted, then streamed).
const inMemory = 1 << 20

// A FETCH reads each message file through buffers it reuses: the copy
// buffer (io.Copy would allocate 32 KiB per file) and the wire form of
// a small message. Ten clients syncing a 100,000-message store fetch
// thousands of headers a second; a fresh 35 KiB per message was 100 MB/s
// of garbage, and the agent's heap overshot by 150 MB between
// collections. A wire buffer that grew beyond keepWire (a large
// message's) is dropped, not kept.
var (
	copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	wireBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

const keepWire = 64 << 10

// copyCRLF copies the message file r to w with CRLF line ends, through
// a pooled buffer.
func copyCRLF(w io.Writer, r io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// (The struct hides any WriterTo of r, which would not use the buffer.)
	_, err := io.CopyBuffer(maildir.NewCRLFWriter(w), struct{ io.Reader }{r}, *bp)
	return err
}

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, o *imap.FetchOptions) error {
	v := s.view
	if err := v.checkSeqs(numSet); err != nil {
		return err
	}
	items := v.resolve(numSet)
	markSeen := !v.readOnly && wantsSeen(o)
	need := rowsFull
	switch {
	case flagsOnly(o):
		need = rowsFlags
	case !markSeen && fixedOnly(o):
		need = rowsFixed
	}
	for len(items) > 0 {
		chunk := items[:min(len(items), fetchChunk)]
		items = items[len(chunk):]
		release := func() {}
		if markSeen {
			var err error
			if release, err = s.turn(v.folder.ID); err != nil {
				return err
			}
		}
		rows, err := s.rows(v, chunk, need)
		if err != nil {
			release()
			return err
		}
		var seen map[uint32]bool
		if markSeen {
			seen, err = s.markSeen(v, rows)
		}
		release()
		if err != nil {
			return err
		}
		for _, it := range chunk {
			m := rows[it.uid]
			if m == nil {
				continue // expunged meanwhile: the client hears of it next
			}
			if err := s.fetchOne(w, v, it.seq, m, o, seen[it.uid]); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowsNeed is what a command needs of its messages' rows.
type rowsNeed int

const (
	// rowsFull: the whole rows, read now.
	rowsFull rowsNeed = iota
	// rowsFixed: only what never changes of a message (see fixedOnly):
	// rows read ahead by an earlier FETCH serve, and a short read reads
	// ahead. A row's flags may be stale then, its body, size and dates
	// cannot be; a message expunged meanwhile has no file left, and
	// fetchOne leaves it out.
	rowsFixed
	// rowsFlags: UID and flags (see flagsOnly), read now from the
	// index's covering index.
	rowsFlags
)

// rows reads the rows of items, by local UID.
func (s *session) rows(v *view, items []item, need rowsNeed) (map[uint32]*index.Message, error) {
	if need == rowsFixed && v.ahead != nil {
		hit := make(map[uint32]*index.Message, len(items))
		for _, it := range items {
			if m := v.ahead[it.uid]; m != nil {
				hit[it.uid] = m
			}
		}
		if len(hit) == len(items) {
			return hit, nil
		}
	}
	want := uids(items)
	if need == rowsFixed && len(items) < readAhead {
		want = append(want, v.uidsAfter(want[len(want)-1], readAhead)...)
	}
	var list []*index.Message
	err := s.srv.o.Store.Read(s.srv.ctx, func(tx *index.ReadTx) error {
		var err error
		if need == rowsFlags {
			list, err = tx.LocalFlags(v.folder.ID, want)
		} else {
			list, err = tx.LocalMessages(v.folder.ID, want)
		}
		return err
	})
	if err != nil {
		return nil, s.storeErr("reading messages", err)
	}
	out := make(map[uint32]*index.Message, len(list))
	for _, m := range list {
		out[m.LocalUID] = m
	}
	if need == rowsFixed {
		v.ahead = out
	}
	return out, nil
}

// fixedOnly reports whether a FETCH asks only for what never changes of
// a message: no FLAGS (nor MODSEQ), and no body item that sets \Seen
// (the caller checks that).
func fixedOnly(o *imap.FetchOptions) bool {
	return !o.Flags && !o.ModSeq
}

// flagsOnly reports whether a FETCH asks for nothing but UID and FLAGS
// (what a client's resync asks).
func flagsOnly(o *imap.FetchOptions) bool {
	return !o.Envelope && o.BodyStructure == nil && !o.RFC822Size && !o.ModSeq && !o.InternalDate &&
		len(o.BodySection) == 0 && len(o.BinarySection) == 0 && len(o.BinarySectionSize) == 0
}

// wantsSeen reports whether a FETCH sets \Seen (a BODY[...] or
// BINARY[...] without .PEEK).
func wantsSeen(o *imap.FetchOptions) bool {
	for _, bs := range o.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range o.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// markSeen sets \Seen on the rows that lack it and returns their UIDs.
func (s *session) markSeen(v *view, rows map[uint32]*index.Message) (map[uint32]bool, error) {
	var changes []index.FlagChange
	for _, m := range rows {
		if m.Flags&maildir.FlagSeen == 0 {
			changes = append(changes, index.FlagChange{Message: m, Flags: m.Flags | maildir.FlagSeen, Keywords: m.Keywords})
		}
	}
	if err := s.setFlags(v, changes); err != nil {
		return nil, err
	}
	seen := make(map[uint32]bool, len(changes))
	for _, c := range changes {
		seen[c.Message.LocalUID] = true
	}
	return seen, nil
}

// part is one body item of a FETCH response, ready to write: a window of
// the message's wire form, or bytes.
type part struct {
	body   *imap.FetchItemBodySection
	binary *imap.FetchItemBinarySection
	data   []byte
	start  int64 // a window [start, end) of wire when data is nil
	end    int64
	window bool
}

// fetchOne writes the FETCH response of one message. Everything that can
// fail is done before the response starts: once started, it is written
// to the end. A message whose file is gone is left out.
func (s *session) fetchOne(w *imapserver.FetchWriter, v *view, seq uint32, m *index.Message, o *imap.FetchOptions, flagsChanged bool) error {
	var env *imap.Envelope
	var bs imap.BodyStructure
	if o.Envelope || o.BodyStructure != nil {
		var err error
		if env, bs, err = s.srv.o.Store.IMAPView(s.srv.ctx, m); err != nil {
			return s.fileErr(m, err)
		}
	}
	size := m.RFC822Size
	var wm *wireMsg
	if len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 || (o.RFC822Size && size == 0) {
		var err error
		if wm, err = s.openWire(v, m); err != nil {
			return s.fileErr(m, err)
		}
		defer wm.release()
		if size == 0 {
			size = wm.size
		}
	}
	parts, err := wm.parts(o)
	if err != nil {
		return s.fileErr(m, err)
	}
	rw := w.CreateMessage(seq)
	rw.WriteUID(imap.UID(m.LocalUID))
	if o.Flags || flagsChanged {
		rw.WriteFlags(imapFlags(m.Flags, m.Keywords))
	}
	if o.InternalDate {
		rw.WriteInternalDate(internalDate(m))
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(size)
	}
	if o.Envelope {
		rw.WriteEnvelope(env)
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(bs)
	}
	var werr error
	for _, p := range parts {
		if err := wm.writePart(rw, p); err != nil && werr == nil {
			werr = err
		}
	}
	for _, bss := range o.BinarySectionSize {
		b := imapserver.ExtractBinarySection(bytes.NewReader(wm.data), &imap.FetchItemBinarySection{Part: bss.Part})
		rw.WriteBinarySectionSize(bss, uint32(len(b)))
	}
	if err := rw.Close(); err != nil {
		return err
	}
	return werr
}

// fileErr is what a FETCH does when a message's file cannot be read: a
// file that is gone (another program removed it; the scan will remove
// the row) leaves the message out, anything else fails the command.
func (s *session) fileErr(m *index.Message, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		s.srv.log.Debug("imapd: fetch: message file gone", "key", m.Key)
		return nil
	}
	return s.storeErr("reading message "+m.Key, err)
}

// internalDate is the message's INTERNALDATE: when it was stored, else
// its Date header, else the epoch.
func internalDate(m *index.Message) time.Time {
	switch {
	case !m.InternalDate.IsZero():
		return m.InternalDate
	case !m.Header.Date.IsZero():
		return m.Header.Date
	}
	return time.Unix(0, 0).UTC()
}

// wireMsg is a message's wire form (CRLF line ends): held in data when
// small, else measured and streamed from the file again for each part.
type wireMsg struct {
	s      *session
	v      *view
	m      *index.Message
	data   []byte        // the whole wire form, or nil
	buf    *bytes.Buffer // holds data when it came from wireBufs
	header []byte        // the header block (through its blank line)
	size   int64
	hdrEnd int64 // where the body starts
}

// openWire reads message m's file: into memory when small, else counted.
func (s *session) openWire(v *view, m *index.Message) (*wireMsg, error) {
	b, err := s.srv.o.Store.OpenMessage(&v.folder, m)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	wm := &wireMsg{s: s, v: v, m: m}
	if b.Size <= inMemory {
		buf := wireBufs.Get().(*bytes.Buffer)
		buf.Reset()
		buf.Grow(int(b.Size + b.Size/32 + 64))
		wm.buf = buf
		if err := copyCRLF(buf, b); err != nil {
			wm.release()
			return nil, err
		}
		wm.setData(buf.Bytes())
		return wm, nil
	}
	hc := &headerCounter{}
	if err := copyCRLF(hc, b); err != nil {
		return nil, err
	}
	wm.size, wm.header = hc.n, hc.header
	wm.hdrEnd = int64(len(hc.header))
	return wm, nil
}

// release returns wm's buffer to the pool; wm's data must not be used
// after. A nil wm is fine.
func (wm *wireMsg) release() {
	if wm == nil || wm.buf == nil {
		return
	}
	if wm.buf.Cap() <= keepWire {
		wireBufs.Put(wm.buf)
	}
	wm.buf, wm.data, wm.header = nil, nil, nil
}

func (wm *wireMsg) setData(d []byte) {
	wm.data, wm.size = d, int64(len(d))
	wm.hdrEnd = headerEnd(d)
	wm.header = d[:wm.hdrEnd]
}

// headerEnd returns where the body of wire message d starts: after the
// first empty line, or at the end when there is none.
func headerEnd(d []byte) int64 {
	if bytes.HasPrefix(d, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(d, []byte("\r\n\r\n")); i >= 0 {
		return int64(i + 4)
	}
	return int64(len(d))
}

// full loads the whole wire form into memory (a part of a large message).
func (wm *wireMsg) full() error {
	if wm.data != nil {
		return nil
	}
	b, err := wm.s.srv.o.Store.OpenMessage(&wm.v.folder, wm.m)
	if err != nil {
		return err
	}
	defer b.Close()
	var buf bytes.Buffer
	if err := copyCRLF(&buf, b); err != nil {
		return err
	}
	wm.setData(buf.Bytes())
	return nil
}

// parts prepares the body items o asks for.
func (wm *wireMsg) parts(o *imap.FetchOptions) ([]part, error) {
	var out []part
	for _, sec := range o.BodySection {
		p := part{body: sec}
		switch {
		case len(sec.Part) > 0:
			if err := wm.full(); err != nil {
				return nil, err
			}
			p.data = imapserver.ExtractBodySection(bytes.NewReader(wm.data), sec)
		case len(sec.HeaderFields) > 0 || len(sec.HeaderFieldsNot) > 0:
			p.data = partial(filterHeader(wm.header, sec.HeaderFields, sec.HeaderFieldsNot), sec.Partial)
		default:
			start, end := int64(0), wm.size
			switch sec.Specifier {
			case imap.PartSpecifierHeader, imap.PartSpecifierMIME:
				end = wm.hdrEnd
			case imap.PartSpecifierText:
				start = wm.hdrEnd
			}
			if sec.Partial != nil {
				start = min(start+sec.Partial.Offset, end)
				if sec.Partial.Size >= 0 && sec.Partial.Size < end-start {
					end = start + sec.Partial.Size
				}
			}
			p.start, p.end, p.window = start, end, true
		}
		out = append(out, p)
	}
	if len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		if err := wm.full(); err != nil {
			return nil, err
		}
	}
	for _, sec := range o.BinarySection {
		out = append(out, part{binary: sec, data: imapserver.ExtractBinarySection(bytes.NewReader(wm.data), sec)})
	}
	return out, nil
}

// partial applies <offset.size> to b.
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return nil
	}
	b = b[p.Offset:]
	if p.Size >= 0 && p.Size < int64(len(b)) {
		b = b[:p.Size]
	}
	return b
}

// writePart writes one body item.
func (wm *wireMsg) writePart(rw *imapserver.FetchResponseWriter, p part) error {
	if p.binary != nil {
		lw := rw.WriteBinarySection(p.binary, int64(len(p.data)))
		_, err := lw.Write(p.data)
		return closeBoth(lw, err)
	}
	if !p.window {
		lw := rw.WriteBodySection(p.body, int64(len(p.data)))
		_, err := lw.Write(p.data)
		return closeBoth(lw, err)
	}
	n := p.end - p.start
	lw := rw.WriteBodySection(p.body, n)
	if wm.data != nil {
		_, err := lw.Write(wm.data[p.start:p.end])
		return closeBoth(lw, err)
	}
	return closeBoth(lw, wm.stream(lw, p.start, n))
}

// stream writes n bytes of the wire form from offset start, read from
// the file again. A file that changed meanwhile makes it fail (the
// literal is short: the connection cannot go on).
func (wm *wireMsg) stream(w io.Writer, start, n int64) error {
	b, err := wm.s.srv.o.Store.OpenMessage(&wm.v.folder, wm.m)
	if err != nil {
		return err
	}
	defer b.Close()
	ww := &window{w: w, skip: start, left: n}
	if err := copyCRLF(ww, b); err != nil && !errors.Is(err, errWindowDone) {
		return err
	}
	if ww.left != 0 {
		return fmt.Errorf("imapd: message %s: %w", wm.m.Key, maildir.ErrSizeChanged)
	}
	return nil
}

func closeBoth(c io.Closer, err error) error {
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

var errWindowDone = errors.New("window written")

// window passes on the bytes [skip, skip+left) of what is written to it.
type window struct {
	w          io.Writer
	skip, left int64
}

func (ww *window) Write(p []byte) (int, error) {
	n := len(p)
	if ww.skip > 0 {
		k := min(ww.skip, int64(len(p)))
		ww.skip -= k
		p = p[k:]
	}
	if len(p) > 0 && ww.left > 0 {
		k := min(ww.left, int64(len(p)))
		if _, err := ww.w.Write(p[:k]); err != nil {
			return 0, err
		}
		ww.left -= k
	}
	if ww.left == 0 && ww.skip == 0 {
		return n, errWindowDone
	}
	return n, nil
}

// headerCounter counts a wire form written to it and keeps its header.
type headerCounter struct {
	n      int64
	header []byte
	done   bool
}

func (h *headerCounter) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if !h.done {
		h.header = append(h.header, p...)
		if e := headerEnd(h.header); e < int64(len(h.header)) || (e == 2 && bytes.HasPrefix(h.header, []byte("\r\n"))) {
			h.header, h.done = h.header[:e], true
		} else if len(h.header) > inMemory {
			h.done = true // no header end in sight: the header is what there is
		}
	}
	return len(p), nil
}

// filterHeader returns the fields of header (a wire header block) named
// in only (when given) and not in not, followed by the empty line.
func filterHeader(header []byte, only, not []string) []byte {
	keep := func(name string) bool {
		if len(only) > 0 {
			found := false
			for _, k := range only {
				found = found || strings.EqualFold(k, name)
			}
			if !found {
				return false
			}
		}
		for _, k := range not {
			if strings.EqualFold(k, name) {
				return false
			}
		}
		return true
	}
	var out []byte
	on := false
	for len(header) > 0 {
		line := header
		if i := bytes.Index(header, []byte("\r\n")); i >= 0 {
			line = header[:i+2]
		}
		header = header[len(line):]
		if len(line) == 2 && line[0] == '\r' {
			break // the empty line
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := bytes.Cut(line, []byte(":"))
			on = ok && keep(strings.TrimRight(string(name), " \t"))
		}
		if on {
			out = append(out, line...)
		}
	}
	return append(out, '\r', '\n')
}
