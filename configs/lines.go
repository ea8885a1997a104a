package configs

import (
	"sort"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// joinKey appends the TOML key k to the dotted path base, quoting k unless it
// is a bare key.
func joinKey(base, k string) string {
	if !isBareKey(k) {
		k = strconv.Quote(k)
	}
	if base == "" {
		return k
	}
	return base + "." + k
}

// joinIndex appends the 1-based array index i to path.
func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// lineIndex maps the key paths of a document (as built by joinKey and
// joinIndex) to the line where each key, table header or array element
// appears.
type lineIndex struct {
	lines  map[string]int
	counts map[string]int // [[array]] path -> number of elements so far
	nl     []int          // offsets of the '\n' bytes of the document
}

// indexLines walks the document with go-toml's unstable parser. The document
// must already be known to be valid TOML; on a parse error the index simply
// stops there.
func indexLines(data []byte) *lineIndex {
	x := &lineIndex{lines: map[string]int{}, counts: map[string]int{}}
	for i, c := range data {
		if c == '\n' {
			x.nl = append(x.nl, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	cur := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			cur = x.header(e)
		case unstable.KeyValue:
			x.keyValue(cur, e)
		}
	}
	return x
}

// line returns the line of path, or of its closest indexed parent, or 0.
func (x *lineIndex) line(path string) int {
	for {
		if l, ok := x.lines[path]; ok {
			return l
		}
		i := lastSep(path)
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// lastSep returns the index of the '.' or '[' that starts the last element of
// path, or -1. Quoted keys may contain either byte, so they are skipped.
func lastSep(path string) int {
	sep := -1
	inQuote := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			sep = i
		}
	}
	return sep
}

func (x *lineIndex) lineAt(r unstable.Range) int {
	return sort.SearchInts(x.nl, int(r.Offset)) + 1
}

func (x *lineIndex) setFirst(path string, line int) {
	if _, ok := x.lines[path]; !ok {
		x.lines[path] = line
	}
}

// header records a [table] or [[array]] header and returns its path. Each
// part that names an array of tables refers to its last element so far, as
// in TOML; a [[array]] header adds an element.
func (x *lineIndex) header(e *unstable.Node) string {
	path, line := "", 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = x.lineAt(k.Raw)
		}
		path = joinKey(path, string(k.Data))
		if it.IsLast() && e.Kind == unstable.ArrayTable {
			x.counts[path]++
			path = joinIndex(path, x.counts[path])
			x.lines[path] = line
		} else if n := x.counts[path]; n > 0 {
			path = joinIndex(path, n)
		}
		x.setFirst(path, line)
	}
	return path
}

// keyValue records a (possibly dotted) key and, for inline tables and
// arrays, the keys and elements inside its value.
func (x *lineIndex) keyValue(base string, kv *unstable.Node) {
	path, line := base, 0
	it := kv.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = x.lineAt(k.Raw)
		}
		path = joinKey(path, string(k.Data))
		x.setFirst(path, line)
	}
	x.value(path, kv.Value(), line)
}

func (x *lineIndex) value(path string, v *unstable.Node, line int) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				x.keyValue(path, c)
			}
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			i++
			l := line
			if c.Raw.Length > 0 {
				l = x.lineAt(c.Raw)
			}
			p := joinIndex(path, i)
			x.setFirst(p, l)
			x.value(p, c, l)
		}
	}
}
