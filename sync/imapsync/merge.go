package imapsync

import (
	"slices"

	"github.com/postfach/postfach/maildir"
)

// mergeFlags merges flags three ways: base is the last state both sides
// agreed on. A flag changed on one side only takes that side's value. A flag
// changed on both sides was flipped the same way on both, so they agree.
func mergeFlags(base, local, remote maildir.Flags) maildir.Flags {
	changedRemote := base ^ remote
	return (remote & changedRemote) | (local &^ changedRemote)
}

// mergeKeywords applies the same rule to each keyword (case-sensitive).
func mergeKeywords(base, local, remote []string) []string {
	in := func(list []string, k string) bool { return slices.Contains(list, k) }
	var all []string
	for _, l := range [][]string{base, local, remote} {
		for _, k := range l {
			if !slices.Contains(all, k) {
				all = append(all, k)
			}
		}
	}
	var out []string
	for _, k := range all {
		b, l, r := in(base, k), in(local, k), in(remote, k)
		keep := l
		if r != b {
			keep = r
		}
		if keep {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func sameKeywords(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
