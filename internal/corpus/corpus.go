// Package corpus generates deterministic, realistic test mail.
//
// A corpus is a sequence of RFC 5322 messages with CRLF line endings, each
// with a target folder, IMAP flags and an internal date. The same seed always
// yields the same bytes: message i depends only on (seed, i, opts), so
// Generate(seed, 100, o) is a prefix of Generate(seed, 1000, o), and Each
// streams a corpus of any size in constant memory.
//
// The mix, by share of messages:
//
//	~30% text/plain, us-ascii, 7bit
//	~30% text/plain, utf-8, quoted-printable
//	~20% multipart/alternative (text/plain + text/html)
//	~10% RFC 2047 encoded non-ASCII Subject and From (German, Japanese), utf-8 body
//	~10% multipart/mixed with a small base64 attachment
//
// Independently of the kind, about 15% are replies (In-Reply-To, References,
// "Re:" subject), messages in a "Lists/..." folder carry a List-Id, and
// Options.BigAttachmentEvery adds a large base64 attachment to every K-th
// message. Flags: ~20% \Seen, ~5% \Flagged, ~3% \Answered, ~2% the keyword
// "$Label1". Messages average a few KB.
//
// Message IDs are unique per (seed, i); dates ascend with i (about 30 minutes
// apart, starting 2022-01-01), so UIDs and dates agree after an in-order
// APPEND.
//
// With Options.RealSizes set, the bodies get the size mix of real mail
// instead (sizes.go): text log-normal around 6 KB, 8% multipart/alternative,
// 3% with one or two attachments of 100 KB to 5 MB, about 79 KB per message.
//
// With Options.Natural set, the corpus is natural-language mail instead, for
// search benchmarks (natural.go): Zipf-distributed dictionary words from
// Debian's wamerican and wngerman in sentences and paragraphs, 300
// correspondents, threads, dates over several years, named attachments.
// The same properties hold (deterministic, prefixes, unique IDs, ascending
// dates).
package corpus

import (
	"math/rand/v2"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Message is one generated message and where it belongs.
type Message struct {
	Folder    string      // mailbox name, '/' as hierarchy separator, UTF-8
	Flags     []imap.Flag // system flags and keywords, e.g. \Seen, $Label1
	Date      time.Time   // internal date (UTC), shortly after the Date header
	MessageID string      // the Message-ID header value without angle brackets
	Raw       []byte      // the whole message, CRLF line endings
}

// DefaultFolders is used when Options.Folders is empty.
var DefaultFolders = []string{"INBOX", "Archive", "Lists/Go", "Entwürfe"}

// Options tune a corpus. The zero value is a reasonable default.
type Options struct {
	// Folders to spread the messages over, '/' separated. The first folder
	// gets about 40% of the messages, the rest share the remainder evenly.
	// Default DefaultFolders.
	Folders []string

	// BigAttachmentEvery adds a large attachment to every K-th message
	// (messages K-1, 2K-1, ... counting from 0). 0 disables it.
	BigAttachmentEvery int

	// BigAttachmentSize is the attachment's size in bytes before base64
	// encoding (the message grows by about 4/3 of it). Default 5 MiB.
	BigAttachmentSize int

	// RealSizes gives the corpus the size mix of real mail (sizes.go): text
	// bodies log-normal around 6 KB, 8% multipart/alternative, 3% with one
	// or two attachments of 100 KB to 5 MB, about 79 KB per message on
	// average. Headers, folders and flags are as without it. Ignored with
	// Natural.
	RealSizes bool

	// Natural, when set, makes the corpus natural-language mail built from
	// this vocabulary (see natural.go; LoadVocabulary reads it). Folders
	// then defaults to NaturalFolders; the BigAttachment options still
	// apply.
	Natural *Vocabulary
}

// DefaultBigAttachmentSize is used when Options.BigAttachmentSize is 0.
const DefaultBigAttachmentSize = 5 << 20

// epoch is the Date of message 0; message i is about i*30 minutes later.
var epoch = time.Date(2022, 1, 1, 8, 0, 0, 0, time.UTC)

// Generate returns messages 0..n-1 of the corpus for seed.
func Generate(seed int64, n int, opts Options) []Message {
	msgs := make([]Message, 0, max(n, 0))
	for i := range n {
		msgs = append(msgs, At(seed, i, opts))
	}
	return msgs
}

// Each calls fn with messages 0..n-1 in order without holding the corpus in
// memory. It stops at and returns the first error from fn.
func Each(seed int64, n int, opts Options, fn func(Message) error) error {
	for i := range n {
		if err := fn(At(seed, i, opts)); err != nil {
			return err
		}
	}
	return nil
}

// At returns message i of the corpus for seed, the same message Generate
// and Each produce at index i.
func At(seed int64, i int, opts Options) Message {
	g := &gen{
		seed: seed,
		i:    i,
		opts: opts,
		r:    newRand(seed, i),
	}
	if opts.Natural != nil {
		return g.natural()
	}
	return g.message()
}

// newRand is the random source of message i; its first draw picks the kind.
func newRand(seed int64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(i)))
}
