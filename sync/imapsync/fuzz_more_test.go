package imapsync

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/maildir"
)

// Fuzz targets for the folder naming, the pattern matcher, the flag merge
// and the parsers of server bytes of the sync engine. Each checks
// properties against a reference written another way, not just the
// absence of a panic.

// fuzzDelim picks a hierarchy delimiter: none, '/', '.', or a printable
// ASCII character.
func fuzzDelim(d byte) rune {
	switch {
	case d == 0:
		return 0
	case d < 0x21 || d > 0x7e:
		return '.'
	}
	return rune(d)
}

// validRemote reports whether a server folder name can round-trip: it does
// not hold the look-alike U+2215 that a '/' inside a component becomes
// locally, and spells INBOX as "INBOX" if its first component is INBOX.
func validRemote(remote string, delim rune) bool {
	if strings.EqualFold(remote, "INBOX") {
		return remote == "INBOX" // one folder in any case, listed as INBOX
	}
	if delim != 0 && delim != '/' && strings.ContainsRune(remote, '\u2215') {
		return false
	}
	first := remote
	if delim != 0 {
		first, _, _ = strings.Cut(remote, string(delim))
	}
	if delim != '/' {
		// A '/' in a name makes "INBOX/x" locally, which inboxCase spells
		// with INBOX only when the '/' is a separator.
		if delim != 0 {
			first = strings.ReplaceAll(first, "/", "\u2215")
		}
		first, _, _ = strings.Cut(first, "/")
	}
	return !strings.EqualFold(first, "INBOX") || first == "INBOX"
}

// checkSafeLocal fails unless local, as a Maildir below root/acct, stays
// there: no "..", no absolute path, no NUL, and it maps back to itself.
func checkSafeLocal(t *testing.T, remote, local string) {
	p, err := maildir.FolderDir("/root", "acct", local)
	if err != nil {
		return // refused: the folder is reported, not created
	}
	rel, ok := strings.CutPrefix(p, "/root/acct/")
	if !ok || filepath.Clean(p) != p || strings.ContainsRune(p, 0) || filepath.IsAbs(rel) {
		t.Fatalf("server folder %q: local %q goes to %q", remote, local, p)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			t.Fatalf("server folder %q: local %q goes to %q", remote, local, p)
		}
	}
	if back, err := maildir.DecodeFolder(rel); err != nil || back != local {
		t.Fatalf("server folder %q: local %q is stored at %q, which reads back as %q, %v", remote, local, rel, back, err)
	}
}

// validUnder reports whether a server folder name round-trips under the
// personal namespace prefix: INBOX itself, or a valid name below the
// prefix (spelled as the prefix is) that is not INBOX again.
func validUnder(remote, prefix string, delim rune) bool {
	if prefix == "" {
		return validRemote(remote, delim)
	}
	if remote == "INBOX" {
		return true
	}
	rest, ok := strings.CutPrefix(remote, prefix)
	return ok && rest != "" && !strings.EqualFold(rest, "INBOX") && validRemote(rest, delim)
}

// FuzzFolderNames: remote -> local -> remote is the identity for every
// valid server name, with and without a folder_map entry, with and
// without an "INBOX." namespace prefix, and no server name gives a local
// folder outside the account's directory.
func FuzzFolderNames(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox.Sent", "a.b/c", "INBOX.x", "..", "a..b", ".", "/", "a/../../etc", "\x00", "x\u2215y",
		"Lists.golang", "~/x", "C:\\x", "%2E%2E", "cur", "a.new.b", "INBOX/inbox", "INBOX.INBOX.x", "INBOX.inbox", "INBOX...", "INBOX./x"} {
		f.Add(s, byte('.'), "", "", false)
		f.Add(s, byte('.'), "", "", true)
		f.Add(s, byte('/'), "Archive", "Old", false)
		f.Add(s, byte('.'), "Archive", "Old", true)
	}
	f.Add("Sent Items", byte(0), "Sent Items", "Sent", false)
	f.Fuzz(func(t *testing.T, remote string, d byte, mapFrom, mapTo string, withPrefix bool) {
		delim := fuzzDelim(d)
		prefix := ""
		if withPrefix && delim != 0 {
			prefix = "INBOX" + string(delim)
		}
		plain := newFolderNames(delim, prefix, nil)
		local := plain.Local(remote)
		checkSafeLocal(t, remote, local)
		if validUnder(remote, prefix, delim) {
			if back := plain.Remote(local); back != remote {
				t.Fatalf("delimiter %q, prefix %q: %q -> %q -> %q", delim, prefix, remote, local, back)
			}
			if !plain.RoundTrips(local) {
				t.Fatalf("delimiter %q, prefix %q: %q -> %q does not round-trip", delim, prefix, remote, local)
			}
		}
		// With one folder_map entry (keys are '/'-separated server names).
		if mapFrom == "" || mapTo == "" {
			return
		}
		fmap := map[string]string{mapFrom: mapTo}
		names := newFolderNames(delim, prefix, fmap)
		mlocal := names.Local(remote)
		checkSafeLocal(t, remote, mlocal)
		mapped := plain.unmapped(remote) == mapFrom || remote == mapFrom
		switch {
		case mapped && mlocal != mapTo:
			t.Fatalf("%q with map %v is %q locally", remote, fmap, mlocal)
		case !mapped && mlocal != local:
			t.Fatalf("%q with map %v is %q locally, without it %q", remote, fmap, mlocal, local)
		}
		// Both ways when the mapping is unambiguous: the key is the
		// server name in local form, the server folder is valid, and the
		// target is not the name of another server folder.
		if plain.unmapped(remote) == mapFrom && validUnder(remote, prefix, delim) {
			if back := names.Remote(mlocal); back != remote {
				t.Fatalf("map %v, delimiter %q, prefix %q: %q -> %q -> %q", fmap, delim, prefix, remote, mlocal, back)
			}
		}
		if !mapped && mlocal != mapTo && validUnder(remote, prefix, delim) {
			if back := names.Remote(mlocal); back != remote {
				t.Fatalf("map %v, delimiter %q, prefix %q: %q -> %q -> %q", fmap, delim, prefix, remote, mlocal, back)
			}
		}
	})
}

