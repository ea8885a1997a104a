package maildir

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestInfo(t *testing.T) {
	tests := []struct {
		f    Flags
		want string
	}{
		{0, "2,"},
		{FlagSeen, "2,S"},
		{FlagSeen | FlagFlagged, "2,FS"},
		{FlagAnswered | FlagDeleted | FlagDraft, "2,DRT"},
		{FlagSeen | FlagAnswered | FlagFlagged | FlagDeleted | FlagDraft | FlagPassed, "2,DFPRST"},
	}
	for _, tt := range tests {
		if got := tt.f.Info(); got != tt.want {
			t.Errorf("Flags(%b).Info() = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestParseInfo(t *testing.T) {
	tests := []struct {
		info string
		want Flags
	}{
		{"", 0},
		{"2,", 0},
		{"2,S", FlagSeen},
		{"2,SF", FlagSeen | FlagFlagged},
		{"2,FS", FlagSeen | FlagFlagged},
		{"2,abcS", FlagSeen},           // Dovecot keyword letters ignored
		{"2,XYZ", 0},                   // unknown letters ignored
		{"2,SS", FlagSeen},             // duplicates
		{"1,S", 0},                     // experimental info
		{"3,S", 0},                     // unknown version
		{"FS", FlagSeen | FlagFlagged}, // bare letters
		{"2,DFPRST", FlagSeen | FlagAnswered | FlagFlagged | FlagDeleted | FlagDraft | FlagPassed},
	}
	for _, tt := range tests {
		if got := ParseInfo(tt.info); got != tt.want {
			t.Errorf("ParseInfo(%q) = %q, want %q", tt.info, got.Info(), tt.want.Info())
		}
	}
}

func TestFlagsRoundTrip(t *testing.T) {
	for f := Flags(0); f < 1<<6; f++ {
		if got := ParseInfo(f.Info()); got != f {
			t.Errorf("ParseInfo(%q) = %q", f.Info(), got.Info())
		}
		got, kw := FlagsFromIMAP(f.IMAP())
		if got != f || len(kw) != 0 {
			t.Errorf("FlagsFromIMAP(%v) = %q, %q; want %q", f.IMAP(), got.Info(), kw, f.Info())
		}
	}
}

func TestFlagsFromIMAP(t *testing.T) {
	in := []imap.Flag{"\\seen", "$forwarded", "$Junk", "\\Recent", "$junk", "Work", "\\Answered", "\\*", "", "\\Unknown"}
	f, kw := FlagsFromIMAP(in)
	if want := FlagSeen | FlagPassed | FlagAnswered; f != want {
		t.Errorf("flags = %q, want %q", f.Info(), want.Info())
	}
	if want := []string{"$Junk", "Work"}; !slices.Equal(kw, want) {
		t.Errorf("keywords = %q, want %q", kw, want)
	}
	want := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagForwarded}
	if got := f.IMAP(); !slices.Equal(got, want) {
		t.Errorf("IMAP() = %v, want %v", got, want)
	}
	if got := Flags(0).IMAP(); got == nil || len(got) != 0 {
		t.Errorf("Flags(0).IMAP() = %#v, want empty non-nil", got)
	}
}
