package configs

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1234", 1234, true},
		{"512k", 512 << 10, true},
		{"512 KiB", 512 << 10, true},
		{"10MB", 10 << 20, true},
		{"1.5m", 3 << 19, true},
		{"2G", 2 << 30, true},
		{"100b", 100, true},
		{"", 0, false},
		{"MB", 0, false},
		{"-1", 0, false},
		{"1e6", 0, false},
		{"10XB", 0, false},
		{"1.2.3k", 0, false},
		{"99999999999G", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost.": true, "127.0.0.1": true, "127.255.0.9": true, "::1": true,
		"::ffff:127.0.0.1": true, "128.0.0.1": false, "localhost.example.org": false, "::2": false,
		"10.0.0.1": false, "example.org": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}

func TestExpandPath(t *testing.T) {
	t.Setenv("HOME", "/home/me")
	for in, want := range map[string]string{
		"~": "/home/me", "~/Mail": "/home/me/Mail", "/abs/../x": "/x", "rel/dir": "/cfg/rel/dir", "~~": "",
	} {
		got, err := expandPath(in, "/cfg")
		if got != want || (err != nil) != (want == "") {
			t.Errorf("expandPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestLineIndex(t *testing.T) {
	doc := `top = 1
[[accounts]]
name = "a"
[accounts.smtp]
host = "h"
[[accounts]]
name = "b"
folders = [
  "x",
  "y",
]
a.b."c d" = 1
inline = { k = { deep = 2 } }
[[accounts.x]]
[[accounts.x]]
v = 1
`
	x := indexLines([]byte(doc))
	for path, want := range map[string]int{
		"top": 1, "accounts[1]": 2, "accounts[1].name": 3, "accounts[1].smtp": 4, "accounts[1].smtp.host": 5,
		"accounts[2]": 6, "accounts[2].folders": 8, "accounts[2].folders[2]": 10,
		"accounts[2].a.b": 12, `accounts[2].a.b."c d"`: 12, "accounts[2].inline.k.deep": 13,
		"accounts[2].x[1]": 14, "accounts[2].x[2].v": 16,
		"accounts[2].missing": 6, `accounts[2].a.b."c d".more`: 12, "nothing": 0,
	} {
		if got := x.line(path); got != want {
			t.Errorf("line(%s) = %d, want %d", path, got, want)
		}
	}
}

func TestBackupNext(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	at := time.Date(2025, 3, 5, 10, 15, 0, 0, loc) // a Wednesday
	tests := []struct {
		schedule string
		want     time.Time
	}{
		{"", time.Time{}},
		{"hourly", time.Date(2025, 3, 5, 11, 0, 0, 0, loc)},
		{"daily 10:15", time.Date(2025, 3, 6, 10, 15, 0, 0, loc)},
		{"daily 23:59", time.Date(2025, 3, 5, 23, 59, 0, 0, loc)},
		{"weekly wed 09:00", time.Date(2025, 3, 12, 9, 0, 0, 0, loc)},
		{"weekly Wednesday 11:00", time.Date(2025, 3, 5, 11, 0, 0, 0, loc)},
		{"weekly mon 02:30", time.Date(2025, 3, 10, 2, 30, 0, 0, loc)},
		{"monthly", time.Time{}},
	}
	for _, tt := range tests {
		b := Backup{Schedule: tt.schedule}
		if got := b.Next(at); !got.Equal(tt.want) {
			t.Errorf("Next(%q) = %v, want %v", tt.schedule, got, tt.want)
		}
	}
	for _, bad := range []string{"daily", "daily 24:00", "weekly xyz 01:00", "weekly mo 01:00", "hourly 5", "every 5m"} {
		if _, err := parseSchedule(bad); err == nil {
			t.Errorf("parseSchedule(%q) accepted", bad)
		}
	}
}
