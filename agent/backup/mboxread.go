package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/postfach/postfach/maildir"
)

// Reading an mbox (the export's, or another tool's): see mbox.go for
// the format.

// maxHeldLine bounds a line the reader holds whole: a From_ line and
// the lines an export adds. A message's own lines are streamed, however
// long.
const maxHeldLine = 1 << 20

// mboxReader reads the messages of an mbox one at a time, streaming
// each: its memory does not grow with a message or a line.
type mboxReader struct {
	br       *bufio.Reader
	line     int    // lines begun
	mid      bool   // the last piece read did not end its line
	have     bool   // from holds the next message's From_ line, read already
	from     []byte // that line
	fromLine int    // its number
	long     []byte // a held line longer than br's buffer, put together
	head     []byte // the start of the message being read (foreignFlags)
	err      error  // sticky: io.EOF after the last message
}

func newMboxReader(r io.Reader) *mboxReader { return newMboxReaderSize(r, 64<<10) }

// newMboxReaderSize reads through a buffer of size bytes (at least 32:
// the start of each line must hold the export header's name).
func newMboxReaderSize(r io.Reader, size int) *mboxReader {
	return &mboxReader{br: bufio.NewReaderSize(r, size)}
}

// piece returns the next piece of the input: the rest of a line, or as
// much of it as fits br's buffer (more: the line goes on). The piece is
// valid until the next call; after a line that ends with the input
// where a piece said more, an empty piece ends it. io.EOF at the end.
func (r *mboxReader) piece() (l []byte, more bool, err error) {
	l, err = r.br.ReadSlice('\n')
	more = errors.Is(err, bufio.ErrBufferFull)
	if more || err == io.EOF && (len(l) > 0 || r.mid) {
		err = nil
	}
	if err != nil {
		return nil, false, err
	}
	if !r.mid {
		r.line++
	}
	r.mid = more
	return l, more, nil
}

// held returns the whole line whose first piece is l, at most
// maxHeldLine bytes.
func (r *mboxReader) held(l []byte, more bool) ([]byte, error) {
	if !more {
		return l, nil
	}
	r.long = append(r.long[:0], l...)
	for more {
		var err error
		if l, more, err = r.piece(); err != nil {
			return nil, err
		}
		if len(r.long)+len(l) > maxHeldLine {
			return nil, fmt.Errorf("line %d: a From_ line or export header longer than %d bytes", r.line, maxHeldLine)
		}
		r.long = append(r.long, l...)
	}
	return r.long, nil
}

// more reports whether another message follows, reading its From_ line.
func (r *mboxReader) more() (bool, error) {
	if r.have {
		return true, nil
	}
	if r.err == nil {
		r.err = r.readFrom()
	}
	if r.err == io.EOF {
		return false, nil
	}
	return r.err == nil, r.err
}

// readFrom reads the first line of the mbox: a From_ line.
func (r *mboxReader) readFrom() error {
	l, more, err := r.piece()
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(l, []byte("From ")) {
		return fmt.Errorf("line %d: not an mbox: no From_ line", r.line)
	}
	return r.keepFrom(l, more)
}

// keepFrom keeps the From_ line whose first piece is l.
func (r *mboxReader) keepFrom(l []byte, more bool) error {
	l, err := r.held(l, more)
	if err != nil {
		return err
	}
	r.from, r.have, r.fromLine = append(r.from[:0], l...), true, r.line
	return nil
}

// next reads the next message, writing its bytes to body as it goes
// (what the mbox holds of it with the export's lines removed and the
// mboxrd quoting undone); io.EOF after the last one. After an error the
// reader is done, and body may have had part of the message.
func (r *mboxReader) next(body io.Writer) (*mboxMessage, error) {
	if ok, err := r.more(); !ok {
		if err == nil {
			err = io.EOF
		}
		return nil, err
	}
	m, err := r.readMessage(body)
	if err != nil && r.err == nil {
		r.err = err
	}
	return m, err
}

