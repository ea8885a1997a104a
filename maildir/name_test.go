package maildir

import (
	"strings"
	"testing"
)

var nameTests = []struct {
	name string
	ok   bool
	want Entry
}{
	{"1700000000.42_1.0011223344556677.host,U=17:2,FS", true,
		Entry{Key: "1700000000.42_1.0011223344556677.host", UID: 17, Flags: FlagFlagged | FlagSeen}},
	{"1700000000.42_1.00.host:2,", true, Entry{Key: "1700000000.42_1.00.host"}},
	// mutt / notmuch
	{"1700000000.M1P2Q3.host:2,RS", true, Entry{Key: "1700000000.M1P2Q3.host", Flags: FlagAnswered | FlagSeen}},
	// Dovecot, with size fields and keyword letters
	{"1700000000.M1P2.host,S=1234,W=1300:2,Sab", true, Entry{Key: "1700000000.M1P2.host", Flags: FlagSeen}},
	{"k,S=1,U=7,W=2:2,RS", true, Entry{Key: "k", UID: 7, Flags: FlagAnswered | FlagSeen}},
	{"k,U=x,U=9:2,", true, Entry{Key: "k", UID: 9}},
	// new/ without info
	{"1700000000.M1P2.host", true, Entry{Key: "1700000000.M1P2.host"}},
	{"k,U=5", true, Entry{Key: "k", UID: 5}},
	// odd but acceptable
	{"k,U=0:2,S", true, Entry{Key: "k", Flags: FlagSeen}},
	{"k,U=4294967296:2,", true, Entry{Key: "k"}},
	{"k,U=+5:2,", true, Entry{Key: "k"}},
	{"k,U=4294967295", true, Entry{Key: "k", UID: 4294967295}},
	{"k:1,S", true, Entry{Key: "k"}},
	{"k:2,S:2,F", true, Entry{Key: "k", Flags: FlagSeen | FlagFlagged}},
	{"k,", true, Entry{Key: "k"}},
	// not messages
	{"", false, Entry{}},
	{".dotfile", false, Entry{}},
	{".k:2,S", false, Entry{}},
	{":2,S", false, Entry{}},
	{",U=1:2,S", false, Entry{}},
	{"a/b:2,S", false, Entry{}},
	{"a\x00b", false, Entry{}},
}

func TestParseName(t *testing.T) {
	for _, tt := range nameTests {
		got, ok := ParseName(tt.name)
		if ok != tt.ok {
			t.Errorf("ParseName(%q) ok = %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		tt.want.Name = tt.name
		if got != tt.want {
			t.Errorf("ParseName(%q) = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestRename(t *testing.T) {
	tests := []struct {
		old      string
		uid      uint32
		f        Flags
		withInfo bool
		want     string
	}{
		{"k", 0, 0, false, "k"},
		{"k", 5, 0, false, "k,U=5"},
		{"k", 5, FlagSeen, true, "k,U=5:2,S"},
		{"k,U=5:2,S", 0, FlagSeen, true, "k:2,S"},
		{"k,U=5:2,S", 6, FlagFlagged | FlagSeen, true, "k,U=6:2,FS"},
		{"k,S=1234,W=1300:2,Sab", 3, FlagDraft, true, "k,S=1234,W=1300,U=3:2,Dab"},
		{"k,S=1,U=2,W=3:2,zS", 4, FlagSeen, false, "k,S=1,W=3,U=4:2,Sz"},
		{"k:2,S", 0, 0, true, "k:2,"},
		{"k:1,xyz", 1, FlagSeen, true, "k,U=1:2,S"},
		{"k,U=5", 0, 0, false, "k"},
		{"k:2,S!x", 0, FlagSeen, true, "k:2,Sx"},
	}
	for _, tt := range tests {
		if got := rename(tt.old, tt.uid, tt.f, tt.withInfo); got != tt.want {
			t.Errorf("rename(%q, %d, %q) = %q, want %q", tt.old, tt.uid, tt.f.Info(), got, tt.want)
		}
	}
	if got := formatName("k", 0, FlagSeen); got != "k:2,S" {
		t.Errorf("formatName = %q", got)
	}
	if got := formatName("k", 9, 0); got != "k,U=9:2," {
		t.Errorf("formatName = %q", got)
	}
}

func TestNewKey(t *testing.T) {
	seen := make(map[string]bool)
	for range 10000 {
		k := newKey()
		if !validKey(k) || seen[k] {
			t.Fatalf("newKey() = %q: invalid or repeated", k)
		}
		seen[k] = true
		if strings.Count(k, ".") < 3 || !strings.Contains(k, "_") {
			t.Fatalf("newKey() = %q: unexpected shape", k)
		}
		e, ok := ParseName(formatName(k, 1, FlagSeen))
		if !ok || e.Key != k || e.UID != 1 || e.Flags != FlagSeen {
			t.Fatalf("ParseName(formatName(%q)) = %+v, %v", k, e, ok)
		}
	}
	for _, tt := range [][2]string{
		{"", "localhost"},
		{"mail.example.org", "mail.example.org"},
		{"a/b:c,d e", "a_b_c_d_e"},
		{".x", "_x"},
		{"hôst", "h__st"},
	} {
		if got := sanitizeHost(tt[0]); got != tt[1] {
			t.Errorf("sanitizeHost(%q) = %q, want %q", tt[0], got, tt[1])
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, tt := range nameTests {
		f.Add(tt.name, uint32(3), uint8(FlagSeen))
	}
	f.Fuzz(func(t *testing.T, name string, uid uint32, fl uint8) {
		e, ok := ParseName(name)
		if !ok {
			return
		}
		if !validKey(e.Key) || !matchKey(name, e.Key) || e.Name != name {
			t.Fatalf("ParseName(%q) = %+v: bad key", name, e)
		}
		flags := Flags(fl) & (1<<6 - 1)
		for _, withInfo := range []bool{true, false} {
			n := rename(name, uid, flags, withInfo)
			e2, ok := ParseName(n)
			if !ok || e2.Key != e.Key || e2.UID != uid || !matchKey(n, e.Key) {
				t.Fatalf("rename(%q, %d) = %q parses as %+v, %v", name, uid, n, e2, ok)
			}
			if (withInfo || strings.Contains(name, ":")) && e2.Flags != flags {
				t.Fatalf("rename(%q, %q) = %q has flags %q", name, flags.Info(), n, e2.Flags.Info())
			}
			if strings.ContainsAny(n, "/\x00") {
				t.Fatalf("rename(%q) = %q", name, n)
			}
		}
	})
}
