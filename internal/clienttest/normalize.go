package clienttest

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What the normaliser treats as legitimately different between two
// conforming servers, and so leaves out of the comparison:
//
//   - the text of every status response (only status and response code
//     count); untagged OK/NO without a response code altogether ("* OK
//     Still here" during IDLE);
//   - CAPABILITY responses and [CAPABILITY] codes; the contents of an ID
//     response (only that it is NIL or a well-formed list of pairs);
//   - UIDVALIDITY values (in [UIDVALIDITY], STATUS, COPYUID, APPENDUID);
//   - \Recent: RECENT responses, STATUS RECENT, the \Recent flag and the
//     results of a SEARCH with NEW, OLD or RECENT (RFC 9051 removed
//     them all; see recentSearch);
//   - [CLIENTBUG] (RFC 5530: advice to the client, which a server may
//     give or not: Dovecot gives it for STATUS of the selected mailbox);
//   - CONDSTORE data (MODSEQ, HIGHESTMODSEQ, NOMODSEQ), which is not asked
//     of the endpoint, and the [CLOSED] code (Dovecot sends it on every
//     reselect, RFC 3501 servers need not);
//   - the zone of an INTERNALDATE (compared as the same instant in UTC);
//   - quoting: a string whose content is a valid atom equals that atom,
//     also among the field names of a FETCH item's HEADER.FIELDS section;
//   - how a server tells the same changes to the selected mailbox (see
//     events.go): EXPUNGEs in any order ("* 2 EXPUNGE", "* 1 EXPUNGE" or
//     "* 1 EXPUNGE" twice for the first two messages) and intermediate
//     EXISTS counts ("* 6 EXISTS", "* 7 EXISTS" or "* 7 EXISTS" alone),
//     and the order of the FETCH responses of different messages between
//     them;
//   - mailbox attributes a server may give or not (see listAttrs):
//     \HasChildren and \HasNoChildren in an extended LIST without RETURN
//     (CHILDREN) (RFC 5258 4: a server may give them unasked), \Noselect
//     beside \NonExistent (which implies it, RFC 5258 3), and in LSUB
//     those, \Subscribed and \NonExistent (RFC 3501 7.2.3 gives LSUB
//     no others);
//   - order inside flag lists, LIST attributes, STATUS items and FETCH
//     items (except that UID must come first: "UID-NOT-FIRST" is added
//     when it does not), order of SEARCH numbers, and the form of sequence
//     sets (1:3 equals 1,2,3);
//   - order between untagged responses that do not describe messages by
//     sequence number (FLAGS, OK [code], LIST, STATUS, ...): they are
//     sorted before the others, which keep their order (EXISTS, EXPUNGE,
//     FETCH, SEARCH, ESEARCH).
//
// Response lines that cannot be parsed are kept verbatim (so they differ).

// ignoredCodes are response codes dropped with the response text.
var ignoredCodes = map[string]bool{"CAPABILITY": true, "HIGHESTMODSEQ": true, "NOMODSEQ": true, "CLOSED": true, "CLIENTBUG": true}

// normalized is one normalised response: its text and whether it belongs to
// the ordered (message) part of a command's responses.
type normalized struct {
	text    string
	ordered bool
}