func (r *mboxReader) readMessage(body io.Writer) (*mboxMessage, error) {
	m := &mboxMessage{Line: r.fromLine}
	m.Sender, m.Date = parseFromLine(r.from)
	r.have = false
	out := &msgSink{w: body, h: sha256.New(), head: r.head[:0]}
	added, eol := -1, true
	for first := true; ; first = false {
		l, more, err := r.piece()
		if err == io.EOF {
			r.err = io.EOF
			break
		}
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(l, []byte("From ")) {
			if err := r.keepFrom(l, more); err != nil {
				return nil, err
			}
			break
		}
		if first && bytes.HasPrefix(l, []byte(exportHeader)) || added > 0 {
			if l, err = r.held(l, more); err != nil {
				return nil, err
			}
			if added > 0 {
				err = m.parseAdded(l)
				added--
			} else {
				added, eol, err = m.parseExportHeader(l)
			}
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", r.line, err)
			}
			continue
		}
		if err := r.bodyLine(out, l, more); err != nil {
			return nil, err
		}
	}
	if added > 0 {
		return nil, fmt.Errorf("line %d: the message ends within the lines the export added", r.line)
	}
	if err := out.finish(eol); err != nil {
		return nil, fmt.Errorf("line %d: %w", m.Line, err)
	}
	m.Size = out.size
	out.h.Sum(m.Sum[:0])
	r.head = out.head
	if !m.Ours {
		m.foreignFlags(out.head)
	}
	return m, nil
}

var gtRun = bytes.Repeat([]byte{'>'}, 4096)

// bodyLine writes one line of a message to w, l its first piece (more:
// the line goes on), undoing the mboxrd quoting: a line that matches
// ^>+From  loses its first '>'. A long line is streamed piece by piece:
// only the '>' at its start (counted, not held) and what follows of
// "From " are withheld until it is known whether it matches.
func (r *mboxReader) bodyLine(w io.Writer, l []byte, more bool) error {
	if !more {
		if l[0] == '>' && isFromLine(l) {
			l = l[1:]
		}
		_, err := w.Write(l)
		return err
	}
	const from = "From "
	var gt int64 // '>' withheld
	matched := 0 // bytes of "From " withheld after them
	decided := false
	release := func(drop int64) error {
		decided = true
		for n := gt - drop; n > 0; {
			k := min(n, int64(len(gtRun)))
			if _, err := w.Write(gtRun[:k]); err != nil {
				return err
			}
			n -= k
		}
		_, err := io.WriteString(w, from[:matched])
		return err
	}
	for {
		if !decided {
			if matched == 0 {
				n := len(l) - len(bytes.TrimLeft(l, ">"))
				gt += int64(n)
				l = l[n:]
			}
			if len(l) > 0 {
				k := 0
				for k < len(l) && matched+k < len(from) && l[k] == from[matched+k] {
					k++
				}
				switch {
				case matched+k == len(from):
					err := release(min(gt, 1))
					if err != nil {
						return err
					}
				case k == len(l):
					matched += k // "From " goes on in the next piece, perhaps
					l = nil
				default:
					if err := release(0); err != nil {
						return err
					}
				}
			}
		}
		if decided && len(l) > 0 {
			if _, err := w.Write(l); err != nil {
				return err
			}
		}
		if !more {
			if !decided {
				return release(0)
			}
			return nil
		}
		var err error
		if l, more, err = r.piece(); err != nil {
			return err
		}
	}
}

// msgSink takes the bytes of a message as the reader finds them and
// passes them on to w, hashed and counted, its first maildir.MaxHeader
// bytes kept in head; it holds back the last two, for finish.
type msgSink struct {
	w    io.Writer
	h    hash.Hash
	size int64
	head []byte
	hold [2]byte
	n    int // bytes in hold
}

func (s *msgSink) Write(p []byte) (int, error) {
	switch {
	case s.n+len(p) <= len(s.hold):
		s.n += copy(s.hold[s.n:], p)
	case len(p) >= len(s.hold):
		if err := s.emit(s.hold[:s.n]); err != nil {
			return 0, err
		}
		if err := s.emit(p[:len(p)-len(s.hold)]); err != nil {
			return 0, err
		}
		s.n = copy(s.hold[:], p[len(p)-len(s.hold):])
	default: // one byte, two held
		if err := s.emit(s.hold[:1]); err != nil {
			return 0, err
		}
		s.hold[0], s.hold[1] = s.hold[1], p[0]
	}
	return len(p), nil
}

func (s *msgSink) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if room := maildir.MaxHeader - len(s.head); room > 0 {
		s.head = append(s.head, b[:min(room, len(b))]...)
	}
	s.h.Write(b)
	s.size += int64(len(b))
	_, err := s.w.Write(b)
	return err
}

