package migrate

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postfach/postfach/maildir"
)

// ident is a message's content identity: its Message-ID and its size with
// CRLF line ends (RFC822.SIZE), or, for a message without Message-ID, its
// internal date (to the second) and size.
type ident struct {
	id   string // idKey
	size int64
}

// idKey is the first half of an identity. The prefixes keep a Message-ID
// apart from a date.
func idKey(messageID string, date time.Time) string {
	if messageID != "" {
		return "m:" + messageID
	}
	if date.IsZero() {
		return "d:0"
	}
	return "d:" + strconv.FormatInt(date.Unix(), 10)
}

// destMsg is one destination message as FETCH reported it.
type destMsg struct {
	uid   uint32
	id    string // idKey of its Message-ID header and INTERNALDATE
	size  int64  // RFC822.SIZE
	date  int64  // INTERNALDATE, unix seconds
	flags maildir.Flags
	kw    []string
	used  bool // matched by a source message
}

// destSet is a destination folder's messages by identity: a multiset that
// source messages consume as they are matched, so that two identical
// source messages need two destination copies.
type destSet struct {
	byIdent map[ident][]*destMsg
	ids     map[string]bool // every idKey present, whatever the size
	all     []*destMsg
}

func newDestSet(msgs []*destMsg) *destSet {
	d := &destSet{byIdent: map[ident][]*destMsg{}, ids: map[string]bool{}, all: msgs}
	for _, m := range msgs {
		k := ident{m.id, m.size}
		d.byIdent[k] = append(d.byIdent[k], m)
		d.ids[m.id] = true
	}
	return d
}

// take consumes a destination message with identity k, preferring one with
// the same flags and date as the source message (identical copies may
// differ in those); nil if none is left.
func (d *destSet) take(k ident, s *srcMsg) *destMsg {
	list := d.byIdent[k]
	if len(list) == 0 {
		return nil
	}
	i := slices.IndexFunc(list, func(m *destMsg) bool { return same(s, m) })
	if i < 0 {
		i = 0
	}
	m := list[i]
	d.byIdent[k] = slices.Delete(list, i, i+1)
	m.used = true
	return m
}

// same reports whether a destination message carries the source message's
// flags, keywords and internal date.
func same(s *srcMsg, m *destMsg) bool {
	if s.flags != m.flags || s.date.Unix() != m.date || len(s.kw) != len(m.kw) {
		return false
	}
	for _, k := range s.kw {
		if !slices.ContainsFunc(m.kw, func(x string) bool { return strings.EqualFold(x, k) }) {
			return false
		}
	}
	return true
}

// unused returns the destination messages no source message matched.
func (d *destSet) unused() (n int, bytes int64) {
	for _, m := range d.all {
		if !m.used {
			n++
			bytes += m.size
		}
	}
	return n, bytes
}

// matchResult is what matching a folder's source messages against its
// destination found.
type matchResult struct {
	missing []*srcMsg // source messages the destination lacks, in source order
	differ  int       // matched, but with other flags or internal date
	extra   int       // destination messages matching no source message
	dest    int       // destination messages
	bytes   int64     // their bytes
}

// match pairs each source message with a destination message of the same
// identity, its size included: a destination copy of another size is
// another message (a truncated upload is not the message). The size of a
// source message is its recorded RFC822.SIZE; when that finds nothing but
// the destination has the Message-ID with another size, the size of the
// file as we would send it (crlf) is tried too, but only when it is larger:
// the store turns an original's bare LF into CRLF, which only adds bytes.
// A file smaller than the recorded size is damaged (srcMsg.damage) and
// never stands for the message.
func match(src []*srcMsg, dest []*destMsg, crlf func(*srcMsg) (int64, error)) matchResult {
	d := newDestSet(dest)
	var r matchResult
	for _, s := range src {
		m := d.take(ident{s.id, s.size}, s)
		if m == nil && d.ids[s.id] {
			if n, err := crlf(s); err == nil && n > s.size {
				m = d.take(ident{s.id, n}, s)
			}
		}
		switch {
		case m == nil:
			r.missing = append(r.missing, s)
		case !same(s, m):
			r.differ++
		}
	}
	r.extra, _ = d.unused()
	r.dest = len(dest)
	for _, m := range dest {
		r.bytes += m.size
	}
	return r
}
