package index

import (
	netmail "net/mail"
	"testing"
)

// dateCases are Date fields of the common form parseDate reads itself and
// of the others it leaves to net/mail.
var dateCases = []string{
	"Sat, 01 Jan 2022 08:21:27 +0000",
	"Mon, 7 Dec 2026 01:10:03 -0800",
	"Tue, 31 Feb 2026 23:59:60 +1400", // out of range: both refuse
	"Xyz, 01 Jan 2022 08:21:27 +0000", // no such day: both refuse
	"Sun, 01 Jan 2022 08:21:27 +0000", // the wrong day of the week: both take it
	"Sat, 01 Jan 2022 08:21:27 +0000 (UTC)",
	"Sat, 01 Jan 2022 08:21 +0000",
	"Sat, 01 Jan 22 08:21:27 +0000",
	"01 Jan 2022 08:21:27 +0000",
	" Sat, 01 Jan 2022 08:21:27 +0000",
	"Sat, 01 Jan 2022 08:21:27 +0000 ",
	"Sat, 01 Jan 2022\r\n 08:21:27 +0000",
	"Thu, 20 Nov 1997 09:55:06 MDT",
	"Sat, 01 Jan 2022 08:21:27 GMT",
	"Sat,  1 Jan 2022 08:21:27 +0000",
	"sat, 01 jan 2022 08:21:27 +0000",
	"",
	"garbage",
}

// TestParseDate: parseDate gives what net/mail.ParseDate gives.
func TestParseDate(t *testing.T) {
	for _, s := range dateCases {
		checkParseDate(t, s)
	}
}

// FuzzParseDate: parseDate gives what net/mail.ParseDate gives, for any
// field value.
func FuzzParseDate(f *testing.F) {
	for _, s := range dateCases {
		f.Add(s)
	}
	f.Fuzz(checkParseDate)
}

func checkParseDate(t *testing.T, s string) {
	got, gerr := parseDate(s)
	want, werr := netmail.ParseDate(s)
	if (gerr == nil) != (werr == nil) || !got.Equal(want) {
		t.Fatalf("parseDate(%q) = %v, %v; net/mail gives %v, %v", s, got, gerr, want, werr)
	}
	gn, goff := got.Zone()
	wn, woff := want.Zone()
	if gn != wn || goff != woff {
		t.Fatalf("parseDate(%q): zone %q %d; net/mail's %q %d", s, gn, goff, wn, woff)
	}
}
