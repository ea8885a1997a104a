package imapsync

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// oldWildMatch is the matcher wildMatch replaced (it tries each split of
// the name at each wildcard: exponential in the number of wildcards). It
// stays here as the reference the new one must agree with.
func oldWildMatch(pattern, name string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*', '%':
			wild := pattern[0]
			pattern = pattern[1:]
			for i := 0; i <= len(name); i++ {
				if wild == '%' && i > 0 && name[i-1] == '/' {
					return false
				}
				if oldWildMatch(pattern, name[i:]) {
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

// TestWildMatchSameAsBefore: on random short patterns and names over a
// small alphabet (so that matches are frequent), the linear matcher agrees
// with the old one, and on a few hand-picked cases with the expected answer.
func TestWildMatchSameAsBefore(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"%", "", true},
		{"*", "a/b", true}, {"%", "a/b", false}, {"a/%", "a/b", true}, {"a/%", "a/b/c", false},
		{"a/*", "a/b/c", true}, {"%/%", "a/b", true}, {"**", "x", true}, {"*%", "a/b", true},
		{"%*", "a/b", true}, {"%%/b", "a/b", true}, {"INBOX", "INBOX", true}, {"INBOX", "INBOXx", false},
		{"Lists/*", "Lists", false}, {"*/x", "a/b/x", true}, {"%/x", "a/b/x", false},
	} {
		if got := wildMatch(c.pattern, c.name); got != c.want {
			t.Errorf("wildMatch(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	gen := func(alphabet string, max int) string {
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	n := 200000
	if testing.Short() {
		n = 20000
	}
	matched := 0
	for range n {
		p, s := gen("ab/*%", 8), gen("ab/", 10)
		want := oldWildMatch(p, s)
		if got := wildMatch(p, s); got != want {
			t.Fatalf("wildMatch(%q, %q) = %v, the old matcher says %v", p, s, got, want)
		}
		if want {
			matched++
		}
	}
	t.Logf("%d of %d random cases match", matched, n)
	if matched < n/20 {
		t.Fatalf("only %d of %d random cases match: the comparison says little", matched, n)
	}
}

// TestWildMatchManyStars: a pattern with many '*' or '%' against a
// 4,000-byte name that almost matches is answered in milliseconds (the old
// matcher took seconds to forever).
func TestWildMatchManyStars(t *testing.T) {
	name := strings.Repeat("a", 4000)
	for _, c := range []struct{ pattern, name string }{
		{strings.Repeat("*a", 20) + "*b", name},
		{strings.Repeat("%a", 20) + "%b", name},
		{strings.Repeat("*a%", 20) + "b", strings.Repeat("a/", 2000)},
		{strings.Repeat("*", 4000) + "b", name},
	} {
		done := make(chan bool, 1)
		start := time.Now()
		go func() { done <- Match([]string{c.pattern}, c.name) }()
		select {
		case got := <-done:
			if got {
				t.Errorf("%.20q... matches a name without 'b'", c.pattern)
			}
			// Generous for a loaded 2-core machine: it takes well under
			// a millisecond idle.
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("%.20q...: %v", c.pattern, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%.20q... against a %d-byte name: no answer after 5s", c.pattern, len(c.name))
		}
	}
}

// FuzzWildMatch: the linear matcher agrees with the old one (on inputs
// short enough for the old one to answer).
func FuzzWildMatch(f *testing.F) {
	f.Add("*a%/b", "xa/b")
	f.Add("%%*", "a/b/c")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if strings.Count(pattern, "*")+strings.Count(pattern, "%") > 6 || len(name) > 64 {
			return
		}
		if got, want := wildMatch(pattern, name), oldWildMatch(pattern, name); got != want {
			t.Fatalf("wildMatch(%q, %q) = %v, the old matcher says %v", pattern, name, got, want)
		}
	})
}