// finish passes on what is held back, less the newline of the empty
// line that ends every message and, when the export added one (eol=no),
// that newline too.
func (s *msgSink) finish(eol bool) error {
	t := bytes.TrimSuffix(s.hold[:s.n], []byte("\n"))
	if !eol {
		if !bytes.HasSuffix(t, []byte("\n")) {
			return errors.New("eol=no, but the message has no newline the export added")
		}
		t = t[:len(t)-1]
	}
	return s.emit(t)
}

// foreignFlags sets the flags and keywords of a message another tool
// wrote from the first Status, X-Status and X-Keywords lines of its
// header (which stay in it: only the export's own lines are removed),
// given the message's first bytes (at most maildir.MaxHeader of them).
func (m *mboxMessage) foreignFlags(raw []byte) {
	seen := map[string]bool{}
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line = raw[:i+1]
		}
		raw = raw[len(line):]
		l := strings.TrimRight(string(line), "\r\n")
		if l == "" {
			return // the header's end
		}
		name, v, ok := strings.Cut(l, ":")
		name = strings.ToLower(name)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		v = strings.TrimSpace(v)
		switch name {
		case "status":
			if strings.Contains(v, "R") {
				m.Flags |= maildir.FlagSeen
			}
		case "x-status":
			for _, l := range []struct {
				c string
				f maildir.Flags
			}{{"A", maildir.FlagAnswered}, {"F", maildir.FlagFlagged}, {"T", maildir.FlagDraft}, {"D", maildir.FlagDeleted}} {
				if strings.Contains(v, l.c) {
					m.Flags |= l.f
				}
			}
		case "x-keywords":
			for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if strings.EqualFold(k, "$Forwarded") {
					m.Flags |= maildir.FlagPassed
				} else if k, err := unescapeKeyword(k); err == nil {
					m.Keywords = append(m.Keywords, k)
				}
			}
		}
	}
}

// parseFromLine reads a From_ line: "From <sender> <asctime>".
func parseFromLine(l []byte) (string, time.Time) {
	s := strings.TrimRight(string(l[len("From "):]), "\r\n")
	sender, rest, _ := strings.Cut(s, " ")
	t, err := time.Parse(time.ANSIC, strings.TrimSpace(rest))
	if err != nil {
		return sender, time.Time{}
	}
	return sender, t
}

// parseExportHeader reads the X-Postfach-Export line of m.
func (m *mboxMessage) parseExportHeader(l []byte) (added int, eol bool, err error) {
	v := strings.TrimSpace(string(l[len(exportHeader):]))
	fields := map[string]string{}
	for _, f := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = val
	}
	bad := func(what string) error { return fmt.Errorf("malformed %s header: %s", exportHeader, what) }
	if fields["v"] != "1" {
		return 0, false, bad("version " + strconv.Quote(fields["v"]))
	}
	added, err = strconv.Atoi(fields["added"])
	if err != nil || added < 0 || added > 3 {
		return 0, false, bad("added")
	}
	switch fields["eol"] {
	case "yes":
		eol = true
	case "no":
	default:
		return 0, false, bad("eol")
	}
	info := fields["flags"]
	if info == "-" {
		info = ""
	}
	m.Flags = maildir.ParseInfo("2," + info)
	if strings.TrimPrefix(m.Flags.Info(), "2,") != info {
		return 0, false, bad("flags")
	}
	if s := fields["sha256"]; len(s) != 64 {
		return 0, false, bad("sha256")
	} else if _, err := hex.Decode(m.SHA256[:], []byte(s)); err != nil {
		return 0, false, bad("sha256")
	}
	m.Ours = true
	return added, eol, nil
}

// parseAdded reads one of the lines the export added after its
// X-Postfach-Export line: the flags are the export header's, the
// keywords X-Keywords's.
func (m *mboxMessage) parseAdded(l []byte) error {
	name, v, _ := strings.Cut(strings.TrimRight(string(l), "\r\n"), ":")
	switch name {
	case "Status", "X-Status":
	case "X-Keywords":
		for _, k := range strings.Fields(v) {
			if k == "$Forwarded" {
				continue // the P flag
			}
			k, err := unescapeKeyword(k)
			if err != nil {
				return err
			}
			m.Keywords = append(m.Keywords, k)
		}
	default:
		return fmt.Errorf("%q is not a line the export adds", name)
	}
	return nil
}
