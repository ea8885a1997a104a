package maildir

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	gomaildir "github.com/emersion/go-maildir"
)

// Flags is the set of standard Maildir flags a message carries.
type Flags uint8

// The flags, each named by its IMAP meaning; the Maildir letter follows.
const (
	FlagSeen     Flags = 1 << iota // S, \Seen
	FlagAnswered                   // R (replied), \Answered
	FlagFlagged                    // F, \Flagged
	FlagDeleted                    // T (trashed), \Deleted
	FlagDraft                      // D, \Draft
	FlagPassed                     // P (passed on), $Forwarded
)

// letters lists the flags in ASCII order of their Maildir letters.
var letters = [...]struct {
	letter byte
	flag   Flags
}{
	{byte(gomaildir.FlagDraft), FlagDraft},
	{byte(gomaildir.FlagFlagged), FlagFlagged},
	{byte(gomaildir.FlagPassed), FlagPassed},
	{byte(gomaildir.FlagReplied), FlagAnswered},
	{byte(gomaildir.FlagSeen), FlagSeen},
	{byte(gomaildir.FlagTrashed), FlagDeleted},
}

func flagOf(c byte) Flags {
	for _, l := range letters {
		if l.letter == c {
			return l.flag
		}
	}
	return 0
}

// Info returns the Maildir info part for f: "2," followed by its letters in
// ASCII order, for example "2,FS".
func (f Flags) Info() string {
	b := make([]byte, 2, 2+len(letters))
	b[0], b[1] = '2', ','
	for _, l := range letters {
		if f&l.flag != 0 {
			b = append(b, l.letter)
		}
	}
	return string(b)
}

// ParseInfo returns the flags in a Maildir info part such as "2,FS" (the "2,"
// may be left out). Unknown letters, Dovecot's lowercase keyword letters
// included, are ignored; an info part of another version ("1,...") has no
// flags.
func ParseInfo(info string) Flags {
	if strings.HasPrefix(info, "2,") {
		info = info[2:]
	} else if len(info) >= 2 && info[1] == ',' {
		return 0
	}
	var f Flags
	for i := 0; i < len(info); i++ {
		f |= flagOf(info[i])
	}
	return f
}

// imapFlags maps our flags to IMAP flags, in the order IMAP returns them.
var imapFlags = [...]struct {
	flag Flags
	imap imap.Flag
}{
	{FlagSeen, imap.FlagSeen},
	{FlagAnswered, imap.FlagAnswered},
	{FlagFlagged, imap.FlagFlagged},
	{FlagDeleted, imap.FlagDeleted},
	{FlagDraft, imap.FlagDraft},
	{FlagPassed, imap.FlagForwarded},
}

// FlagsFromIMAP splits IMAP flags into the Maildir flags and the keywords.
// Flags compare case-insensitively; $Forwarded is FlagPassed. Keywords come
// back in their given spelling, case preserved, without case-insensitive
// duplicates. System flags without a Maildir letter (\Recent, \*, unknown
// ones) are dropped.
func FlagsFromIMAP(flags []imap.Flag) (Flags, []string) {
	var f Flags
	var keywords []string
next:
	for _, fl := range flags {
		for _, m := range imapFlags {
			if strings.EqualFold(string(fl), string(m.imap)) {
				f |= m.flag
				continue next
			}
		}
		s := string(fl)
		if s == "" || s[0] == '\\' {
			continue
		}
		for _, k := range keywords {
			if strings.EqualFold(k, s) {
				continue next
			}
		}
		keywords = append(keywords, s)
	}
	return f, keywords
}

// IMAP returns f as IMAP flags: \Seen \Answered \Flagged \Deleted \Draft
// $Forwarded, in that order. The slice is never nil.
func (f Flags) IMAP() []imap.Flag {
	out := make([]imap.Flag, 0, len(imapFlags))
	for _, m := range imapFlags {
		if f&m.flag != 0 {
			out = append(out, m.imap)
		}
	}
	return out
}
