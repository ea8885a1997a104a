package imapsync

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// remoteFolder is one selectable folder as LISTed upstream.
type remoteFolder struct {
	Remote     string // name on the server (UTF-8, server delimiter)
	Local      string // local name: '/'-separated, INBOX normalized, folder_map applied
	Delim      rune   // the server's hierarchy delimiter (0: flat)
	SpecialUse string
	Status     *imap.StatusData // nil when the server has no LIST-STATUS, or it was not asked
}

// listFolders LISTs the account: every selectable server folder, with its
// status when withStatus and the server can return it in the same
// command, and the server's hierarchy delimiter (0: flat, or no folder
// told it). Local names are given by selectFolders.
func listFolders(c *imapclient.Client, withStatus bool) (all []remoteFolder, delim rune, err error) {
	opts := &imap.ListOptions{}
	caps := c.Caps()
	if caps.Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	if withStatus && (caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2)) {
		opts.ReturnStatus = statusOptions(c)
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, 0, err
	}
	for _, l := range list {
		if delim == 0 {
			delim = l.Delim
		}
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		f := remoteFolder{Remote: l.Mailbox, Delim: l.Delim, Status: l.Status}
		for _, a := range l.Attrs {
			switch a {
			case imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrTrash,
				imap.MailboxAttrJunk, imap.MailboxAttrArchive, imap.MailboxAttrAll, imap.MailboxAttrFlagged:
				f.SpecialUse = string(a)
			}
		}
		all = append(all, f)
	}
	return all, delim, nil
}

// selectFolders gives every listed folder its local name and returns
// those the patterns select. all keeps every one, whatever the patterns
// say: a folder missing from the selection is not necessarily gone (see
// folderops.go).
func selectFolders(all []remoteFolder, patterns []string, names FolderNames) (selected []remoteFolder) {
	for i := range all {
		all[i].Local = names.Local(all[i].Remote)
		if Match(patterns, all[i].Local) {
			selected = append(selected, all[i])
		}
	}
	return selected
}

// statusOptions is what a sync asks of each folder's status.
func statusOptions(c *imapclient.Client) *imap.StatusOptions {
	st := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}
	if c.Caps().Has(imap.CapCondStore) {
		st.HighestModSeq = true
	}
	return st
}

// collisionKey is the name two local folders must not share: INBOX in any
// case is one folder to IMAP (and to the local name rules), and on a
// case-insensitive filesystem (foldCase) "Sent" and "sent" are one Maildir.
func collisionKey(local string, foldCase bool) string {
	local = inboxCase(local)
	if foldCase {
		local = strings.ToLower(local)
	}
	return local
}

// splitCollisions takes out of remote the server folders that would land
// in one local folder (a folder_map target that exists on the server too;
// "a/b" under a '.' delimiter, whose '/' becomes the look-alike U+2215,
// beside a real "a\u2215b"; INBOX against "inbox"). It returns the others,
// and the colliding ones grouped, in server order.
func splitCollisions(remote []remoteFolder, foldCase bool) (ok []remoteFolder, groups [][]remoteFolder) {
	byKey := map[string][]remoteFolder{}
	var order []string
	for _, rf := range remote {
		k := collisionKey(rf.Local, foldCase)
		if _, seen := byKey[k]; !seen {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], rf)
	}
	for _, k := range order {
		if g := byKey[k]; len(g) > 1 {
			groups = append(groups, g)
		}
	}
	for _, rf := range remote {
		if len(byKey[collisionKey(rf.Local, foldCase)]) == 1 {
			ok = append(ok, rf)
		}
	}
	return ok, groups
}

// collisionError is the one line that says which server folders collide.
func collisionError(g []remoteFolder, fn FolderNames) error {
	names := make([]string, len(g))
	for i, rf := range g {
		names[i] = strconv.Quote(rf.Remote)
	}
	list := strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	return fmt.Errorf("server folders %s would all be synced into local folder %q: none of them is synced; "+
		"give them distinct local names with folder_map", list, groupLocal(g, fn))
}

// groupLocal is the local folder colliding server folders contend for:
// the local name of the one that folder_map does not rename, if any.
func groupLocal(g []remoteFolder, names FolderNames) string {
	for _, rf := range g {
		if rf.Local == names.unmapped(rf.Remote) {
			return rf.Local
		}
	}
	return g[0].Local
}

// caseInsensitiveFS reports whether names that differ only in case are one
// file on the filesystem of path (macOS and Windows by default): it looks
// up path, or the nearest parent that exists and whose name has a letter,
// under its name with the case of every letter swapped.
func caseInsensitiveFS(path string) bool {
	for dir := filepath.Clean(path); ; dir = filepath.Dir(dir) {
		base := filepath.Base(dir)
		swapped := strings.Map(func(r rune) rune {
			if unicode.IsUpper(r) {
				return unicode.ToLower(r)
			}
			return unicode.ToUpper(r)
		}, base)
		if a, err := os.Stat(dir); err == nil && swapped != base {
			b, err := os.Stat(filepath.Join(filepath.Dir(dir), swapped))
			return err == nil && os.SameFile(a, b)
		}
		if filepath.Dir(dir) == dir {
			return false
		}
	}
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
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

// wildMatch reports whether name matches pattern ('*' any run, '%' any
// run without '/', every other byte itself). It runs in O(len(pattern) *
// len(name)) time and O(len(name)) memory, whatever the wildcards: ok[j]
// holds whether the pattern read so far matches name[:j], and each pattern
// byte turns it into the same for one more byte. (Trying each split of the
// name at each wildcard, as it did before, is exponential in the number of
// wildcards: seconds for one pattern against a long name.)
func wildMatch(pattern, name string) bool {
	if !strings.ContainsAny(pattern, "*%") {
		return pattern == name
	}
	ok := make([]bool, len(name)+1)
	ok[0] = true
	for i := 0; i < len(pattern); i++ {
		alive := false
		switch c := pattern[i]; c {
		case '*':
			// A run of stars is one star; ok[j] = some ok[k], k <= j.
			for i+1 < len(pattern) && pattern[i+1] == '*' {
				i++
			}
			for j := 1; j <= len(name); j++ {
				ok[j] = ok[j] || ok[j-1]
			}
			alive = ok[len(name)]
		case '%':
			// ok[j] = ok[j] or (ok[j-1] and name[j-1] is not '/').
			for j := 1; j <= len(name); j++ {
				ok[j] = ok[j] || ok[j-1] && name[j-1] != '/'
				alive = alive || ok[j]
			}
			alive = alive || ok[0]
		default:
			// ok[j] = ok[j-1] and name[j-1] is c; right to left in place.
			for j := len(name); j >= 1; j-- {
				ok[j] = ok[j-1] && name[j-1] == c
				alive = alive || ok[j]
			}
			ok[0] = false
		}
		if !alive {
			return false
		}
	}
	return ok[len(name)]
}
