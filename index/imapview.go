package index

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/emersion/go-imap/v2"
)

// The IMAP view of a message: its ENVELOPE and extended BODYSTRUCTURE, and
// what SEARCH needs that the messages row lacks (RFC822.SIZE with CRLF
// line ends, the Date header's own day, the header block), computed once
// from the message file and kept in imap_views (sql/009_imapview.sql).
//
// Everything is computed on the message as IMAP serves it: with CRLF line
// ends (a stored LF becomes CRLF, as maildir.CRLFWriter writes it), so
// sizes and line counts are those of the bytes a FETCH sends.

// IMAPView returns the message's ENVELOPE and BODYSTRUCTURE (extended),
// computed once per message and kept in the index. Only m.ID is used: the
// file is opened through the door (OpenBody, by the row's key when its
// name changed since). A view kept for other bytes than the row's (the
// row's SHA-256 changed since) is computed again. On a dry-run view the result is
// not kept beyond the dry run.
func (s *Store) IMAPView(ctx context.Context, m *Message) (*imap.Envelope, imap.BodyStructure, error) {
	vs, err := s.IMAPViews(ctx, []*Message{m})
	if err != nil {
		return nil, nil, err
	}
	return vs[0].Envelope, vs[0].BodyStructure, nil
}

// IMAPViewOf is one message's view, as IMAPViews returns it.
type IMAPViewOf struct {
	Envelope      *imap.Envelope
	BodyStructure imap.BodyStructure
}