// normalize returns the canonical form of one response (literals inline,
// no final CRLF), or ok=false when it is left out of the comparison.
func normalize(raw []byte) (n normalized, ok bool) {
	line := string(raw)
	if strings.HasPrefix(line, "+") {
		return normalized{text: "+", ordered: true}, true
	}
	tag, rest, _ := strings.Cut(line, " ")
	word, args, _ := strings.Cut(rest, " ")
	uword := strings.ToUpper(word)
	switch uword {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return normalizeStatus(tag, uword, args)
	}
	if tag != "*" {
		return normalized{text: line, ordered: true}, true
	}
	if _, err := strconv.ParseUint(word, 10, 32); err == nil {
		kind, data, _ := strings.Cut(args, " ")
		switch strings.ToUpper(kind) {
		case "RECENT":
			return normalized{}, false
		case "EXISTS", "EXPUNGE":
			return normalized{text: "* " + word + " " + strings.ToUpper(kind), ordered: true}, true
		case "FETCH":
			return normalized{text: "* " + word + " FETCH " + normalizeFetch(data), ordered: true}, true
		}
		return normalized{text: line, ordered: true}, true
	}
	toks, err := tokenizeAll([]byte(args))
	if err != nil {
		return normalized{text: line, ordered: true}, true
	}
	switch uword {
	case "CAPABILITY":
		return normalized{}, false
	case "FLAGS":
		if len(toks) == 1 && toks[0].kind == tokList {
			return normalized{text: "* FLAGS " + renderFlags(toks[0])}, true
		}
	case "LIST", "LSUB":
		if len(toks) >= 3 && toks[0].kind == tokList {
			return normalized{text: "* " + uword + " " + renderFlags(toks[0]) + " " + renderAll(toks[1:])}, true
		}
	case "STATUS":
		if len(toks) == 2 && toks[1].kind == tokList {
			return normalized{text: "* STATUS " + toks[0].render() + " " + renderPairs(toks[1].list, nil)}, true
		}
	case "SEARCH":
		return normalized{text: "* SEARCH " + renderNumbers(toks), ordered: true}, true
	case "ESEARCH":
		return normalized{text: "* ESEARCH " + renderESearch(toks), ordered: true}, true
	case "ID":
		if len(toks) == 1 && validID(toks[0]) {
			return normalized{text: "* ID <valid>"}, true
		}
	}
	return normalized{text: "* " + uword + " " + renderAll(toks)}, true
}

// normalizeStatus keeps tag, status and the normalised response code.
func normalizeStatus(tag, status, args string) (normalized, bool) {
	code := ""
	if strings.HasPrefix(args, "[") {
		depth, end := 0, -1
		for i := 0; i < len(args) && end < 0; i++ {
			switch args[i] {
			case '[', '(':
				depth++
			case ')':
				depth--
			case ']':
				depth--
				if depth == 0 {
					end = i
				}
			}
		}
		if end > 0 {
			code = normalizeCode(args[1:end])
		}
	}
	if tag == "*" && code == "" && status != "BYE" && status != "PREAUTH" {
		return normalized{}, false
	}
	s := tag + " " + status
	if code != "" {
		s += " [" + code + "]"
	}
	return normalized{text: s, ordered: tag != "*"}, true
}

// normalizeCode returns the canonical form of a response code's contents,
// or "" for a code that is ignored.
func normalizeCode(c string) string {
	name, args, _ := strings.Cut(c, " ")
	name = strings.ToUpper(name)
	if ignoredCodes[name] {
		return ""
	}
	toks, err := tokenizeAll([]byte(args))
	if err != nil {
		return c
	}
	switch name {
	case "UIDVALIDITY":
		return name + " <uidvalidity>"
	case "PERMANENTFLAGS":
		if len(toks) == 1 && toks[0].kind == tokList {
			return name + " " + renderFlags(toks[0])
		}
	case "COPYUID":
		if len(toks) == 3 {
			return name + " <uidvalidity> " + canonicalSet(toks[1].s) + " " + canonicalSet(toks[2].s)
		}
	case "APPENDUID":
		if len(toks) == 2 {
			return name + " <uidvalidity> " + canonicalSet(toks[1].s)
		}
	}
	if len(toks) == 0 {
		return name
	}
	return name + " " + renderAll(toks)
}

// renderFlags renders a flag or attribute list sorted, without \Recent.
func renderFlags(t token) string {
	var fs []string
	for _, it := range t.list {
		if strings.EqualFold(it.s, `\Recent`) {
			continue
		}
		fs = append(fs, it.render())
	}
	sort.Strings(fs)
	return "(" + strings.Join(fs, " ") + ")"
}

// renderPairs renders a list of name-value pairs sorted by name, dropping
// the names in skip; UIDVALIDITY values are masked, MODSEQs and RECENT
// dropped.
func renderPairs(items []token, skip map[string]bool) string {
	var ps []string
	for i := 0; i+1 < len(items); i += 2 {
		k := strings.ToUpper(items[i].render())
		if skip[k] || k == "HIGHESTMODSEQ" || k == "RECENT" {
			continue
		}
		v := items[i+1].render()
		if k == "UIDVALIDITY" {
			v = "<uidvalidity>"
		}
		ps = append(ps, k+" "+v)
	}
	if len(items)%2 == 1 {
		ps = append(ps, "<odd:"+items[len(items)-1].render()+">")
	}
	sort.Strings(ps)
	return "(" + strings.Join(ps, " ") + ")"
}