// matchRef is Match by regular expressions: '*' is .*, '%' is [^/]*.
func matchRef(patterns []string, name string) bool {
	re := func(p string) *regexp.Regexp {
		var sb strings.Builder
		sb.WriteString(`(?s)^`)
		for _, r := range p {
			switch r {
			case '*':
				sb.WriteString(`.*`)
			case '%':
				sb.WriteString(`[^/]*`)
			default:
				sb.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		sb.WriteString(`$`)
		return regexp.MustCompile(sb.String())
	}
	included, haveInclude := false, false
	for _, p := range patterns {
		if ex, ok := strings.CutPrefix(p, "!"); ok {
			if re(ex).MatchString(name) {
				return false
			}
			continue
		}
		haveInclude = true
		included = included || re(p).MatchString(name)
	}
	return included || !haveInclude
}

// FuzzMatch: the folder-pattern matcher (Match, as configs' folders
// patterns are applied) agrees with a regular-expression reference.
// Written against Match as it is now; the matcher is being rewritten for
// speed, and this target is its check.
func FuzzMatch(f *testing.F) {
	f.Add("*", "INBOX")
	f.Add("INBOX\n!Trash", "Trash")
	f.Add("Lists/%\n!Lists/spam", "Lists/golang/x")
	f.Add("*/%/*\n%", "a/b/c")
	f.Add("!*", "x")
	f.Add("a*b*c", "aXbYbZc")
	f.Add("%%%", "ab/c")
	f.Add("Ärger/*", "Ärger/x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pats, name string) {
		if !utf8.ValidString(pats) || !utf8.ValidString(name) {
			return // regexp works on UTF-8; Match on bytes agrees there
		}
		patterns := strings.Split(pats, "\n")
		if got, want := Match(patterns, name), matchRef(patterns, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", patterns, name, got, want)
		}
	})
}

// FuzzMergeFlags: the three-way merge of flags is, bit by bit, the side
// that changed, else what both agree on: majority(local, remote, ^base).
// So it is symmetric in local and remote, keeps an agreement, and merging
// its result again changes nothing.
func FuzzMergeFlags(f *testing.F) {
	f.Add(uint8(0), uint8(1), uint8(2))
	f.Add(uint8(0x3f), uint8(0), uint8(0x15))
	f.Fuzz(func(t *testing.T, b, l, r uint8) {
		base, local, remote := maildir.Flags(b), maildir.Flags(l), maildir.Flags(r)
		m := mergeFlags(base, local, remote)
		want := (local & remote) | (local &^ base) | (remote &^ base)
		switch {
		case m != want:
			t.Fatalf("mergeFlags(%b, %b, %b) = %b, want %b", base, local, remote, m, want)
		case m != mergeFlags(base, remote, local):
			t.Fatalf("mergeFlags(%b, %b, %b) is not symmetric", base, local, remote)
		case mergeFlags(base, local, local) != local, mergeFlags(base, base, remote) != remote, mergeFlags(base, local, base) != local:
			t.Fatalf("mergeFlags(%b, %b, %b): a one-sided change or an agreement is lost", base, local, remote)
		case mergeFlags(base, m, remote) != m, mergeFlags(base, local, m) != m, mergeFlags(m, m, m) != m:
			t.Fatalf("mergeFlags(%b, %b, %b) = %b is not stable", base, local, remote, m)
		}
	})
}

// FuzzMergeKeywords: the same rule as mergeFlags, keyword by keyword
// (case-sensitive), with a sorted list without duplicates out.
func FuzzMergeKeywords(f *testing.F) {
	f.Add("$Label1 a", "a b", "$label1 a")
	f.Add("", "x x", "")
	f.Add("a b c", "", "c d")
	f.Fuzz(func(t *testing.T, bs, ls, rs string) {
		base, local, remote := strings.Fields(bs), strings.Fields(ls), strings.Fields(rs)
		m := mergeKeywords(base, local, remote)
		if !slices.IsSorted(m) || len(slices.Compact(slices.Clone(m))) != len(m) {
			t.Fatalf("mergeKeywords(%q, %q, %q) = %q: not sorted and unique", base, local, remote, m)
		}
		for _, k := range slices.Concat(base, local, remote) {
			b, l, r := slices.Contains(base, k), slices.Contains(local, k), slices.Contains(remote, k)
			want := (l && r) || (l && !b) || (r && !b)
			if slices.Contains(m, k) != want {
				t.Fatalf("mergeKeywords(%q, %q, %q) = %q: %q wrong", base, local, remote, m, k)
			}
		}
		for _, k := range m {
			if !slices.Contains(local, k) && !slices.Contains(remote, k) {
				t.Fatalf("mergeKeywords(%q, %q, %q) = %q: %q from nowhere", base, local, remote, m, k)
			}
		}
		set := func(l []string) []string { s := slices.Clone(l); slices.Sort(s); return slices.Compact(s) }
		switch {
		case !slices.Equal(m, mergeKeywords(base, remote, local)):
			t.Fatalf("mergeKeywords(%q, %q, %q) is not symmetric", base, local, remote)
		case !slices.Equal(mergeKeywords(base, local, local), set(local)),
			!slices.Equal(mergeKeywords(base, base, remote), set(remote)),
			!slices.Equal(mergeKeywords(base, local, base), set(local)):
			t.Fatalf("mergeKeywords(%q, %q, %q): a one-sided change or an agreement is lost", base, local, remote)
		case !sameKeywords(mergeKeywords(base, m, remote), m), !sameKeywords(mergeKeywords(m, m, m), m):
			t.Fatalf("mergeKeywords(%q, %q, %q) = %q is not stable", base, local, remote, m)
		}
	})
}

// imapFlags reads a list of flags as a server sends them: atoms (go-imap's
// ATOM-CHAR), system flags with a leading '\'.
func imapFlags(s string) []imap.Flag {
	var out []imap.Flag
	for _, w := range strings.Fields(s) {
		atom := strings.TrimPrefix(w, "\\")
		ok := atom != ""
		for i := 0; i < len(atom); i++ {
			c := atom[i]
			ok = ok && c > 0x20 && c != 0x7f && !strings.ContainsRune(`(){%*"\]`, rune(c))
		}
		if ok {
			out = append(out, imap.Flag(w))
		}
	}
	return out
}

// FuzzFlagDiff: the STORE that flagDiff plans (parseDiff of its key),
// applied to the server's flags, gives the merged flags, whatever
// keywords the server uses.
func FuzzFlagDiff(f *testing.F) {
	f.Add(`\Seen $Label1`, `\Flagged $Label1 a|b`)
	f.Add(`$Forwarded x`, `\Answered |`)
	f.Add(``, `\Deleted \Draft`)
	f.Fuzz(func(t *testing.T, from, to string) {
		fromFl, fromKw := maildir.FlagsFromIMAP(imapFlags(from))
		toFl, toKw := maildir.FlagsFromIMAP(imapFlags(to))
		key := flagDiff(fromFl, fromKw, toFl, toKw)
		add, del := parseDiff(key)
		have := slices.Concat(fromFl.IMAP(), kwFlags(fromKw))
		have = slices.DeleteFunc(have, func(f imap.Flag) bool { return slices.Contains(del, f) })
		have = append(have, add...)
		gotFl, gotKw := maildir.FlagsFromIMAP(have)
		if gotFl != toFl || !sameKeywords(gotKw, toKw) {
			t.Fatalf("flagDiff(%q %q -> %q %q) = %q: STORE +%q -%q gives %q %q",
				fromFl.Info(), fromKw, toFl.Info(), toKw, key, add, del, gotFl.Info(), gotKw)
		}
		if (len(add)+len(del) == 0) != (fromFl == toFl && sameKeywords(fromKw, toKw)) {
			t.Fatalf("flagDiff(%q %q -> %q %q) = %q", fromFl.Info(), fromKw, toFl.Info(), toKw, key)
		}
	})
}

func kwFlags(kw []string) []imap.Flag {
	out := make([]imap.Flag, len(kw))
	for i, k := range kw {
		out[i] = imap.Flag(k)
	}
	return out
}

// FuzzWithoutUID: the name without its U= field keeps the key, the flags
// and every other field, and has no UID.
func FuzzWithoutUID(f *testing.F) {
	for _, s := range []string{"123.x.host,U=5:2,S", "123.x.host,S=10,U=7,W=11:2,RS", "k", "k,U=1", "k:2,", "k,U=1,U=2:1,x", ",U=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		out := withoutUID(name)
		e, ok := maildir.ParseName(name)
		if !ok {
			return
		}
		e2, ok := maildir.ParseName(out)
		if !ok || e2.Key != e.Key || e2.Flags != e.Flags || e2.UID != 0 {
			t.Fatalf("withoutUID(%q) = %q parses as %+v, %v", name, out, e2, ok)
		}
		base, info, _ := strings.Cut(name, ":")
		outBase, outInfo, _ := strings.Cut(out, ":")
		if info != outInfo {
			t.Fatalf("withoutUID(%q) = %q", name, out)
		}
		var kept []string
		for _, fl := range strings.Split(base, ",")[1:] {
			if !strings.HasPrefix(fl, "U=") {
				kept = append(kept, fl)
			}
		}
		if got := strings.Split(outBase, ",")[1:]; !slices.Equal(got, kept) && !(len(got) == 0 && len(kept) == 0) {
			t.Fatalf("withoutUID(%q) = %q: fields %q, want %q", name, out, got, kept)
		}
	})
}

