package clienttest

import (
	"slices"
	"strconv"
	"strings"
)

// Two conforming servers may tell the same changes of the selected
// mailbox in different words: the first two of five messages expunged
// are "* 2 EXPUNGE" "* 1 EXPUNGE" from one and "* 1 EXPUNGE" "* 1
// EXPUNGE" from another (each EXPUNGE renumbers the later messages,
// RFC 3501 7.4.1); two messages copied into it are "* 7 EXISTS" from one
// and "* 6 EXISTS" "* 7 EXISTS" from another (each count was true when
// sent). canonicalEvents rewrites every run of EXISTS and EXPUNGE
// responses (nothing else between them) into one form: the expunged
// messages by their sequence numbers before the run, highest first, then
// the last EXISTS. It follows each connection's message count from its
// SELECT or EXAMINE on; a run it cannot follow (an EXPUNGE beyond the
// count, an EXISTS that lowers it, an unordered record) is kept as sent,
// and so differs from a conforming server's.

// Between two EXISTS or EXPUNGE responses, the FETCH responses of
// different messages may come in any order (Dovecot sends the flag
// updates of a STORE 1:3 by another session as 1, 2, 3; postfach as its
// store's change feed has them): sortFetchRuns puts each run of FETCH
// responses in message order, keeping the order of those of one message.

// sortFetchRuns sorts, in place, each run of FETCH responses by sequence
// number (stable).
func sortFetchRuns(lines []string) {
	seq := func(l string) (int, bool) {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "*" || f[2] != "FETCH" {
			return 0, false
		}
		n, err := strconv.Atoi(f[1])
		return n, err == nil
	}
	for i := 0; i < len(lines); {
		if _, ok := seq(lines[i]); !ok {
			i++
			continue
		}
		j := i
		for j < len(lines) {
			if _, ok := seq(lines[j]); !ok {
				break
			}
			j++
		}
		slices.SortStableFunc(lines[i:j], func(a, b string) int {
			x, _ := seq(a)
			y, _ := seq(b)
			return x - y
		})
		i = j
	}
}

// canonicalEvents returns the normalised responses of each record, with
// EXISTS and EXPUNGE runs in canonical form.
func canonicalEvents(recs []Record) [][]string {
	count := map[string]int{} // per connection; -1 unknown, missing: none selected
	out := make([][]string, len(recs))
	for i, r := range recs {
		lines := r.Normal()
		out[i] = lines
		if r.pop3 {
			continue
		}
		sortFetchRuns(lines)
		conn := r.Step.Conn
		if isCommand(r.Step.Text, "SELECT", "EXAMINE") {
			count[conn] = 0
		}
		n, ok := count[conn]
		if r.Step.Unordered || !ok || n < 0 {
			if hasEvents(lines) {
				count[conn] = -1
			}
			continue
		}
		out[i], count[conn] = canonicalRuns(lines, n)
	}
	return out
}

// isCommand reports whether the command line text (tag first) is one of
// names.
func isCommand(text string, names ...string) bool {
	f := strings.Fields(text)
	return len(f) >= 2 && slices.Contains(names, strings.ToUpper(f[1]))
}

// event parses "* n EXISTS" or "* n EXPUNGE".
func event(l string) (n int, kind string, ok bool) {
	f := strings.Fields(l)
	if len(f) != 3 || f[0] != "*" || f[2] != "EXISTS" && f[2] != "EXPUNGE" {
		return 0, "", false
	}
	n, err := strconv.Atoi(f[1])
	return n, f[2], err == nil
}

func hasEvents(lines []string) bool {
	for _, l := range lines {
		if _, _, ok := event(l); ok {
			return true
		}
	}
	return false
}

// canonicalRuns rewrites the EXISTS/EXPUNGE runs of lines, the mailbox
// holding n messages before them, and returns the count after them (-1
// when a run could not be followed).
func canonicalRuns(lines []string, n int) ([]string, int) {
	var out []string
	for i := 0; i < len(lines); {
		if _, _, ok := event(lines[i]); !ok {
			out = append(out, lines[i])
			i++
			continue
		}
		j := i
		for j < len(lines) {
			if _, _, ok := event(lines[j]); !ok {
				break
			}
			j++
		}
		run, after, ok := canonicalRun(lines[i:j], n)
		if !ok {
			return append(out, lines[i:]...), -1
		}
		out, n, i = append(out, run...), after, j
	}
	return out, n
}

// canonicalRun follows one run over a mailbox of n messages.
func canonicalRun(run []string, n int) ([]string, int, bool) {
	slots := make([]int, n) // the messages in order: their number before the run, 0 for one added in it
	for i := range slots {
		slots[i] = i + 1
	}
	var gone []int
	sawExists := false
	for _, l := range run {
		k, kind, _ := event(l)
		switch kind {
		case "EXPUNGE":
			if k < 1 || k > len(slots) {
				return nil, 0, false
			}
			if slots[k-1] > 0 {
				gone = append(gone, slots[k-1])
			}
			slots = slices.Delete(slots, k-1, k)
		case "EXISTS":
			if k < len(slots) {
				return nil, 0, false
			}
			for len(slots) < k {
				slots = append(slots, 0)
			}
			sawExists = true
		}
	}
	slices.Sort(gone)
	slices.Reverse(gone)
	var out []string
	for _, g := range gone {
		out = append(out, "* "+strconv.Itoa(g)+" EXPUNGE")
	}
	if sawExists {
		out = append(out, "* "+strconv.Itoa(len(slots))+" EXISTS")
	}
	return out, len(slots), true
}

// originalExpunges turns the numbers of a list of EXPUNGE responses
// (imaplib's expunge() result) into canonical form, as canonicalRun does
// without knowing the count: each as its number before the first,
// highest first. A list that is not a list of numbers is returned as it
// is.
func originalExpunges(nums []string) []string {
	var orig []int
	for _, s := range nums {
		k, err := strconv.Atoi(s)
		if err != nil || k < 1 {
			return nums
		}
		// k counts the messages left; before the earlier expunges, it was
		// k plus the number of those at or before it.
		for _, o := range sortedCopy(orig) {
			if o <= k {
				k++
			}
		}
		orig = append(orig, k)
	}
	slices.Sort(orig)
	slices.Reverse(orig)
	out := make([]string, len(orig))
	for i, o := range orig {
		out[i] = strconv.Itoa(o)
	}
	return out
}

func sortedCopy(s []int) []int {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
