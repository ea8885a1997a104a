package configs

import (
	"cmp"
	"slices"
	"strings"
)

// folderMap decodes folder_map ("server name" = "local name", both
// '/'-separated, the server's INBOX spelled "INBOX") and checks that no
// two server folders can land in one local folder (one Maildir): each run
// would then upload each one's messages into the other. Two server names
// mapped to one local name is an error; what can collide depending on
// the server's folders or the file system is a warning (the sync engine
// refuses an actual collision at run time):
//
//   - a local name that is INBOX (every server has an INBOX);
//   - a local name that the folders patterns name literally (the config
//     expects a server folder of that name), unless that server folder is
//     mapped elsewhere too;
//   - local names differing only in case from each other, from INBOX or
//     from a literal pattern (one folder on a case-insensitive file system);
//   - a local name holding "∕" (U+2215), the look-alike postfach writes for
//     a "/" inside a server folder name on a server whose hierarchy
//     separator is not "/";
//   - a server name spelling INBOX in another case, which never matches
//     (postfach names the server's INBOX "INBOX", whatever its spelling).
//
// patterns are the account's folders patterns.
func folderMap(t *table, patterns []string) map[string]string {
	m := t.stringMap("folder_map")
	remotes := make([]string, 0, len(m))
	for r := range m {
		remotes = append(remotes, r)
	}
	path := func(remote string) string { return joinKey(t.key("folder_map"), remote) }
	// In the order of the file: of two keys that clash, the later one is
	// reported.
	slices.SortFunc(remotes, func(a, b string) int {
		return cmp.Or(cmp.Compare(t.d.idx.line(path(a)), t.d.idx.line(path(b))), strings.Compare(a, b))
	})
	target := map[string]string{} // local -> remote
	var ok []string               // remote names with a valid, unique target
	for _, r := range remotes {
		l := m[r]
		switch {
		case r == "":
			t.d.errorf(path(r), "remote folder name must not be empty")
		case l == "":
			t.d.errorf(path(r), "must not be empty")
		case target[l] != "":
			t.d.errorf(path(r), "maps to %q like %q (line %d): two server folders in one local folder",
				l, target[l], t.d.idx.line(path(target[l])))
		default:
			target[l] = r
			ok = append(ok, r)
		}
	}
	// The local names that server folders outside the map may take.
	var literal []string
	for _, p := range patterns {
		if p != "" && !strings.HasPrefix(p, "!") && !strings.ContainsAny(p, "*%") {
			literal = append(literal, p)
		}
	}
	mapped := func(name string) bool { _, ok := m[name]; return ok }
	for _, r := range remotes {
		if r != "INBOX" && (strings.EqualFold(r, "INBOX") || len(r) > 6 && strings.EqualFold(r[:6], "INBOX/") && r[:6] != "INBOX/") {
			t.d.warnf(path(r), `never matches: postfach names the server's INBOX "INBOX" whatever its spelling; write %q`,
				"INBOX"+r[5:])
		}
	}
	for _, r := range ok {
		l := m[r]
		switch {
		case l == "INBOX" && !mapped("INBOX"):
			t.d.warnf(path(r), `maps to "INBOX", where the server's own INBOX lands too (every server has one): `+
				`postfach would sync neither; pick another local name`)
		case slices.Contains(literal, l) && !mapped(l):
			t.d.warnf(path(r), "maps to %q, which the folders list names: should the server have a folder %q too, "+
				"both land in one local folder and postfach syncs neither; map %q to another local name as well",
				l, l, l)
		}
		for _, other := range append([]string{"INBOX"}, literal...) {
			if other != l && strings.EqualFold(other, l) {
				t.d.warnf(path(r), "maps to %q, which differs from %q only in case: "+
					"one folder on a case-insensitive file system (macOS, Windows)", l, other)
			}
		}
		for _, r2 := range ok {
			if r2 == r {
				break // each pair once, at the later key
			}
			if l2 := m[r2]; l2 != l && strings.EqualFold(l2, l) {
				t.d.warnf(path(r), "maps to %q, which differs from %q (line %d) only in case: "+
					"one folder on a case-insensitive file system (macOS, Windows)", l, l2, t.d.idx.line(path(r2)))
			}
		}
		if strings.ContainsRune(l, '\u2215') {
			t.d.warnf(path(r), "maps to %q, which holds \"\u2215\" (U+2215): postfach writes it locally for a \"/\" "+
				"inside a server folder name, so such a server folder would land there too; use another character", l)
		}
	}
	return m
}