// normalizeFetch renders the item list of a FETCH response: UID first
// when present (else marks it), the other items sorted by name, FLAGS
// sorted, MODSEQ dropped.
func normalizeFetch(data string) string {
	toks, err := tokenizeAll([]byte(data))
	if err != nil || len(toks) != 1 || toks[0].kind != tokList {
		return "<unparsable " + strconvQuote(data) + ">"
	}
	items := toks[0].list
	type pair struct{ k, v string }
	var ps []pair
	uid, uidFirst := "", false
	for i := 0; i+1 < len(items); i += 2 {
		k := unquoteSection(strings.ToUpper(items[i].s))
		switch k {
		case "MODSEQ":
			continue
		case "UID":
			uid, uidFirst = items[i+1].render(), i == 0
			continue
		case "FLAGS":
			ps = append(ps, pair{k, renderFlags(items[i+1])})
			continue
		case "INTERNALDATE":
			// The same instant in any zone: Dovecot's Maildir keeps the
			// time (mtime), not the zone given at APPEND.
			if d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", items[i+1].s); err == nil {
				ps = append(ps, pair{k, `"` + d.UTC().Format("02-Jan-2006 15:04:05 -0700") + `"`})
				continue
			}
		}
		ps = append(ps, pair{k, items[i+1].render()})
	}
	if len(items)%2 == 1 {
		ps = append(ps, pair{"<odd>", items[len(items)-1].render()})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	var out []string
	if uid != "" {
		out = append(out, "UID "+uid)
		if !uidFirst {
			out = append(out, "UID-NOT-FIRST")
		}
	}
	for _, p := range ps {
		out = append(out, p.k+" "+p.v)
	}
	return "(" + strings.Join(out, " ") + ")"
}

// quotedAtomRE is a quoted string whose content is a valid atom.
var quotedAtomRE = regexp.MustCompile(`"([^\x00-\x20(){%*"\\\]\x7f-\xff]+)"`)

// unquoteSection writes the quoted field names of a FETCH item's section
// (BODY[HEADER.FIELDS ("TO" "SUBJECT")]) as atoms.
func unquoteSection(k string) string {
	open := strings.IndexByte(k, '[')
	if open < 0 {
		return k
	}
	return k[:open] + quotedAtomRE.ReplaceAllString(k[open:], "$1")
}

// renderNumbers renders SEARCH results sorted numerically.
func renderNumbers(toks []token) string {
	var ns []uint64
	var other []string
	for _, t := range toks {
		if n, err := strconv.ParseUint(t.s, 10, 32); err == nil && t.kind == tokAtom {
			ns = append(ns, n)
		} else {
			other = append(other, t.render())
		}
	}
	slices.Sort(ns)
	var out []string
	for _, n := range ns {
		out = append(out, strconv.FormatUint(n, 10))
	}
	return strings.TrimSpace(strings.Join(append(out, other...), " "))
}

// renderESearch renders an ESEARCH response with canonical sets.
func renderESearch(toks []token) string {
	var out []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		out = append(out, t.render())
		if t.kind == tokAtom && strings.EqualFold(t.s, "ALL") && i+1 < len(toks) {
			i++
			out = append(out, canonicalSet(toks[i].s))
		}
	}
	return strings.Join(out, " ")
}

// validID reports whether t is a valid ID response parameter: NIL or a
// list of string/NIL pairs with string keys (RFC 2971).
func validID(t token) bool {
	if isNIL(t) {
		return true
	}
	if t.kind != tokList || len(t.list)%2 != 0 {
		return false
	}
	for i, it := range t.list {
		if it.kind == tokList || i%2 == 0 && it.kind != tokString {
			return false
		}
	}
	return true
}

