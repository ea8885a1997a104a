package main

// Verification: after every timed sync, outside the timed phase, the bench
// reads the server account and the tool's Maildir and compares both with
// what they must hold. A run that does not verify fails the bench.
//
// A side (the server account, or one tool's Maildir) is read into a mirror:
// IMAP folder name -> Message-ID -> the SHA-256 and size of the message's
// bytes, its flags and its keywords. Bodies are streamed and hashed message
// by message (verify_read.go): the bench holds about a hundred bytes per
// message, never the messages.
//
// What each tool promises, and so what is compared:
//
//   - Every tool, and the server: per folder, every message by Message-ID,
//     exactly once, with its content and the flags D F P R S T (\Draft,
//     \Flagged, $Forwarded, \Answered, \Seen, \Deleted; mbsync maps P and
//     $Forwarded since isync 1.4, postfach does too).
//   - Content: Dovecot serves a message with CRLF line ends; postfach,
//     mbsync and fetchmail (with an MDA it strips the CRs; the bench's
//     fetchmailrc also turns off its Received header and address rewriting)
//     all store it with LF line ends, the way Dovecot itself keeps it. So the
//     server's bytes are hashed with every CRLF turned into LF, a file's
//     bytes as they are on disk: any other byte that differs is a
//     difference. The one exception is mbsync's own header line "X-TUID:
//     <12 characters>", which it adds to every message it copies (into its
//     Maildir, and onto the server when it uploads) and keeps: the bench
//     leaves out one such line on mbsync's side (tuidAdder).
//   - Keywords: on the server, always. postfach keeps them in its index,
//     not in file names; the bench reads them there (keywordKeeper) and
//     requires an index row for every file. mbsync does not sync keywords
//     at all (it leaves the server's alone and writes none into its
//     Maildir), so its Maildir's keywords are not compared; its server
//     account's are.
//   - POP3 carries neither flags nor keywords: in the pop3 scenario every
//     local message must have none, whatever the server has.
//
// The Maildir's folders are mapped to IMAP names by each tool's own layout
// (replica.Folder), never guessed from counts: a directory the tool does not
// make for a server folder is a difference, and so is a file left in tmp/.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// digest is the SHA-256 of a message's bytes with LF line ends.
type digest [sha256.Size]byte

// String is the start of the hex digest, enough to tell two apart.
func (d digest) String() string { return hex.EncodeToString(d[:6]) }

// mirror is what one side holds: IMAP folder name -> Message-ID (without
// angle brackets) -> message.
type mirror map[string]map[string]mirrorMsg

// mirrorMsg is one message as a side holds it. UID and Path say where it
// is; they are not compared.
type mirrorMsg struct {
	Sum      digest
	Size     int64    // bytes with LF line ends
	Flags    string   // the Maildir letters among D F P R S T, in that order
	Keywords string   // sorted, space-separated; "" for none
	UID      imap.UID // on the server
	Path     string   // in a Maildir
}

func (m mirrorMsg) where() string {
	if m.Path != "" {
		return " (" + m.Path + ")"
	}
	if m.UID != 0 {
		return fmt.Sprintf(" (UID %d)", m.UID)
	}
	return ""
}

func (m mirror) clone() mirror {
	out := make(mirror, len(m))
	for f, msgs := range m {
		out[f] = maps.Clone(msgs)
	}
	return out
}

// withoutFlags is m with every message's flags and keywords removed: what a
// POP3 client stores.
func (m mirror) withoutFlags() mirror {
	out := m.clone()
	for _, msgs := range out {
		for id, msg := range msgs {
			msg.Flags, msg.Keywords = "", ""
			msgs[id] = msg
		}
	}
	return out
}

// withoutKeywords is m with every message's keywords removed: what a
// tool that does not sync keywords copies (mbsync).
func (m mirror) withoutKeywords() mirror {
	out := m.clone()
	for _, msgs := range out {
		for id, msg := range msgs {
			msg.Keywords = ""
			msgs[id] = msg
		}
	}
	return out
}

// inventory counts the messages and the seen ones per folder.
func (m mirror) inventory() inventory {
	inv := inventory{}
	for f, msgs := range m {
		var fc folderCount
		for _, msg := range msgs {
			fc.Messages++
			if strings.Contains(msg.Flags, "S") {
				fc.Seen++
			}
		}
		inv[f] = fc
	}
	return inv
}

// expectMessage is a corpus message as a side must hold it: its bytes with
// LF line ends, and with flags its flags and keywords (else none).
func expectMessage(m corpus.Message, flags bool) mirrorMsg {
	h := sha256.New()
	lf := &lfWriter{w: h}
	lf.Write(m.Raw)
	lf.flush()
	mm := mirrorMsg{Size: lf.n}
	h.Sum(mm.Sum[:0])
	if flags {
		mm.Flags, mm.Keywords = splitFlags(m.Flags)
	}
	return mm
}

