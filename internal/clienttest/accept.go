package clienttest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// This file applies the Options that accept what only the target does
// (ExtraUID, StoreEcho, ExtraCodes, ReadOnlyStoreNO, InvalidNameBAD, NoID,
// FlagKeywords). Each accepts one
// shape exactly: a target line is taken as the reference's only when
// removing what the option allows leaves that line, and a STORE echo only
// when its flags agree with the STORE.

var (
	fetchUIDRE  = regexp.MustCompile(`^(\* \d+ FETCH \()UID \d+(?: |\))`)
	statusRE    = regexp.MustCompile(`^(\S+ (?:OK|NO|BAD)) \[([^\] ]+)[^\]]*\]$`)
	echoFetchRE = regexp.MustCompile(`^\* (\d+) FETCH \((?:UID (\d+) )?FLAGS (\([^()]*\))\)$`)
)

// accept returns have with the target's lines the options accept
// replaced by the reference's (or dropped), for the command line cmd.
func (o *Options) accept(cmd string, readOnly bool, want, have []string) []string {
	if o.NoID && isCommand(cmd, "ID") {
		tag, _, _ := strings.Cut(cmd, " ")
		rest := slices.DeleteFunc(slices.Clone(have), func(l string) bool { return l == "* BYE" })
		if slices.Equal(want, []string{"* ID <valid>", tag + " OK"}) && slices.Equal(rest, []string{tag + " BAD"}) {
			return want
		}
	}
	unused := map[string]int{}
	for _, l := range want {
		unused[l]++
	}
	exact := make([]bool, len(have)) // first the lines the reference has as they are
	for i, l := range have {
		if unused[l] > 0 {
			unused[l]--
			exact[i] = true
		}
	}
	var out []string
	for i, l := range have {
		if exact[i] {
			out = append(out, l)
			continue
		}
		if o.ExtraUID {
			if m := fetchUIDRE.FindStringSubmatchIndex(l); m != nil {
				rest := l[m[1]:]
				if strings.HasSuffix(l[:m[1]], ")") {
					rest = ")"
				}
				if s := l[:m[3]] + rest; unused[s] > 0 {
					unused[s]--
					out = append(out, s)
					continue
				}
			}
		}
		if o.StoreEcho && storeEcho(cmd, l) {
			continue
		}
		if o.ReadOnlyStoreNO && readOnly && isCommand(cmd, "STORE", "UID") && strings.Contains(strings.ToUpper(cmd), "STORE") {
			tag, _, _ := strings.Cut(cmd, " ")
			if l == tag+" NO [CANNOT]" && unused[tag+" OK"] > 0 {
				unused[tag+" OK"]--
				out = append(out, tag+" OK")
				continue
			}
		}
		if o.InvalidNameBAD && hasInvalidName(cmd) {
			tag, _, _ := strings.Cut(cmd, " ")
			if strings.HasPrefix(l, tag+" BAD") && unused[tag+" NO"] > 0 {
				unused[tag+" NO"]--
				out = append(out, tag+" NO")
				continue
			}
		}
		if m := statusRE.FindStringSubmatch(l); m != nil && slices.Contains(o.ExtraCodes, m[2]) && unused[m[1]] > 0 {
			unused[m[1]]--
			out = append(out, m[1])
			continue
		}
		out = append(out, l)
	}
	return out
}

// storeEcho reports whether l is a FETCH FLAGS that agrees with the STORE
// command cmd (tag first): the message is in its set and has the flags
// FLAGS sets, all that +FLAGS adds, none that -FLAGS removes.
func storeEcho(cmd, l string) bool {
	f := strings.Fields(cmd)
	if len(f) > 1 && strings.EqualFold(f[1], "UID") {
		f = append(f[:1], f[2:]...)
		f[1] = "UID " + strings.ToUpper(f[1])
	}
	if len(f) < 4 || !strings.HasSuffix(strings.ToUpper(f[1]), "STORE") {
		return false
	}
	op := strings.ToUpper(f[3])
	if strings.HasSuffix(op, ".SILENT") {
		return false
	}
	m := echoFetchRE.FindStringSubmatch(l)
	if m == nil {
		return false
	}
	num := m[1]
	if strings.HasPrefix(f[1], "UID ") {
		if num = m[2]; num == "" {
			return false
		}
	}
	if !inSet(f[2], num) {
		return false
	}
	toks, err := tokenizeAll([]byte(strings.Join(f[4:], " ")))
	if err != nil {
		return false
	}
	var asked []string
	for _, t := range toks {
		if t.kind == tokList {
			for _, it := range t.list {
				asked = append(asked, strings.ToLower(it.s))
			}
		} else {
			asked = append(asked, strings.ToLower(t.s))
		}
	}
	have := strings.Fields(strings.ToLower(strings.Trim(m[3], "()")))
	switch op {
	case "FLAGS":
		slices.Sort(asked)
		slices.Sort(have)
		return slices.Equal(slices.Compact(asked), have)
	case "+FLAGS":
		for _, a := range asked {
			if !slices.Contains(have, a) {
				return false
			}
		}
		return true
	case "-FLAGS":
		for _, a := range asked {
			if slices.Contains(have, a) {
				return false
			}
		}
		return true
	}
	return false
}

