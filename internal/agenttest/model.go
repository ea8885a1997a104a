package agenttest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/postfach/postfach/maildir"
)

// Side is who may change a message: the upstream client or the local
// program. Each message belongs to one side, so that no two changes to one
// message race and the expected end state is known.
type Side int

const (
	Upstream Side = iota
	Local
)

func (s Side) String() string {
	if s == Local {
		return "local"
	}
	return "upstream"
}

// Msg is one message as the model expects it. Its fields are read and
// written under the Model's lock; use Model.Get for a copy.
type Msg struct {
	ID     string // Message-ID without angle brackets; unique
	Body   []byte // the whole message, LF line ends
	Folder string // expected folder ('/'-separated IMAP name)
	Flags  maildir.Flags
	Gone   bool // deleted
	Owner  Side
	Moved  string // the folder it was last moved from; "" if never
	// History is what the harness did to it, with times, for reports.
	History []string
}

// Model is the expected content of an account: every message ever made by
// the harness, where it must be, with which flags, or that it must be gone.
// It is safe for concurrent use.
type Model struct {
	Folders []string // the folders the harness uses; the first is INBOX

	mu     sync.Mutex
	prefix string
	seq    int
	msgs   map[string]*Msg
	order  []string
	rnd    *rand.Rand
	rndMu  sync.Mutex
}

// NewModel returns an empty model for the folders (INBOX first) whose
// Message-IDs start with prefix (one prefix per test: messages of another
// model are differences).
func NewModel(prefix string, seed uint64, folders ...string) *Model {
	if len(folders) == 0 {
		folders = []string{"INBOX"}
	}
	return &Model{
		Folders: folders,
		prefix:  prefix,
		msgs:    map[string]*Msg{},
		rnd:     rand.New(rand.NewPCG(seed, seed^0x5eed)),
	}
}

// newMsg makes a message for folder with a unique Message-ID, a few lines
// of text (between 0.3 and 6 KB) and records it, owned by owner.
func (m *Model) newMsg(folder string, owner Side) *Msg {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	id := fmt.Sprintf("%s-%d@agenttest.invalid", m.prefix, m.seq)
	var b bytes.Buffer
	fmt.Fprintf(&b, "Message-ID: <%s>\nFrom: Agent Test <from@agenttest.invalid>\nTo: me@agenttest.invalid\n", id)
	fmt.Fprintf(&b, "Subject: %s message %d (%s)\nDate: %s\n", m.prefix, m.seq, owner, time.Now().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n")
	m.rndMu.Lock()
	lines := 4 + m.rnd.IntN(80)
	for i := range lines {
		fmt.Fprintf(&b, "line %d of %s: %x\n", i, id, m.rnd.Uint64())
	}
	m.rndMu.Unlock()
	msg := &Msg{ID: id, Body: b.Bytes(), Folder: folder, Owner: owner,
		History: []string{time.Now().Format("15:04:05.000") + " made for " + folder + " by " + owner.String()}}
	m.msgs[id] = msg
	m.order = append(m.order, id)
	return msg
}

// update changes a message under the lock and notes what was done in its
// history; an unknown one is left alone.
func (m *Model) update(id, note string, fn func(*Msg)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg, ok := m.msgs[id]; ok {
		fn(msg)
		msg.History = append(msg.History, time.Now().Format("15:04:05.000")+" "+note)
	}
}

// MarkGone records that a client the harness drives without a wrapper
// here (a POP3 client's DELE, say) deleted the message; note says how,
// for its history.
func (m *Model) MarkGone(id, note string) {
	m.update(id, note, func(msg *Msg) { msg.Gone = true })
}

// Get returns a copy of the message with the ID, and whether the model
// knows it.
func (m *Model) Get(id string) (Msg, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	msg, ok := m.msgs[id]
	if !ok {
		return Msg{}, false
	}
	return *msg, true
}

// Pick returns a copy of a random message of owner that is not gone and
// passes keep (nil: any), and false when there is none.
func (m *Model) Pick(owner Side, keep func(Msg) bool) (Msg, bool) {
	m.mu.Lock()
	var cands []*Msg
	for _, id := range m.order {
		msg := m.msgs[id]
		if msg.Owner == owner && !msg.Gone && (keep == nil || keep(*msg)) {
			cands = append(cands, msg)
		}
	}
	m.mu.Unlock()
	if len(cands) == 0 {
		return Msg{}, false
	}
	i := m.IntN(len(cands))
	m.mu.Lock()
	defer m.mu.Unlock()
	return *cands[i], true
}

// IntN is a random number in [0, n) from the model's seeded source.
func (m *Model) IntN(n int) int {
	m.rndMu.Lock()
	defer m.rndMu.Unlock()
	return m.rnd.IntN(n)
}

// OtherFolder is a folder of the model other than f.
func (m *Model) OtherFolder(f string) string {
	for {
		g := m.Folders[m.IntN(len(m.Folders))]
		if g != f || len(m.Folders) == 1 {
			return g
		}
	}
}

// RandomFlags is a random set of the flags S, F and R other than old.
func (m *Model) RandomFlags(old maildir.Flags) maildir.Flags {
	all := []maildir.Flags{maildir.FlagSeen, maildir.FlagFlagged, maildir.FlagAnswered}
	for {
		var f maildir.Flags
		for _, x := range all {
			if m.IntN(2) == 1 {
				f |= x
			}
		}
		if f != old {
			return f
		}
	}
}

// Messages returns copies of all messages, in creation order.
func (m *Model) Messages() []Msg {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Msg, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, *m.msgs[id])
	}
	return out
}