// FuzzSplitCollisions: of the server folders of a LIST (their names from
// fuzzed text, a map entry among them), those that would share a local
// folder, INBOX in any case and, on a case-insensitive file system, names
// differing in case, are all set apart in groups; the others, each alone in
// its local folder, are synced; no folder is lost or doubled.
func FuzzSplitCollisions(f *testing.F) {
	f.Add("INBOX\ninbox\nSent\nsent\na.b\na\u2215b", byte('.'), "Sent", "Archive", false)
	f.Add("x\nX\ny", byte('/'), "y", "x", true)
	f.Fuzz(func(t *testing.T, list string, d byte, mapFrom, mapTo string, foldCase bool) {
		delim := fuzzDelim(d)
		fmap := map[string]string{}
		if mapFrom != "" && mapTo != "" {
			fmap[mapFrom] = mapTo
		}
		names := newFolderNames(delim, "", fmap)
		var remote []remoteFolder
		seen := map[string]bool{}
		for _, name := range strings.Split(list, "\n") {
			if name == "" || seen[name] {
				continue // a server lists each folder once
			}
			seen[name] = true
			remote = append(remote, remoteFolder{Remote: name, Local: names.Local(name), Delim: delim})
		}
		key := func(local string) string {
			if strings.EqualFold(local, "INBOX") || len(local) > 6 && strings.EqualFold(local[:6], "INBOX/") {
				local = "INBOX" + local[5:]
			}
			if foldCase {
				local = strings.ToLower(local)
			}
			return local
		}
		ok, groups := splitCollisions(remote, foldCase)
		count := map[string]int{}
		for _, rf := range remote {
			count[key(rf.Local)]++
		}
		var back []remoteFolder
		for _, rf := range ok {
			if count[key(rf.Local)] != 1 {
				t.Fatalf("%q (local %q) is synced, but shares its local folder", rf.Remote, rf.Local)
			}
			back = append(back, rf)
		}
		for _, g := range groups {
			if len(g) < 2 {
				t.Fatalf("a group of %d: %+v", len(g), g)
			}
			for _, rf := range g {
				if key(rf.Local) != key(g[0].Local) || count[key(rf.Local)] != len(g) {
					t.Fatalf("group %+v is not one local folder's", g)
				}
			}
			back = append(back, g...)
			if err := collisionError(g, names); err == nil || !strings.Contains(err.Error(), strconv.Quote(groupLocal(g, names))) {
				t.Fatalf("collisionError(%+v) = %v", g, err)
			}
		}
		if len(back) != len(remote) {
			t.Fatalf("%d server folders in, %d out", len(remote), len(back))
		}
		for _, rf := range remote {
			if !slices.ContainsFunc(back, func(x remoteFolder) bool { return x.Remote == rf.Remote }) {
				t.Fatalf("%q lost", rf.Remote)
			}
		}
	})
}
