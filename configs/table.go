package configs

import (
	"fmt"
	"math"
	"slices"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// decoder turns the generic document (as decoded by go-toml into
// map[string]any) into typed values, collecting every error with its line.
type decoder struct {
	file  string // as errors name it
	dir   string // absolute directory of the file, for relative paths
	idx   *lineIndex
	errs  ErrorList
	warns ErrorList
	env   []envCheck // see CheckEnvironment
}

func (d *decoder) errorf(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.idx.line(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

// warnf records a warning: something that does not stop postfach but may
// not do what the file's author expects.
func (d *decoder) warnf(path, format string, args ...any) {
	d.warns = append(d.warns, &Error{File: d.file, Line: d.idx.line(path), Key: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// table is one TOML table being decoded. Every getter marks its key as known,
// whether or not the document has it; done reports the keys nobody asked for.
type table struct {
	d     *decoder
	path  string
	m     map[string]any
	known []string
}

func (d *decoder) table(path string, m map[string]any) *table {
	return &table{d: d, path: path, m: m}
}

// A nil *table is a table that is absent from the document: every getter
// returns its default.

func (t *table) key(k string) string { return joinKey(t.path, k) }

func (t *table) line(k string) int { return t.d.idx.line(t.key(k)) }

func (t *table) has(k string) bool {
	if t == nil {
		return false
	}
	_, ok := t.m[k]
	return ok
}

func (t *table) errorf(k, format string, args ...any) {
	t.d.errorf(t.key(k), format, args...)
}

// get returns the raw value of k.
func (t *table) get(k string) (any, bool) {
	if t == nil {
		return nil, false
	}
	if !slices.Contains(t.known, k) {
		t.known = append(t.known, k)
	}
	v, ok := t.m[k]
	return v, ok
}

func (t *table) typeError(path, want string, v any) {
	t.d.errorf(path, "must be %s, not %s", want, typeName(v))
}

func (t *table) str(k, def string) string {
	v, ok := t.get(k)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		t.typeError(t.key(k), "a string", v)
		return def
	}
	return s
}

func (t *table) integer(k string, def int) int {
	v, ok := t.get(k)
	if !ok {
		return def
	}
	n, ok := v.(int64)
	if !ok {
		t.typeError(t.key(k), "an integer", v)
		return def
	}
	if n < math.MinInt || n > math.MaxInt {
		t.errorf(k, "%d is out of range", n)
		return def
	}
	return int(n)
}

func (t *table) boolean(k string, def bool) bool {
	v, ok := t.get(k)
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		t.typeError(t.key(k), "a boolean (true or false)", v)
		return def
	}
	return b
}

func (t *table) strings(k string, def []string) []string {
	v, ok := t.get(k)
	if !ok {
		return def
	}
	a, ok := v.([]any)
	if !ok {
		t.typeError(t.key(k), "an array of strings", v)
		return def
	}
	out := make([]string, 0, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			t.typeError(joinIndex(t.key(k), i+1), "a string", e)
			continue
		}
		out = append(out, s)
	}
	return out
}

// stringMap decodes a table of string values, in no particular order.
func (t *table) stringMap(k string) map[string]string {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.typeError(t.key(k), "a table", v)
		return nil
	}
	out := make(map[string]string, len(m))
	for name, e := range m {
		s, ok := e.(string)
		if !ok {
			t.typeError(joinKey(t.key(k), name), "a string", e)
			continue
		}
		out[name] = s
	}
	return out
}

// sub returns the table k, or nil when it is missing or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.typeError(t.key(k), "a table", v)
		return nil
	}
	return t.d.table(t.key(k), m)
}

// tables returns the array of tables k; elements that are not tables are
// reported and left out.
func (t *table) tables(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		t.typeError(t.key(k), "an array of tables ([["+k+"]])", v)
		return nil
	}
	var out []*table
	for i, e := range a {
		path := joinIndex(t.key(k), i+1)
		m, ok := e.(map[string]any)
		if !ok {
			t.typeError(path, "a table", e)
			continue
		}
		out = append(out, t.d.table(path, m))
	}
	return out
}

// done reports every key of the table that no getter asked for.
func (t *table) done() {
	if t == nil {
		return
	}
	for k := range t.m {
		if slices.Contains(t.known, k) {
			continue
		}
		msg := "unknown key"
		if s := suggest(k, t.known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		t.errorf(k, "%s", msg)
	}
}

// suggest returns the known key closest to k when it is a likely typo.
func suggest(k string, known []string) string {
	best, bestDist := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestDist && d < len(c) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// typeName names the TOML type of a value decoded by go-toml, with an article.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDateTime:
		return "a date-time"
	case toml.LocalDate:
		return "a date"
	case toml.LocalTime:
		return "a time"
	}
	return fmt.Sprintf("%T", v)
}
