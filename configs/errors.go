package configs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a config file.
type Error struct {
	File string // the path given to Load
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based column, set only for TOML syntax errors
	Key  string // dotted key path such as accounts[2].port; empty for syntax errors
	Msg  string
	// Warning marks a problem that does not stop postfach (see
	// Config.Warnings).
	Warning bool
	// Always marks a warning every command prints, not only config check
	// (a password in a file others can read).
	Always bool
}

// Error formats e as "FILE:LINE: KEY: MSG", or "FILE:LINE:COL: MSG" for a
// syntax error; a warning as "FILE:LINE: KEY: warning: MSG".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a config file, sorted by line.
type ErrorList []*Error

// Error joins the errors with "\n".
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find the individual errors.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders the list by line, then key; errors on the same line and key
// keep the order in which they were found.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Key, b.Key))
	})
}
