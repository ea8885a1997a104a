package main

import (
	"slices"
	"strings"
	"testing"
)

// Fuzz target of send's command line parser (parseSendArgs), sendmail's
// getopt-style syntax, checked by properties a reference reading gives:
// arguments without a leading '-' (before any option) are recipients as
// they are, and after "--" everything is; what it accepts it still
// accepts with one more recipient after it, which comes last; its
// recipients are arguments as given, in their order.

// sendArgs splits the fuzzer's bytes into arguments (NUL separates).
func sendArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// FuzzParseSendArgs: see above; and the options it reports come from
// the arguments (-f's value is one's text, trimmed of blanks and <>).
func FuzzParseSendArgs(f *testing.F) {
	for _, s := range []string{
		"-oem\x00-oi\x00-t", "-t\x00-i\x00-f\x00me@example.org\x00a@example.org",
		"-fme@example.org\x00-FMy Name\x00--\x00-odd@example.org", "-ti", "-h\x0017\x00a@example.org", "-h",
		"-bm\x00a@example.org", "-bs", "-oi\x00--config=/tmp/x\x00a@example.org", "-c\x00file", "--config",
		"-f\x00 <me@example.org> ", "-x", "a@example.org\x00b@example.org", "-", "-Am\x00-N\x00never\x00-R\x00hdrs\x00a@x",
		"--verbose\x00-v\x00--help", "-oem", "-r", "-Ffull\x00-Uv\x00-Gn",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := sendArgs(s)
		if len(args) > 64 {
			return
		}
		o, err := parseSendArgs(args)
		// Plain arguments are recipients, whatever follows.
		plain := !slices.ContainsFunc(args, func(a string) bool { return len(a) >= 2 && a[0] == '-' })
		if plain {
			if err != nil || !slices.Equal(o.rcpts, args) {
				t.Fatalf("parseSendArgs(%q) = %+v, %v: want the recipients %q", args, o, err, args)
			}
		}
		dd := append([]string{"--"}, args...)
		if o2, err := parseSendArgs(dd); err != nil || !slices.Equal(o2.rcpts, args) {
			t.Fatalf("parseSendArgs(%q) = %+v, %v: all recipients", dd, o2, err)
		}
		if err != nil {
			if o != nil {
				t.Errorf("an error with options: %+v", o)
			}
			return
		}
		// Its recipients are arguments, as given, in order.
		rest := args
		for _, r := range o.rcpts {
			i := slices.Index(rest, r)
			if i < 0 {
				t.Fatalf("parseSendArgs(%q): recipient %q is no argument (in order)", args, r)
			}
			rest = rest[i+1:]
		}
		if o.from != "" && !slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, o.from) }) {
			t.Errorf("parseSendArgs(%q): -f %q from nowhere", args, o.from)
		}
		// One more recipient after what it accepted.
		more := append(slices.Clone(args), "last@example.org")
		o3, err := parseSendArgs(more)
		if err != nil {
			t.Fatalf("parseSendArgs(%q) accepted, with a recipient more: %v", args, err)
		}
		want := append(slices.Clone(o.rcpts), "last@example.org")
		if !slices.Equal(o3.rcpts, want) || o3.from != o.from || o3.headerRcpts != o.headerRcpts || o3.ignoreDots != o.ignoreDots ||
			o3.fullName != o.fullName || o3.config != o.config || o3.help != o.help {
			t.Fatalf("parseSendArgs(%q) = %+v, with a recipient more %+v", args, o, o3)
		}
	})
}