// inSet reports whether the number n is in the sequence set s ("*" and
// ranges with it count as unbounded).
func inSet(s, n string) bool {
	k, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		return false
	}
	for part := range strings.SplitSeq(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		if !isRange {
			b = a
		}
		lo, hi := bound(a), bound(b)
		if lo > hi {
			lo, hi = hi, lo
		}
		if lo <= k && k <= hi {
			return true
		}
	}
	return false
}

func bound(s string) uint64 {
	if s == "*" {
		return 1<<32 - 1
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return n
}

// dropFlagKeywords (FlagKeywords) leaves the keywords out of the FLAGS
// and PERMANENTFLAGS responses in lines (one slice per record), and drops
// one outside SELECT and EXAMINE that repeats the connection's last.
func dropFlagKeywords(recs []Record, lines [][]string) {
	last := map[string]string{} // connection + kind: last line
	for i, r := range recs {
		if r.pop3 {
			continue
		}
		sel := isCommand(r.Step.Text, "SELECT", "EXAMINE")
		var out []string
		for _, l := range lines[i] {
			kind := ""
			switch {
			case strings.HasPrefix(l, "* FLAGS ("):
				kind = "FLAGS"
			case strings.HasPrefix(l, "* OK [PERMANENTFLAGS ("):
				kind = "PERMANENTFLAGS"
			}
			if kind == "" {
				out = append(out, l)
				continue
			}
			l = withoutKeywords(l)
			key := r.Step.Conn + " " + kind
			if !sel && last[key] == l {
				continue
			}
			last[key] = l
			out = append(out, l)
		}
		lines[i] = out
	}
}

// withoutKeywords removes the keywords (flags without a backslash) from
// the one parenthesized flag list in l.
func withoutKeywords(l string) string {
	open, end := strings.IndexByte(l, '('), strings.IndexByte(l, ')')
	if open < 0 || end < open {
		return l
	}
	var keep []string
	for _, f := range strings.Fields(l[open+1 : end]) {
		if strings.HasPrefix(f, `\`) {
			keep = append(keep, f)
		}
	}
	return l[:open+1] + strings.Join(keep, " ") + l[end:]
}

// readOnlyConns reports, per record, whether its connection had a mailbox
// selected with EXAMINE (per the reference's answers) when it ran.
func readOnlyConns(recs []Record) []bool {
	ro := map[string]bool{}
	out := make([]bool, len(recs))
	for i, r := range recs {
		out[i] = ro[r.Step.Conn]
		switch {
		case isCommand(r.Step.Text, "SELECT", "CLOSE", "UNSELECT", "LOGOUT"):
			ro[r.Step.Conn] = false
		case isCommand(r.Step.Text, "EXAMINE"):
			ok := false
			for _, l := range r.Responses {
				tag, _, _ := strings.Cut(r.Step.Text, " ")
				ok = ok || strings.HasPrefix(strings.ToUpper(string(l)), strings.ToUpper(tag)+" OK")
			}
			ro[r.Step.Conn] = ok
		}
	}
	return out
}

var quotedRE = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// hasInvalidName reports whether a quoted string of the command line is
// not valid modified UTF-7 (the session quotes its mailbox names).
func hasInvalidName(cmd string) bool {
	for _, m := range quotedRE.FindAllStringSubmatch(cmd, -1) {
		if !validMUTF7(m[1]) {
			return true
		}
	}
	return false
}

// validMUTF7 reports whether s is valid modified UTF-7 (RFC 3501 5.1.3):
// "&-" or "&" base64 (with "," for "/") of UTF-16BE "-", encoding no
// printable ASCII, no unpaired surrogate, no bits left over, and no two
// encoded runs next to each other.
func validMUTF7(s string) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
	afterRun := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
		if c != '&' {
			afterRun = false
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return false
		}
		b64 := s[i+1 : i+1+end]
		i += end + 1
		if b64 == "" {
			afterRun = false
			continue
		}
		if afterRun {
			return false
		}
		afterRun = true
		var bits, n uint32
		var units []uint16
		for _, r := range b64 {
			k := strings.IndexRune(alphabet, r)
			if k < 0 {
				return false
			}
			bits, n = bits<<6|uint32(k), n+6
			if n >= 16 {
				n -= 16
				units = append(units, uint16(bits>>n))
				bits &= 1<<n - 1
			}
		}
		if n >= 6 || bits != 0 || len(units) == 0 {
			return false
		}
		for k := 0; k < len(units); k++ {
			u := units[k]
			switch {
			case u >= 0x20 && u <= 0x7e:
				return false
			case u >= 0xd800 && u <= 0xdbff:
				if k+1 >= len(units) || units[k+1] < 0xdc00 || units[k+1] > 0xdfff {
					return false
				}
				k++
			case u >= 0xdc00 && u <= 0xdfff:
				return false
			}
		}
	}
	return true
}
