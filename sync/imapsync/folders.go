package imapsync

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// remoteFolder is one selectable folder as LISTed upstream.
type remoteFolder struct {
	Remote     string // name on the server (UTF-8, server delimiter)
	Local      string // local name: '/'-separated, INBOX normalized, folder_map applied
	Delim      rune   // the server's hierarchy delimiter (0: flat)
	SpecialUse string
	Status     *imap.StatusData // nil when the server has no LIST-STATUS
}

// listFolders LISTs the account and returns the selectable folders that the
// patterns select, with their status when the server can return it.
func listFolders(c *imapclient.Client, patterns []string, fmap map[string]string) ([]remoteFolder, error) {
	opts := &imap.ListOptions{}
	caps := c.Caps()
	if caps.Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	if caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2) {
		st := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}
		if caps.Has(imap.CapCondStore) {
			st.HighestModSeq = true
		}
		opts.ReturnStatus = st
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, err
	}
	var out []remoteFolder
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		local := localName(l.Mailbox, l.Delim)
		if mapped, ok := fmap[local]; ok {
			local = mapped
		}
		if !Match(patterns, local) {
			continue
		}
		f := remoteFolder{Remote: l.Mailbox, Local: local, Delim: l.Delim, Status: l.Status}
		for _, a := range l.Attrs {
			switch a {
			case imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrTrash,
				imap.MailboxAttrJunk, imap.MailboxAttrArchive, imap.MailboxAttrAll, imap.MailboxAttrFlagged:
				f.SpecialUse = string(a)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// localName converts a server folder name into the local '/'-separated form.
// INBOX is case-insensitive in IMAP and always becomes "INBOX".
func localName(remote string, delim rune) string {
	name := remote
	if delim != 0 && delim != '/' {
		// A '/' inside a component would read as a separator locally; it is
		// rare enough to map to a look-alike rather than to escape.
		name = strings.ReplaceAll(name, "/", "\u2215")
		name = strings.ReplaceAll(name, string(delim), "/")
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

// RemoteName is the inverse of the local naming (and of the folder map):
// the server name, with the server's delimiter, of a local folder name
// ('/'-separated).
func RemoteName(local string, delim rune, fmap map[string]string) string {
	for r, l := range fmap {
		if l == local {
			local = r
			break
		}
	}
	if delim == 0 || delim == '/' {
		return local
	}
	name := strings.ReplaceAll(local, "/", string(delim))
	return strings.ReplaceAll(name, "\u2215", "/")
}

// Match reports whether a folder (local, '/'-separated name) is selected by
// the patterns. A pattern starting with '!' excludes; the others include.
// '*' matches any run of characters, '%' any run without '/'. A folder is
// selected when it matches some include pattern and no exclude pattern. No
// include pattern at all means "*".
func Match(patterns []string, name string) bool {
	included, haveInclude := false, false
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			if wildMatch(p[1:], name) {
				return false
			}
			continue
		}
		haveInclude = true
		if wildMatch(p, name) {
			included = true
		}
	}
	return included || !haveInclude
}

func wildMatch(pattern, name string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*', '%':
			wild := pattern[0]
			pattern = pattern[1:]
			for i := 0; i <= len(name); i++ {
				if wild == '%' && i > 0 && name[i-1] == '/' {
					return false
				}
				if wildMatch(pattern, name[i:]) {
					return true
				}
			}
			return false
		default:
			if len(name) == 0 || pattern[0] != name[0] {
				return false
			}
			pattern, name = pattern[1:], name[1:]
		}
	}
	return len(name) == 0
}
