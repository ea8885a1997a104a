package migrate

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postfach/postfach/maildir"
)

// idKey is the first half of an identity: a message's Message-ID, or for
// a message without one its internal date (to the second). The prefixes
// keep a Message-ID apart from a date.
func idKey(messageID string, date time.Time) string {
	if messageID != "" {
		return "m:" + messageID
	}
	if date.IsZero() {
		return "d:0"
	}
	return "d:" + strconv.FormatInt(date.Unix(), 10)
}

// idHash is an idKey as it is kept and compared: the first 128 bits of
// SHA-256(salt || idKey), 16 bytes instead of a string per message.
//
// Two different keys with the same hash would make a missing message look
// present, so the hash must not collide in practice. By the birthday
// bound, n distinct keys collide with probability below n²/2¹²⁹: about
// 10⁻²⁷ for a million messages, far below a disk's undetected error rate.
// That bound holds for keys chosen by chance; Message-IDs are chosen by
// senders, so the salt is random per process: nobody can compute ahead a
// pair of Message-IDs that collide under it (finding one without the salt
// means guessing 128 unknown bits; with it, still about 2⁶⁴ SHA-256
// evaluations). Both sides of a match are hashed by the same process.
// A 64-bit hash would not do: 2⁶⁴ is within reach of a search, and at a
// million messages chance alone gives 1 in 10⁷.
type idHash [16]byte

// idSalt is drawn when first needed: not in every postfach command's
// start (crypto/rand's first read costs a system call).
var idSalt = sync.OnceValue(func() (s [16]byte) {
	rand.Read(s[:]) // never fails (crypto/rand panics rather)
	return s
})

func hashID(messageID string, date time.Time) idHash {
	h := sha256.New()
	salt := idSalt()
	h.Write(salt[:])
	h.Write([]byte(idKey(messageID, date)))
	var sum [sha256.Size]byte
	var out idHash
	copy(out[:], h.Sum(sum[:0]))
	return out
}

// kwHash sums up a message's keywords, only to tell whether two messages
// carry the same ones (for Differ, never for identity): a hash of the
// set of keywords, case folded, in sorted order; 0 for none. Two sets are
// the same keywords as same compared them when neither repeats a keyword
// (FlagsFromIMAP and the index keep them unique).
func kwHash(kw []string) uint64 {
	if len(kw) == 0 {
		return 0
	}
	folded := make([]string, 0, len(kw))
	for _, k := range kw {
		folded = append(folded, strings.ToLower(k))
	}
	slices.Sort(folded)
	folded = slices.Compact(folded)
	h := sha256.New()
	for _, k := range folded {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return binary.LittleEndian.Uint64(h.Sum(sum[:0])) | 1
}

// destRec is one destination message as FETCH reported it: its identity
// (idHash of its Message-ID header and INTERNALDATE, and RFC822.SIZE),
// and what Differ compares.
type destRec struct {
	id    idHash
	size  int64 // RFC822.SIZE
	date  int64 // INTERNALDATE, unix seconds
	kw    uint64
	flags maildir.Flags
	used  bool // matched by a source message
}

// destSet is a destination folder's messages by identity: a multiset that
// source messages consume as they are matched, so that two identical
// source messages need two destination copies. The records are sorted by
// identity, stably: those of one identity stay in the order FETCH gave.
type destSet struct {
	recs []destRec
}

func compareIdent(aID idHash, aSize int64, bID idHash, bSize int64) int {
	if c := bytes.Compare(aID[:], bID[:]); c != 0 {
		return c
	}
	return cmp.Compare(aSize, bSize)
}

func newDestSet(msgs []destRec) *destSet {
	slices.SortStableFunc(msgs, func(a, b destRec) int { return compareIdent(a.id, a.size, b.id, b.size) })
	return &destSet{recs: msgs}
}

// hasID reports whether any destination message has the idHash, whatever
// its size, matched or not.
func (d *destSet) hasID(id idHash) bool {
	i := sort.Search(len(d.recs), func(i int) bool { return bytes.Compare(d.recs[i].id[:], id[:]) >= 0 })
	return i < len(d.recs) && d.recs[i].id == id
}

// take consumes a destination message with identity (id, size), preferring
// the first left with the same flags and date as the source message
// (identical copies may differ in those), else the first left; nil if
// none is left.
func (d *destSet) take(id idHash, size int64, s *srcRec) *destRec {
	i := sort.Search(len(d.recs), func(i int) bool { return compareIdent(d.recs[i].id, d.recs[i].size, id, size) >= 0 })
	var first *destRec
	for ; i < len(d.recs) && d.recs[i].id == id && d.recs[i].size == size; i++ {
		m := &d.recs[i]
		if m.used {
			continue
		}
		if same(s, m) {
			first = m
			break
		}
		if first == nil {
			first = m
		}
	}
	if first != nil {
		first.used = true
	}
	return first
}

// same reports whether a destination message carries the source message's
// flags, keywords (case folded) and internal date.
func same(s *srcRec, m *destRec) bool {
	return s.flags == m.flags && s.unix() == m.date && s.kw == m.kw
}

// matchResult is what matching a folder's source messages against its
// destination found.
type matchResult struct {
	missing []int32 // source messages the destination lacks (indexes), in source order
	differ  int     // matched, but with other flags or internal date
	extra   int     // destination messages matching no source message
	dest    int     // destination messages
	bytes   int64   // their bytes
}

// match pairs each source message with a destination message of the same
// identity, its size included: a destination copy of another size is
// another message (a truncated upload is not the message). The size of a
// source message is its recorded RFC822.SIZE; when that finds nothing but
// the destination has the Message-ID with another size, the size of the
// file as we would send it (crlf, of src[i]) is tried too, but only when
// it is larger: the store turns an original's bare LF into CRLF, which
// only adds bytes. A file smaller than the recorded size is damaged
// (srcMsg.damage) and never stands for the message. dest is sorted.
func match(src []srcRec, dest []destRec, crlf func(i int) (int64, error)) matchResult {
	d := newDestSet(dest)
	var r matchResult
	for i := range src {
		s := &src[i]
		m := d.take(s.id, s.size, s)
		if m == nil && d.hasID(s.id) {
			if n, err := crlf(i); err == nil && n > s.size {
				m = d.take(s.id, n, s)
			}
		}
		switch {
		case m == nil:
			r.missing = append(r.missing, int32(i))
		case !same(s, m):
			r.differ++
		}
	}
	for _, m := range d.recs {
		if !m.used {
			r.extra++
		}
		r.bytes += m.size
	}
	r.dest = len(dest)
	return r
}
