package imapsync

import (
	"slices"
	"testing"

	"github.com/postfach/postfach/maildir"
)

// The three-way flag rules, one case per rule (see the package doc).
func TestMergeFlags(t *testing.T) {
	const (
		S = maildir.FlagSeen
		F = maildir.FlagFlagged
		R = maildir.FlagAnswered
		T = maildir.FlagDeleted
	)
	cases := []struct {
		name                string
		base, local, remote maildir.Flags
		want                maildir.Flags
	}{
		{"nothing changed", S, S, S, S},
		{"added locally", 0, S, 0, S},
		{"added upstream", 0, 0, S, S},
		{"removed locally", S, 0, S, 0},
		{"removed upstream", S, S, 0, 0},
		{"both added the same", 0, F, F, F},
		{"both removed the same", F, 0, 0, 0},
		{"different flags on each side combine", 0, S, F, S | F},
		{"local add, upstream remove of another", S, S | F, 0, F},
		{"deleted flag travels like any flag", 0, T, 0, T},
		{"three flags, mixed", S | R, S | F, R | T, F | T},
	}
	for _, c := range cases {
		if got := mergeFlags(c.base, c.local, c.remote); got != c.want {
			t.Errorf("%s: merge(base %q, local %q, remote %q) = %q, want %q",
				c.name, c.base.Info(), c.local.Info(), c.remote.Info(), got.Info(), c.want.Info())
		}
	}
}

func TestMergeKeywords(t *testing.T) {
	cases := []struct {
		base, local, remote, want []string
	}{
		{nil, []string{"$Work"}, nil, []string{"$Work"}},
		{nil, nil, []string{"$Work"}, []string{"$Work"}},
		{[]string{"a"}, nil, []string{"a"}, nil},
		{[]string{"a"}, []string{"a"}, nil, nil},
		{[]string{"a"}, []string{"a", "b"}, []string{"c"}, []string{"b", "c"}},
	}
	for _, c := range cases {
		if got := mergeKeywords(c.base, c.local, c.remote); !slices.Equal(got, c.want) {
			t.Errorf("merge(%v, %v, %v) = %v, want %v", c.base, c.local, c.remote, got, c.want)
		}
	}
}

func TestRemoteName(t *testing.T) {
	fmap := map[string]string{"INBOX.Sent Items": "Sent"}
	for _, tc := range []struct {
		local string
		delim rune
		want  string
	}{
		{"INBOX", '/', "INBOX"},
		{"Lists/Go", '/', "Lists/Go"},
		{"Lists/Go", '.', "Lists.Go"},
		{"a\u2215b/c", '.', "a/b.c"},
		{"Sent", '.', "INBOX.Sent Items"},
		{"Entwürfe", 0, "Entwürfe"},
	} {
		if got := RemoteName(tc.local, tc.delim, fmap); got != tc.want {
			t.Errorf("RemoteName(%q, %q) = %q, want %q", tc.local, tc.delim, got, tc.want)
		}
	}
}