// Len is the number of messages that are not gone.
func (m *Model) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, msg := range m.msgs {
		if !msg.Gone {
			n++
		}
	}
	return n
}

// Seen is one message as a side holds it.
type Seen struct {
	Folder string
	Flags  maildir.Flags
	Body   []byte // LF line ends; nil when not read
	Where  string // file or UID, for messages
}

// Diff compares what a side holds (Message-ID -> every copy) with the
// model: every message that is not gone exactly once, in its folder, with
// its flags and (where Body is set) its bytes; no gone message; nothing the
// model does not know. It returns the differences, sorted, side naming the
// side in each.
func (m *Model) Diff(side string, got map[string][]Seen) []string {
	diffs := m.DiffOf(side, got, m.Messages())
	for id, copies := range got {
		if _, ok := m.Get(id); !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %s: unknown message: %s", side, id, wheres(copies)))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// DiffOf is Diff for the messages msgs only (copies from the model).
func (m *Model) DiffOf(side string, got map[string][]Seen, msgs []Msg) []string {
	var diffs []string
	var want Msg
	add := func(format string, args ...any) {
		diffs = append(diffs, side+": "+fmt.Sprintf(format, args...)+"; history: "+strings.Join(want.History, "; "))
	}
	for _, want = range msgs {
		copies := got[want.ID]
		switch {
		case want.Gone && len(copies) > 0:
			add("%s: deleted (%s), but %d copies remain: %s", want.ID, want.Owner, len(copies), wheres(copies))
		case want.Gone:
		case len(copies) == 0:
			add("%s: lost (want it in %q, owner %s)", want.ID, want.Folder, want.Owner)
		case len(copies) > 1:
			add("%s: %d copies, want 1: %s", want.ID, len(copies), wheres(copies))
		default:
			c := copies[0]
			if c.Folder != want.Folder {
				add("%s: in %q, want %q (%s)", want.ID, c.Folder, want.Folder, c.Where)
			}
			if c.Flags != want.Flags {
				add("%s: flags %q, want %q (%s)", want.ID, c.Flags.Info(), want.Flags.Info(), c.Where)
			}
			if c.Body != nil && !bytes.Equal(c.Body, want.Body) {
				add("%s: content differs (%d bytes, want %d) (%s)", want.ID, len(c.Body), len(want.Body), c.Where)
			}
		}
	}
	return diffs
}

func wheres(cs []Seen) string {
	var s []string
	for _, c := range cs {
		s = append(s, fmt.Sprintf("%s %s", c.Folder, c.Where))
	}
	return strings.Join(s, ", ")
}

// MessageID returns the Message-ID (without brackets) of a message's
// header, "" if it has none.
func MessageID(raw []byte) string {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return ""
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Message-ID") {
			v = bytes.TrimSpace(v)
			v = bytes.TrimPrefix(v, []byte("<"))
			v = bytes.TrimSuffix(v, []byte(">"))
			return string(v)
		}
	}
	return ""
}

// Prepare records a new message for folder, owned by owner, that the
// caller stores itself (testenv's MaildirWriter straight into the server's
// Maildir, say: much faster than APPEND for thousands).
func (m *Model) Prepare(folder string, owner Side) Msg {
	return *m.newMsg(folder, owner)
}

// CRLF is the message with CRLF line ends, as IMAP carries it.
func (msg Msg) CRLF() []byte { return bytes.ReplaceAll(msg.Body, []byte("\n"), []byte("\r\n")) }
