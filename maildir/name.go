package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is a message file in a Maildir.
type Entry struct {
	Key   string // the stable part of the name: up to the first ',' or ':'
	UID   uint32 // from the ",U=" field; 0 if none
	Flags Flags  // from the ":2," info; 0 if none
	Name  string // base name of the file
	Sub   string // "cur" or "new"; ParseName leaves it empty
}

var keyCounter atomic.Uint64

var hostname = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return sanitizeHost(h)
})

// sanitizeHost keeps ASCII letters, digits, '-' and '.', replacing other bytes
// with '_', so that the host is safe in a key.
func sanitizeHost(h string) string {
	if h == "" {
		return "localhost"
	}
	b := []byte(h)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.':
		default:
			b[i] = '_'
		}
	}
	if b[0] == '.' {
		b[0] = '_'
	}
	return string(b)
}

// newKey returns a fresh unique key: <unix>.<pid>_<counter>.<16 hex>.<host>.
// It never contains '/', ',' or ':' and never starts with '.'.
func newKey() string {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%d.%d_%d.%s.%s", time.Now().Unix(), os.Getpid(),
		keyCounter.Add(1), hex.EncodeToString(r[:]), hostname())
}

// validKey reports whether key can be the key of a name.
func validKey(key string) bool {
	return key != "" && key[0] != '.' && !strings.ContainsAny(key, "/,:")
}

// nameParts is a base name split by the grammar in the package doc.
type nameParts struct {
	key       string
	fields    string // after the key's ',' and before the ':', if hasFields
	info      string // after the first ':', if hasInfo
	hasFields bool
	hasInfo   bool
}

func splitName(name string) nameParts {
	var p nameParts
	base := name
	if i := strings.IndexByte(name, ':'); i >= 0 {
		base, p.info, p.hasInfo = name[:i], name[i+1:], true
	}
	p.key = base
	if i := strings.IndexByte(base, ','); i >= 0 {
		p.key, p.fields, p.hasFields = base[:i], base[i+1:], true
	}
	return p
}

// ParseName parses the base name of a message file, ours or another
// program's; see the grammar in the package doc. It reports false for names
// that cannot be messages: empty, starting with '.', containing '/' or NUL,
// or with an empty key. The UID is taken from the first field "U=<n>" with n
// a valid non-zero uint32.
func ParseName(basename string) (Entry, bool) {
	if basename == "" || basename[0] == '.' || strings.IndexByte(basename, '/') >= 0 || strings.IndexByte(basename, 0) >= 0 {
		return Entry{}, false
	}
	p := splitName(basename)
	if p.key == "" {
		return Entry{}, false
	}
	e := Entry{Key: p.key, Name: basename}
	for f := range strings.SplitSeq(p.fields, ",") {
		if v, ok := strings.CutPrefix(f, "U="); ok {
			if u, err := strconv.ParseUint(v, 10, 32); err == nil && u != 0 && v[0] != '+' {
				e.UID = uint32(u)
				break
			}
		}
	}
	if p.hasInfo && strings.HasPrefix(p.info, "2,") {
		e.Flags = ParseInfo(p.info)
	}
	return e, true
}

// formatName returns the name of a new message file.
func formatName(key string, uid uint32, f Flags) string {
	if uid == 0 {
		return key + ":" + f.Info()
	}
	return key + ",U=" + strconv.FormatUint(uint64(uid), 10) + ":" + f.Info()
}

// rename returns name with its U= field set to uid (removed when 0) and its
// flags set to f. Other fields keep their order; foreign info letters (ASCII
// letters other than ours) are kept. withInfo false leaves the name without
// info if it had none (for files in new/).
func rename(name string, uid uint32, f Flags, withInfo bool) string {
	p := splitName(name)
	var b strings.Builder
	b.Grow(len(name) + 16)
	b.WriteString(p.key)
	if p.hasFields {
		for fl := range strings.SplitSeq(p.fields, ",") {
			if strings.HasPrefix(fl, "U=") {
				continue
			}
			b.WriteByte(',')
			b.WriteString(fl)
		}
	}
	if uid != 0 {
		b.WriteString(",U=")
		b.WriteString(strconv.FormatUint(uint64(uid), 10))
	}
	if !withInfo && !p.hasInfo {
		return b.String()
	}
	b.WriteByte(':')
	letters := []byte(f.Info())
	if strings.HasPrefix(p.info, "2,") {
		for i := 2; i < len(p.info); i++ {
			c := p.info[i]
			if ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && flagOf(c) == 0 &&
				!strings.Contains(string(letters[2:]), string(c)) {
				letters = append(letters, c)
			}
		}
		sort.Slice(letters[2:], func(i, j int) bool { return letters[2+i] < letters[2+j] })
	}
	b.Write(letters)
	return b.String()
}
