package imapsync

import "strings"

// FolderNames is the one mapping between server folder names and local
// folder names of an account; every name that crosses between the two
// goes through Local or Remote.
//
// A server name becomes a local name by dropping the personal namespace
// prefix (Prefix: "INBOX." on servers whose folders all live below INBOX),
// turning the server's hierarchy delimiter into '/' (a '/' inside a
// component becomes the look-alike U+2215), spelling INBOX "INBOX", and
// last applying the folder map. Remote is the inverse: a local name other
// than INBOX gets the prefix back, so a new local top-level folder is
// created where the server accepts it (below INBOX.).
//
//	prefix "INBOX.", delimiter '.'
//	INBOX               <-> INBOX
//	INBOX.Archive       <-> Archive
//	INBOX.Lists.golang  <-> Lists/golang
//	INBOX.INBOX.x       <-> INBOX/x
type FolderNames struct {
	Delim  rune              // the server's hierarchy delimiter; 0: flat
	Prefix string            // personal namespace prefix, ending in Delim; "" for none
	Map    map[string]string // folder_map: server name ('/'-separated, without Prefix) -> local name
}

// newFolderNames returns the mapping for a server with delimiter delim and
// the given personal namespace prefix; a prefix that does not end in the
// delimiter gets it ("INBOX" under '.' is "INBOX.").
func newFolderNames(delim rune, prefix string, fmap map[string]string) FolderNames {
	if prefix != "" && delim != 0 && !strings.HasSuffix(prefix, string(delim)) {
		prefix += string(delim)
	}
	return FolderNames{Delim: delim, Prefix: prefix, Map: fmap}
}

// Local is the local name of the server folder remote.
func (n FolderNames) Local(remote string) string {
	unmapped := n.unmapped(remote)
	if mapped, ok := n.Map[unmapped]; ok {
		return mapped
	}
	if mapped, ok := n.Map[remote]; ok {
		return mapped
	}
	return unmapped
}

// unmapped is Local without the folder map.
func (n FolderNames) unmapped(remote string) string {
	if strings.EqualFold(remote, "INBOX") {
		return "INBOX" // whatever the delimiter: it may be a letter of INBOX
	}
	name := remote
	if rest, ok := n.cutPrefix(remote); ok {
		name = rest
	}
	if n.Delim != 0 && n.Delim != '/' {
		// A '/' inside a component would read as a separator locally; it is
		// rare enough to map to a look-alike rather than to escape.
		name = strings.ReplaceAll(name, "/", "\u2215")
		name = strings.ReplaceAll(name, string(n.Delim), "/")
	}
	return inboxCase(name)
}

// cutPrefix removes the namespace prefix from a server name below it. The
// INBOX of an "INBOX." prefix matches in any case, as INBOX does.
func (n FolderNames) cutPrefix(remote string) (string, bool) {
	p := n.Prefix
	if p == "" || len(remote) <= len(p) || strings.EqualFold(remote, "INBOX") {
		return remote, false
	}
	head := remote[:len(p)]
	if head == p || strings.EqualFold(p[:min(5, len(p))], "INBOX") && strings.EqualFold(head, p) {
		return remote[len(p):], true
	}
	return remote, false
}

// Remote is the server name of the local folder local ('/'-separated):
// the inverse of Local. A folder map key is a server name without the
// prefix, '/'-separated, or the server's own spelling.
func (n FolderNames) Remote(local string) string {
	for r, l := range n.Map {
		if l != local {
			continue
		}
		if name := n.remote(r); n.Local(name) == local {
			return name
		}
		if n.Local(r) == local {
			return r
		}
	}
	return n.remote(local)
}

// remote is Remote without the folder map.
func (n FolderNames) remote(local string) string {
	if local == "INBOX" {
		return local
	}
	name := local
	if n.Delim != 0 && n.Delim != '/' {
		name = strings.ReplaceAll(local, "/", string(n.Delim))
		name = strings.ReplaceAll(name, "\u2215", "/")
	}
	return n.Prefix + name
}

// RoundTrips reports whether a local folder name survives the way up and
// back: created upstream as Remote(local), it must LIST as the same local
// name. It does not for a name holding the server's delimiter ("a.b" under
// '.'), for "inbox" (INBOX upstream), or for a name the folder map sends
// elsewhere: such a folder would share a server folder with another.
func (n FolderNames) RoundTrips(local string) bool {
	return n.Local(n.Remote(local)) == local
}

// NewFolderNames returns the mapping for a server with delimiter delim,
// personal namespace prefix prefix ("" for none; completed with the
// delimiter as newFolderNames does) and folder map fmap. sync/migrate
// uses it for the destination server.
func NewFolderNames(delim rune, prefix string, fmap map[string]string) FolderNames {
	return newFolderNames(delim, prefix, fmap)
}

// RemoteName is the server name of a local folder on a server with
// delimiter delim and no namespace prefix (see FolderNames.Remote).
func RemoteName(local string, delim rune, fmap map[string]string) string {
	return FolderNames{Delim: delim, Map: fmap}.Remote(local)
}

// inboxCase spells INBOX, which IMAP names in any case, and the folders
// below it as "INBOX" and "INBOX/...".
func inboxCase(name string) string {
	switch {
	case strings.EqualFold(name, "INBOX"):
		return "INBOX"
	case len(name) > 6 && strings.EqualFold(name[:6], "INBOX/"):
		return "INBOX" + name[5:]
	}
	return name
}