// canonicalSet rewrites an ascending sequence set ("1,2:3") as merged
// ranges ("1:3") and any other as its numbers in order ("3,1:2" ->
// "3,1,2"). A set it cannot parse is returned unchanged.
func canonicalSet(s string) string {
	var nums []uint64
	for part := range strings.SplitSeq(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err1 := strconv.ParseUint(a, 10, 32)
		hi := lo
		var err2 error
		if isRange {
			hi, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil {
			return s
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if hi-lo > 100000 {
			return s
		}
		for n := lo; n <= hi; n++ {
			nums = append(nums, n)
		}
	}
	// COPYUID pairs source and destination sets by position, so the
	// order matters there: a set that is not ascending is spelled out.
	if !slices.IsSorted(nums) {
		out := make([]string, len(nums))
		for i, n := range nums {
			out[i] = strconv.FormatUint(n, 10)
		}
		return strings.Join(out, ",")
	}
	nums = slices.Compact(nums)
	var out []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			out = append(out, strconv.FormatUint(nums[i], 10))
		} else {
			out = append(out, strconv.FormatUint(nums[i], 10)+":"+strconv.FormatUint(nums[j], 10))
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}

func strconvQuote(s string) string {
	if len(s) > longString {
		s = s[:longString] + "..."
	}
	return strconv.Quote(s)
}

// normalizeResponses normalises the responses to one command: the
// unordered ones sorted first, then the ordered ones in order. all sorts
// everything.
func normalizeResponses(raw [][]byte, all bool) []string {
	var unordered, ordered, tagged []string
	for _, r := range raw {
		n, ok := normalize(r)
		switch {
		case !ok:
		case n.text[0] != '*' && n.text[0] != '+':
			tagged = append(tagged, n.text)
		case n.ordered && !all:
			ordered = append(ordered, n.text)
		default:
			unordered = append(unordered, n.text)
		}
	}
	sort.Strings(unordered)
	return append(append(unordered, ordered...), tagged...)
}

// recentSearch reports whether the command line text (tag first) is a
// SEARCH with a key that depends on \Recent (NEW, OLD, RECENT): its
// results are left out of the comparison.
func recentSearch(text string) bool {
	f := strings.Fields(strings.ToUpper(text))
	if len(f) > 2 && f[1] == "UID" {
		f = f[1:]
	}
	if len(f) < 2 || f[1] != "SEARCH" {
		return false
	}
	for _, w := range f[2:] {
		switch strings.Trim(w, "()") {
		case "NEW", "OLD", "RECENT":
			return true
		}
	}
	return false
}

// maskSearch replaces the results of SEARCH and ESEARCH in lines.
func maskSearch(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "* SEARCH"):
			l = "* SEARCH <depends on \\Recent>"
		case strings.HasPrefix(l, "* ESEARCH"):
			l = "* ESEARCH <depends on \\Recent>"
		}
		out[i] = l
	}
	return out
}

// listAttrs leaves out of the LIST and LSUB responses in lines the
// mailbox attributes a server may give or not for the command line text
// (tag first): \HasChildren and \HasNoChildren when an extended LIST
// (selection options, several patterns or RETURN) does not ask for
// CHILDREN, \Noselect beside \NonExistent in LIST, and in LSUB those,
// \Subscribed and \NonExistent.
func listAttrs(text string, lines []string) []string {
	f := strings.Fields(strings.ToUpper(text))
	if len(f) < 3 {
		return lines
	}
	var drop []string
	switch f[1] {
	case "LSUB":
		drop = []string{`\HASCHILDREN`, `\HASNOCHILDREN`, `\SUBSCRIBED`, `\NONEXISTENT`}
	case "LIST":
		rest := strings.Join(f[2:], " ")
		extended := strings.HasPrefix(rest, "(") || strings.Contains(rest, " RETURN ") || strings.Contains(rest, " (")
		if extended && !strings.Contains(rest, "CHILDREN") {
			drop = []string{`\HASCHILDREN`, `\HASNOCHILDREN`}
		}
	}
	if f[1] != "LIST" && f[1] != "LSUB" {
		return lines
	}
	out := make([]string, len(lines))
	var at []int // the LIST or LSUB lines
	for i, l := range lines {
		word := "* " + f[1] + " ("
		if !strings.HasPrefix(l, word) {
			out[i] = l
			continue
		}
		end := strings.IndexByte(l, ')')
		attrs := strings.Fields(strings.ToUpper(l[len(word):end]))
		var keep []string
		for _, a := range strings.Fields(l[len(word):end]) {
			u := strings.ToUpper(a)
			implied := f[1] == "LIST" && u == `\NOSELECT` && slices.Contains(attrs, `\NONEXISTENT`)
			if !slices.Contains(drop, u) && !implied {
				keep = append(keep, a)
			}
		}
		out[i] = word + strings.Join(keep, " ") + l[end:]
		at = append(at, i)
	}
	// Sorted again among themselves (they sit together, sorted, among the
	// unordered responses).
	var vals []string
	for _, i := range at {
		vals = append(vals, out[i])
	}
	sort.Strings(vals)
	for k, i := range at {
		out[i] = vals[k]
	}
	return out
}