// corpusMirror is messages 0..n-1 of the corpus as the server holds them
// after seeding, generated one at a time.
func corpusMirror(seed int64, n int, opts corpus.Options) mirror {
	m := mirror{}
	for _, f := range opts.Folders {
		m[folderName(f)] = map[string]mirrorMsg{}
	}
	corpus.Each(seed, n, opts, func(c corpus.Message) error {
		f := folderName(c.Folder)
		if m[f] == nil {
			m[f] = map[string]mirrorMsg{}
		}
		m[f][c.MessageID] = expectMessage(c, true)
		return nil
	})
	return m
}

// flagLetters are the Maildir letters of the IMAP flags, in the order of the
// letters (Maildir info lists them sorted).
var flagLetters = []struct {
	letter byte
	flag   imap.Flag
}{
	{'D', imap.FlagDraft}, {'F', imap.FlagFlagged}, {'P', imap.FlagForwarded},
	{'R', imap.FlagAnswered}, {'S', imap.FlagSeen}, {'T', imap.FlagDeleted},
}

// splitFlags returns the Maildir letters of the IMAP flags (system flags
// and $Forwarded), and the other keywords, sorted, space-separated, without
// case-insensitive duplicates. Other system flags (\Recent) are dropped.
func splitFlags(flags []imap.Flag) (letters, keywords string) {
	var b []byte
	for _, fl := range flagLetters {
		for _, f := range flags {
			if strings.EqualFold(string(f), string(fl.flag)) {
				b = append(b, fl.letter)
				break
			}
		}
	}
	var kw []string
next:
	for _, f := range flags {
		s := string(f)
		if s == "" || s[0] == '\\' || strings.EqualFold(s, string(imap.FlagForwarded)) {
			continue
		}
		for _, k := range kw {
			if strings.EqualFold(k, s) {
				continue next
			}
		}
		kw = append(kw, s)
	}
	slices.Sort(kw)
	return string(b), strings.Join(kw, " ")
}

// nameLetters returns the letters among D F P R S T in a Maildir file name's
// info (after ":2,"), in that order; a name without info has none.
func nameLetters(name string) string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return ""
	}
	info := name[i+3:]
	var b []byte
	for _, fl := range flagLetters {
		if strings.IndexByte(info, fl.letter) >= 0 {
			b = append(b, fl.letter)
		}
	}
	return string(b)
}

// diffs collects the differences a verification finds: all are counted,
// the first few kept for the message.
type diffs struct {
	n     int
	first []string
}

const diffsShown = 6

func (d *diffs) add(format string, args ...any) {
	d.n++
	if len(d.first) < diffsShown {
		d.first = append(d.first, fmt.Sprintf(format, args...))
	}
}

// err is nil without differences, else one error naming them.
func (d *diffs) err() error {
	if d.n == 0 {
		return nil
	}
	s := strings.Join(d.first, "; ")
	if d.n > len(d.first) {
		s += fmt.Sprintf("; and %d more", d.n-len(d.first))
	}
	if d.n == 1 {
		return fmt.Errorf("1 difference: %s", s)
	}
	return fmt.Errorf("%d differences: %s", d.n, s)
}

// diffMirror adds to d every difference of got from want: a folder missing
// or too many; per folder a message missing, too many, or with other
// content, flags or (with keywords) keywords. Folders and messages come in
// sorted order.
func diffMirror(d *diffs, want, got mirror, keywords bool) {
	for _, f := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[f]
		if !ok {
			d.add("folder %s missing (want %d messages)", f, len(want[f]))
			continue
		}
		diffFolder(d, f, want[f], g, keywords)
	}
	for _, f := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[f]; !ok {
			d.add("folder %s should not be there (%d messages)", f, len(got[f]))
		}
	}
}

func diffFolder(d *diffs, f string, want, got map[string]mirrorMsg, keywords bool) {
	for _, id := range slices.Sorted(maps.Keys(want)) {
		w := want[id]
		g, ok := got[id]
		if !ok {
			d.add("%s: <%s> missing", f, id)
			continue
		}
		var what []string
		if g.Sum != w.Sum || g.Size != w.Size {
			what = append(what, fmt.Sprintf("content differs: %d bytes (sha256 %s), want %d bytes (sha256 %s)", g.Size, g.Sum, w.Size, w.Sum))
		}
		if g.Flags != w.Flags {
			what = append(what, fmt.Sprintf("flags %q, want %q", g.Flags, w.Flags))
		}
		if keywords && g.Keywords != w.Keywords {
			what = append(what, fmt.Sprintf("keywords %q, want %q", g.Keywords, w.Keywords))
		}
		if len(what) > 0 {
			d.add("%s: <%s> %s%s", f, id, strings.Join(what, ", "), g.where())
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			d.add("%s: <%s> should not be there%s", f, id, got[id].where())
		}
	}
}
