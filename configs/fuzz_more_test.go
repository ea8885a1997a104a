package configs

import (
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin and America/St_Johns wherever the test runs
	"unicode"
)

// Fuzz targets for the value parsers of the config: sizes, backup
// schedules and their next time, account names. Each checks against a
// reference written another way.

// parseSizeRef is parseSize read off its documentation: a decimal number
// (digits and at most one '.') and an optional unit, any case, spaces
// around and between.
func parseSizeRef(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	units := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
	numRE := regexp.MustCompile(`^([0-9]+\.?[0-9]*|\.[0-9]+)$`)
	for u, mult := range units {
		if len(s) < len(u) || !strings.EqualFold(s[len(s)-len(u):], u) {
			continue
		}
		num := strings.TrimSpace(s[:len(s)-len(u)])
		if !numRE.MatchString(num) {
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f*mult >= math.MaxInt64 {
			continue
		}
		return int64(f * mult), true
	}
	return 0, false
}

// FuzzParseSize: sizes parse as the reference says, are never negative,
// and a whole number of a unit is exact.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10MB", "512k", "1.5M", " 2 GiB ", "0", "1e3", "-1", ".5k", "5.", "1.2.3", "k", "", "99999999999G", "1 0", "7 b", "3KIB", "1\u00a0mb"} {
		f.Add(s, uint32(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, whole uint32, unit uint8) {
		n, err := parseSize(s)
		want, ok := parseSizeRef(s)
		if ok != (err == nil) || n != want {
			t.Fatalf("parseSize(%q) = %d, %v; want %d, %v", s, n, err, want, ok)
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		names := []string{"", "B", "k", "KB", "KiB", "M", "mb", "MiB", "G", "gb", "GIB"}
		mults := []int64{1, 1, 1 << 10, 1 << 10, 1 << 10, 1 << 20, 1 << 20, 1 << 20, 1 << 30, 1 << 30, 1 << 30}
		i := int(unit) % len(names)
		text := strconv.FormatUint(uint64(whole), 10) + names[i]
		if n, err := parseSize(text); err != nil || n != int64(whole)*mults[i] {
			t.Fatalf("parseSize(%q) = %d, %v; want %d", text, n, err, int64(whole)*mults[i])
		}
	})
}

var (
	timeRE  = `([01]?[0-9]|2[0-3]):([0-5][0-9])`
	schedRE = regexp.MustCompile(`^(?:hourly|daily ` + timeRE + `|weekly (sun|mon|tue|wed|thu|fri|sat|sunday|monday|tuesday|wednesday|thursday|friday|saturday) ` + timeRE + `)$`)
)

// FuzzSchedule: a schedule is valid exactly as the documented grammar says,
// and Next gives, in any time zone (daylight saving time included), the
// first scheduled time after the given one.
func FuzzSchedule(f *testing.F) {
	for _, s := range []string{"", "hourly", "daily 03:30", "Daily 3:30", "weekly sun 02:30", "weekly Sunday 23:59", "weekly sundays 1:00",
		"daily 24:00", "daily 2:30 ", "  weekly   mon   0:00", "monthly 1", "daily 02:30am", "weekly sund 1:00"} {
		f.Add(s, int64(1711846800), uint8(1)) // 2024-03-31, when Europe/Berlin skips 02:00-03:00
		f.Add(s, int64(1730595600), uint8(2)) // 2024-11-03, when America/St_Johns repeats 00:00-01:00
	}
	zones := []*time.Location{time.UTC, mustZone("Europe/Berlin"), mustZone("America/St_Johns"), time.FixedZone("", 13*3600+45*60)}
	f.Fuzz(func(t *testing.T, s string, sec int64, zone uint8) {
		sc, err := parseSchedule(s)
		norm := strings.Join(strings.Fields(strings.ToLower(s)), " ")
		m := schedRE.FindStringSubmatch(norm)
		if (err == nil) != (m != nil || norm == "") {
			t.Fatalf("parseSchedule(%q) = %+v, %v; grammar says %v", s, sc, err, m != nil)
		}
		if err != nil {
			return
		}
		// From 1970 to 2200.
		sec = ((sec % 7258118400) + 7258118400) % 7258118400
		loc := zones[int(zone)%len(zones)]
		now := time.Unix(sec, int64(zone)*1e6).In(loc)
		next := (&Backup{Schedule: s}).Next(now)
		if norm == "" {
			if !next.IsZero() {
				t.Fatalf("Next with no schedule = %v", next)
			}
			return
		}
		if !next.After(now) || next.Location() != loc {
			t.Fatalf("schedule %q: Next(%v) = %v", s, now, next)
		}
		// next is a scheduled time, and the one before it is not after now.
		y, mo, d := next.Date()
		var at, prev time.Time
		switch {
		case sc.every == "hourly":
			at = time.Date(y, mo, d, next.Hour(), 0, 0, 0, loc)
			prev = at.Add(-time.Hour)
		case sc.every == "daily":
			at = time.Date(y, mo, d, sc.hour, sc.minute, 0, 0, loc)
			prev = time.Date(y, mo, d-1, sc.hour, sc.minute, 0, 0, loc)
		default:
			at = time.Date(y, mo, d, sc.hour, sc.minute, 0, 0, loc)
			prev = time.Date(y, mo, d-7, sc.hour, sc.minute, 0, 0, loc)
			if next.Weekday() != sc.weekday && !at.Equal(next) {
				t.Fatalf("schedule %q: Next(%v) = %v, a %v", s, now, next, next.Weekday())
			}
		}
		wantH, wantM := 0, 0
		if sc.every != "hourly" {
			wantH, wantM = mustAtoi(m[1]+m[4]), mustAtoi(m[2]+m[5])
		}
		if sc.hour != wantH || sc.minute != wantM {
			t.Fatalf("parseSchedule(%q) = %+v", s, sc)
		}
		if !next.Equal(at) || prev.After(now) {
			t.Fatalf("schedule %q: Next(%v) = %v; the scheduled time that day is %v, the one before %v", s, now, next, at, prev)
		}
	})
}

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// FuzzCheckName: an account name is accepted exactly when it is one safe
// directory name below the store: not empty, not hidden (so not "." or
// ".."), no separator, no control character.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"work", "", ".", "..", ".hidden", "a/b", `a\b`, "a\x00b", "a\nb", "ok name", "ü", "a\u0085b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		problem := checkName(name)
		ok := name != "" && name[0] != '.' && !strings.ContainsAny(name, `/\`) &&
			!strings.ContainsFunc(name, unicode.IsControl)
		if ok != (problem == "") {
			t.Fatalf("checkName(%q) = %q", name, problem)
		}
		if ok {
			p := filepath.Join("/store", name)
			if filepath.Dir(p) != "/store" || filepath.Base(p) != name {
				t.Fatalf("account %q is at %q", name, p)
			}
		}
	})
}
