package mirrortest

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/maildir"
)

// MessageState is what a copy of a message between servers must keep: its
// content, flags, keywords and internal date.
type MessageState struct {
	Sum   [32]byte // SHA-256 of the whole message as the server sends it
	Flags string   // Maildir letters ("2,FS"), then the sorted lower-case keywords
	Date  int64    // INTERNALDATE, unix seconds
}

func (m MessageState) String() string {
	return fmt.Sprintf("%x %s %s", m.Sum[:4], m.Flags, time.Unix(m.Date, 0).UTC().Format(time.RFC3339))
}

// Mailboxes fetches every selectable folder of the account: folder name
// (as the server spells it) -> its messages' states, sorted, so that two
// accounts compare with slices.Equal per folder.
func Mailboxes(c *imapclient.Client) (map[string][]MessageState, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, err
	}
	out := map[string][]MessageState{}
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("select %s: %w", l.Mailbox, err)
		}
		msgs := []MessageState{}
		if sel.NumMessages > 0 {
			body := &imap.FetchItemBodySection{Peek: true}
			bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
				Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body},
			}).Collect()
			if err != nil {
				return nil, fmt.Errorf("fetch %s: %w", l.Mailbox, err)
			}
			for _, b := range bufs {
				f, kw := maildir.FlagsFromIMAP(b.Flags)
				for i := range kw {
					kw[i] = strings.ToLower(kw[i])
				}
				sort.Strings(kw)
				msgs = append(msgs, MessageState{
					Sum:   sha256.Sum256(b.FindBodySection(body)),
					Flags: strings.Join(append([]string{f.Info()}, kw...), " "),
					Date:  b.InternalDate.Unix(),
				})
			}
		}
		slices.SortFunc(msgs, func(a, b MessageState) int { return strings.Compare(a.String(), b.String()) })
		out[l.Mailbox] = msgs
	}
	return out, nil
}

// DiffMailboxes lists how dest differs from a copy of src in which the
// folders named in rename got another name: every source message exactly
// once in its folder with the same flags and date, and no other message.
func DiffMailboxes(src, dest map[string][]MessageState, rename map[string]string) []string {
	var diffs []string
	want := map[string][]MessageState{}
	for f, msgs := range src {
		if r, ok := rename[f]; ok {
			f = r
		}
		want[f] = append(want[f], msgs...)
	}
	for f, msgs := range want {
		slices.SortFunc(msgs, func(a, b MessageState) int { return strings.Compare(a.String(), b.String()) })
		got, ok := dest[f]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("folder %q: not on the destination", f))
			continue
		}
		if slices.Equal(got, msgs) {
			continue
		}
		d := fmt.Sprintf("folder %q: destination has %d messages, source %d", f, len(got), len(msgs))
		for i := range max(len(got), len(msgs)) {
			var g, w MessageState
			if i < len(got) {
				g = got[i]
			}
			if i < len(msgs) {
				w = msgs[i]
			}
			if g != w {
				d += fmt.Sprintf("; first difference: destination %v, source %v", g, w)
				break
			}
		}
		diffs = append(diffs, d)
	}
	for f, msgs := range dest {
		if _, ok := want[f]; !ok && len(msgs) > 0 {
			diffs = append(diffs, fmt.Sprintf("folder %q: on the destination only, with %d messages", f, len(msgs)))
		}
	}
	sort.Strings(diffs)
	return diffs
}
