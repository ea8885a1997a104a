// PLACEHOLDER: replaced by Part B at merge

package index

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/maildir"
)

// SearchLocal returns, ascending, the local UIDs of the messages in
// folder that match c. c.SeqNum must be empty (the caller has turned
// sequence numbers into UID sets); c.UID sets are local UIDs.
//
// PLACEHOLDER (Part A): simple and uncached, over the rows in memory;
// header keys other than From, To, Cc, Subject and Message-ID, and
// TEXT/BODY beyond the indexed fields, match nothing.
func (tx *ReadTx) SearchLocal(folder FolderID, c *imap.SearchCriteria) ([]uint32, error) {
	msgs, err := tx.Messages(folder)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, m := range msgs {
		if placeholderMatch(m, c) {
			out = append(out, m.LocalUID)
		}
	}
	sortUIDs(out)
	return out, nil
}

func sortUIDs(u []uint32) {
	for i := 1; i < len(u); i++ {
		for j := i; j > 0 && u[j] < u[j-1]; j-- {
			u[j], u[j-1] = u[j-1], u[j]
		}
	}
}

func placeholderMatch(m *Message, c *imap.SearchCriteria) bool {
	for _, set := range c.UID {
		if !set.Contains(imap.UID(m.LocalUID)) {
			return false
		}
	}
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	if !c.Since.IsZero() && day(m.InternalDate).Before(day(c.Since)) {
		return false
	}
	if !c.Before.IsZero() && !day(m.InternalDate).Before(day(c.Before)) {
		return false
	}
	if !c.SentSince.IsZero() && day(m.Header.Date).Before(day(c.SentSince)) {
		return false
	}
	if !c.SentBefore.IsZero() && !day(m.Header.Date).Before(day(c.SentBefore)) {
		return false
	}
	size := m.RFC822Size
	if size == 0 {
		size = m.Size
	}
	if c.Larger > 0 && size <= c.Larger {
		return false
	}
	if c.Smaller > 0 && size >= c.Smaller {
		return false
	}
	flags, kw := maildir.FlagsFromIMAP(c.Flag)
	if m.Flags&flags != flags || !hasKeywords(m.Keywords, kw, true) {
		return false
	}
	nflags, nkw := maildir.FlagsFromIMAP(c.NotFlag)
	if m.Flags&nflags != 0 || !hasKeywords(m.Keywords, nkw, false) {
		return false
	}
	for _, h := range c.Header {
		if !contains(headerValue(m, h.Key), h.Value) {
			return false
		}
	}
	all := m.Header.Subject + "\n" + m.Header.From + "\n" + m.Header.To + "\n" + m.Header.Cc
	for _, t := range append(append([]string(nil), c.Text...), c.Body...) {
		if !contains(all, t) {
			return false
		}
	}
	for i := range c.Not {
		if placeholderMatch(m, &c.Not[i]) {
			return false
		}
	}
	for _, or := range c.Or {
		if !placeholderMatch(m, &or[0]) && !placeholderMatch(m, &or[1]) {
			return false
		}
	}
	return true
}

func hasKeywords(have, want []string, all bool) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if strings.EqualFold(h, w) {
				found = true
			}
		}
		if found != all {
			return false
		}
	}
	return true
}

func headerValue(m *Message, key string) string {
	switch strings.ToLower(key) {
	case "from":
		return m.Header.From
	case "to":
		return m.Header.To
	case "cc":
		return m.Header.Cc
	case "subject":
		return m.Header.Subject
	case "message-id":
		return "<" + m.Header.MessageID + ">"
	}
	return ""
}

func contains(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
