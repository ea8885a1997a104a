package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// Checks shared by the tables. Each getter reports what is wrong with the
// key and returns the default instead, so that later checks do not pile
// follow-up errors on top.

// oneOf returns the string k, which must be one of allowed.
func oneOf(t *table, k, def string, allowed ...string) string {
	v := t.str(k, def)
	if !isA[string](t, k) {
		return v // absent, or of the wrong type (reported)
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	t.errorf(k, "must be %s, not %q", quoteList(allowed), v)
	return def
}

// quoteList formats ["a", "b", "c"] as `"a", "b" or "c"`.
func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func intRange(t *table, k string, def, lo, hi int) int {
	v := t.integer(k, def)
	if isA[int64](t, k) && (v < lo || v > hi) {
		t.errorf(k, "must be between %d and %d, not %d", lo, hi, v)
		return def
	}
	return v
}

func nonNegative(t *table, k string, def int) int {
	v := t.integer(k, def)
	if v < 0 {
		t.errorf(k, "must not be negative")
		return def
	}
	return v
}

// isA reports whether t has the key k with a value of type T.
func isA[T any](t *table, k string) bool {
	if !t.has(k) {
		return false
	}
	_, ok := t.m[k].(T)
	return ok
}

// nonEmpty returns the string k, which must not be "" when present.
func nonEmpty(t *table, k, def string) string {
	v := t.str(k, def)
	if t.has(k) && t.m[k] == "" {
		t.errorf(k, "must not be empty")
	}
	return v
}

// required returns the string k, which must be present and not "".
func required(t *table, k string) string {
	if !t.has(k) {
		t.get(k) // known key, so that a typo is told its name
		t.errorf(k, "required")
		return ""
	}
	return nonEmpty(t, k, "")
}

// path returns the path k (or def), with "~" expanded, absolute and clean;
// "" when absent and def is "".
func (d *decoder) path(t *table, k, def string) string {
	p := nonEmpty(t, k, def)
	if p == "" {
		return ""
	}
	abs, err := expandPath(p, d.dir)
	if err != nil {
		if t == nil {
			// An absent table's default ("~/...") without a home
			// directory (cron, env -i): no path; whoever needs one
			// says so.
			return ""
		}
		t.errorf(k, "%v", err)
		return ""
	}
	return abs
}

// expandPath replaces a leading "~" with the home directory and makes p
// absolute relative to dir.
func expandPath(p, dir string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "~"+string(filepath.Separator)) {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return "", fmt.Errorf("cannot expand %q: home directory unknown", p)
		}
		p = filepath.Join(home, p[1:])
	} else if strings.HasPrefix(p, "~") {
		return "", fmt.Errorf("%q: only \"~\" and \"~/\" are expanded, not ~user", p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p), nil
}

// checkHost returns what is wrong with a host name, or "".
func checkHost(host string) string {
	switch {
	case host == "":
		return "must not be empty"
	case net.ParseIP(host) != nil:
		return ""
	case strings.ContainsFunc(host, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("/[]@", r)
	}):
		return fmt.Sprintf("must be a host name or IP address, not %q", host)
	case strings.Contains(host, ":"):
		if _, port, err := net.SplitHostPort(host); err == nil {
			return fmt.Sprintf("must not hold the port: set port = %s", port)
		}
		return fmt.Sprintf("must be a host name or IP address, not %q", host)
	}
	return ""
}

// isLoopback reports whether host is "localhost" or in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkFolderName returns what is wrong with a local folder name (UTF-8,
// "/" between levels, below the account's folder), or "".
func checkFolderName(name string) string {
	if name == "" {
		return "" // reported as empty
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "." || c == "..":
			return fmt.Sprintf("%q has a %q level: a folder is below the account's folder, like \"INBOX\" or \"Lists/pop\"", name, c)
		case c == "":
			return fmt.Sprintf("%q has an empty level (a leading, trailing or double \"/\")", name)
		case strings.ContainsFunc(c, unicode.IsControl):
			return fmt.Sprintf("%q holds a control character", name)
		}
	}
	return ""
}

// checkName returns what is wrong with an account name, which is also a
// directory name under store.path, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case strings.HasPrefix(name, "."):
		return `must not start with "."`
	case strings.ContainsAny(name, `/\`):
		return `must not contain "/" or "\"`
	case strings.ContainsFunc(name, unicode.IsControl):
		return "must not contain control characters"
	}
	return ""
}

var errSize = errors.New(`must be a number of bytes or a string like "10MB" or "512k"`)

// parseSize reads a size: an integer with an optional unit B, k, M or G
// (also kB/KiB, MB/MiB, GB/GiB, any case), all powers of 1024; "1.5M" works.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	var mult float64
	switch strings.ToLower(unit) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	default:
		return 0, errSize
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || f*mult >= math.MaxInt64 || math.IsNaN(f) {
		return 0, errSize
	}
	return int64(f * mult), nil
}
