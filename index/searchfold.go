package index

import (
	"bytes"
	"database/sql/driver"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"modernc.org/sqlite"
)

// Case-insensitive matching for SearchLocal, and the SQL functions it
// registers with the SQLite driver (postfach_contains, postfach_header,
// postfach_inset).

func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldCase returns s in Unicode simple case folding (each rune as the
// smallest of its case orbit), for case-insensitive matching.
func foldCase(s string) string {
	if asciiOnly(s) {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		if min < utf8.RuneSelf && 'A' <= min && min <= 'Z' {
			min += 'a' - 'A'
		}
		b.WriteRune(min)
	}
	return b.String()
}

// headerContains reports whether a header block has a field named name
// whose value (unfolded, encoded words decoded) contains needle, case
// folded; an empty needle: whether it has such a field. Only the lines
// of the fields so named are looked at closely.
func headerContains(header []byte, name, needle string) bool {
	folded := foldCase(needle)
	for rest := header; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) <= len(name) || !strings.EqualFold(string(line[:len(name)]), name) {
			continue
		}
		after := bytes.TrimLeft(line[len(name):], " \t")
		if len(after) == 0 || after[0] != ':' {
			continue
		}
		// The field, with its continuation lines, unfolded.
		value := string(bytes.TrimRight(after[1:], "\r\n"))
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			cont := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				cont, rest = rest[:i+1], rest[i+1:]
			} else {
				rest = nil
			}
			value += string(bytes.TrimRight(cont, "\r\n"))
		}
		if needle == "" || containsFold(decodeText(strings.TrimSpace(value)), needle, folded) {
			return true
		}
	}
	return false
}

// containsFold reports whether needle is in hay, case folded (folded is
// foldCase(needle)). An ASCII needle is looked for without copying hay.
func containsFold(hay, needle, folded string) bool {
	if !asciiOnly(needle) {
		return strings.Contains(foldCase(hay), folded)
	}
	n := len(folded)
	if n == 0 {
		return true
	}
	c0 := folded[0]
	c1 := c0
	if 'a' <= c0 && c0 <= 'z' {
		c1 = c0 - 'a' + 'A'
	}
	for i := 0; i+n <= len(hay); i++ {
		if (hay[i] == c0 || hay[i] == c1) && asciiEqualFold(hay[i:i+n], folded) {
			return true
		}
	}
	return false
}

// asciiEqualFold compares s with lower, an ASCII lower-case string,
// folding s's ASCII letters only.
func asciiEqualFold(s, lower string) bool {
	for i := 0; i < len(lower); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func udfText(v driver.Value) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

func init() {
	// postfach_contains(hay, needle): case-folded substring test.
	sqlite.MustRegisterDeterministicScalarFunction("postfach_contains", 2,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			hay, ok1 := udfText(args[0])
			needle, ok2 := udfText(args[1])
			if !ok1 || !ok2 {
				return nil, nil
			}
			return containsFold(hay, needle, foldCase(needle)), nil
		})
	// postfach_header(header, name, needle): see headerContains.
	sqlite.MustRegisterDeterministicScalarFunction("postfach_header", 3,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			h, ok1 := udfText(args[0])
			name, ok2 := udfText(args[1])
			needle, ok3 := udfText(args[2])
			if !ok1 || !ok2 || !ok3 {
				return nil, nil
			}
			return headerContains([]byte(h), name, needle), nil
		})
	// postfach_inset(uid, key): whether uid is in the UID set registered
	// under key (see uidSet).
	sqlite.MustRegisterScalarFunction("postfach_inset", 2,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			uid, ok := args[0].(int64)
			key, ok2 := udfText(args[1])
			if !ok || !ok2 {
				return false, nil
			}
			v, ok := uidSets.Load(key)
			if !ok {
				return nil, errors.New("index: search: UID set gone")
			}
			ranges := v.([][2]uint32) // sorted, not overlapping
			// The first range starting after uid; the one before it
			// holds uid if any does.
			i, _ := slices.BinarySearchFunc(ranges, uid+1, func(r [2]uint32, u int64) int {
				return int(int64(r[0]) - u)
			})
			return i > 0 && int64(ranges[i-1][1]) >= uid, nil
		})
}