// IMAPViews is IMAPView of many messages (a FETCH of a range): the kept
// views are read in one transaction, the missing ones computed and kept
// in one more. The views come in the order of msgs. It fails on the
// first message whose view can be neither read nor computed.
func (s *Store) IMAPViews(ctx context.Context, msgs []*Message) ([]IMAPViewOf, error) {
	out := make([]IMAPViewOf, len(msgs))
	var missing []int
	err := s.Read(ctx, func(tx *ReadTx) error {
		for i, m := range msgs {
			var blob []byte
			err := tx.queryRow(`SELECT v.view FROM imap_views v JOIN messages m ON m.id = v.message_id
				WHERE v.message_id=? AND v.sha256 = m.sha256`, m.ID).Scan(&blob)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if blob != nil {
				if env, bs, err := decodeView(blob); err == nil {
					out[i] = IMAPViewOf{env, bs}
					continue
				}
				// A view this version cannot read: computed again.
			}
			missing = append(missing, i)
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return out, err
	}
	computed := make([]*messageView, len(missing))
	for k, i := range missing {
		v, err := s.computeView(ctx, msgs[i].ID)
		if err != nil {
			return nil, err
		}
		computed[k] = v
		// As kept (JSON makes text valid UTF-8): the same at every use.
		env, bs, err := decodeView(v.blob)
		if err != nil {
			return nil, err
		}
		out[i] = IMAPViewOf{env, bs}
	}
	err = s.Write(ctx, func(tx *Tx) error {
		for k, i := range missing {
			if err := tx.putView(msgs[i].ID, computed[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// IndexIMAP computes the IMAP views a folder's messages lack (rows made
// before schema version 9, or whose file changed), reading their files in
// parallel and storing them in batches; it returns how many it stored. A
// message whose file cannot be read is left without a view (IMAPView
// reports the error when asked for it). SearchLocal answers BCC, HEADER
// and the Date header's day exactly only for messages with a view: the
// endpoint runs this through PrepareSearch before a SEARCH that needs it.
func (s *Store) IndexIMAP(ctx context.Context, folder FolderID) (int, error) {
	total := 0
	var after MessageID
	for {
		var ids []MessageID
		err := s.Read(ctx, func(tx *ReadTx) error {
			rows, err := tx.query(`SELECT m.id FROM messages m LEFT JOIN imap_views v ON v.message_id = m.id
				WHERE m.folder_id=? AND m.id > ? AND (v.message_id IS NULL OR v.sha256 != m.sha256)
				ORDER BY m.id LIMIT 256`, folder, after)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id MessageID
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil || len(ids) == 0 {
			return total, err
		}
		after = ids[len(ids)-1]
		views := make([]*messageView, len(ids))
		var wg sync.WaitGroup
		next := make(chan int)
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					views[i], _ = s.computeView(ctx, ids[i]) // unreadable: no view
				}
			}()
		}
	feed:
		for i := range ids {
			select {
			case next <- i:
			case <-ctx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return total, err
		}
		err = s.Write(ctx, func(tx *Tx) error {
			for i, v := range views {
				if v != nil {
					if err := tx.putView(ids[i], v); err != nil {
						return err
					}
					total++
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
	}
}

// messageView is a computed view and what is stored beside it.
type messageView struct {
	env     *imap.Envelope
	body    *viewPart
	size    int64  // RFC822.SIZE
	sentDay *int64 // see calendarDay
	header  []byte // as stored, at most maxViewHeader bytes
	blob    []byte // env and body as kept (storedView)
}

// storedView is the JSON form of the view column.
type storedView struct {
	Envelope *imap.Envelope `json:"e"`
	Body     *viewPart      `json:"b"`
}

func decodeView(blob []byte) (*imap.Envelope, imap.BodyStructure, error) {
	var sv storedView
	if err := json.Unmarshal(blob, &sv); err != nil {
		return nil, nil, err
	}
	if sv.Envelope == nil || sv.Body == nil {
		return nil, nil, errors.New("index: empty IMAP view")
	}
	return sv.Envelope, sv.Body.imap(), nil
}

// putView stores message id's view unless its row is gone meanwhile.
func (tx *Tx) putView(id MessageID, v *messageView) error {
	// The row's hash: the view stays until the row's file changes (a
	// file rewritten in place without a new row is not read again).
	_, err := tx.exec(`INSERT OR REPLACE INTO imap_views(message_id, sha256, view, size, sent_day, header)
		SELECT id, sha256, ?, ?, ?, ? FROM messages WHERE id=?`,
		v.blob, v.size, v.sentDay, v.header, id)
	return err
}

// computeView reads message id's file through the door and computes its
// view.
func (s *Store) computeView(ctx context.Context, id MessageID) (*messageView, error) {
	b, err := s.OpenBody(ctx, id)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	v, err := viewOf(b)
	if err == nil {
		v.blob, err = json.Marshal(storedView{Envelope: v.env, Body: v.body})
	}
	if err != nil {
		return nil, fmt.Errorf("index: message %d: %w", id, err)
	}
	return v, nil
}

// viewBufs are viewOf's read buffers, reused: a fresh 48 KiB per message
// was most of the agent's garbage while sessions computed the views of a
// large folder (IndexIMAP before a SEARCH, ENVELOPE of new messages).
// Nothing viewOf returns points into them.
var viewBufs = sync.Pool{New: func() any {
	return &viewBuffers{crlf: make([]byte, 32<<10), br: bufio.NewReaderSize(nil, 16<<10)}
}}

type viewBuffers struct {
	crlf []byte
	br   *bufio.Reader
}

// viewOf computes the view of a message as stored (LF or CRLF line ends).
func viewOf(r io.Reader) (*messageView, error) {
	vb := viewBufs.Get().(*viewBuffers)
	defer func() {
		vb.br.Reset(nil)
		viewBufs.Put(vb)
	}()
	wire := &viewCounter{r: &crlfReader{r: r, buf: vb.crlf}}
	p := &viewParser{}
	br := vb.br
	br.Reset(wire)
	raw, fields := readHeaderBlock(br)
	v := &messageView{header: append([]byte{}, raw...)} // never NULL: a message may have no header
	v.body = p.part(fields, br, 0, false)
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, err
	}
	if wire.err != nil && wire.err != io.EOF {
		return nil, wire.err
	}
	v.env = envelopeOf(fields)
	v.size = wire.n
	if !v.env.Date.IsZero() {
		d := calendarDay(v.env.Date)
		v.sentDay = &d
	}
	return v, nil
}

// viewCounter counts the bytes and LFs read through it and keeps the first
// error other than EOF.
type viewCounter struct {
	r        io.Reader
	n, lines int64
	err      error
}

func (c *viewCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines++
		}
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// crlfReader reads a stored message in wire form: every LF not preceded
// by CR becomes CRLF (as maildir.CRLFWriter writes it).
type crlfReader struct {
	r      io.Reader
	buf    []byte
	prevCR bool
	owed   bool // the LF of a CRLF whose CR filled the last read
}

func (c *crlfReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if c.owed {
		p[0], n, c.owed = '\n', 1, false
		if n == len(p) {
			return n, nil
		}
	}
	want := max((len(p)-n)/2, 1) // each byte read may become two
	if c.buf == nil {
		c.buf = make([]byte, 32<<10)
	}
	m, err := c.r.Read(c.buf[:min(want, len(c.buf))])
	for _, b := range c.buf[:m] {
		if b == '\n' && !c.prevCR {
			p[n] = '\r'
			n++
			if n == len(p) {
				c.owed, c.prevCR = true, false
				continue
			}
		}
		p[n] = b
		n++
		c.prevCR = b == '\r'
	}
	return n, err
}
