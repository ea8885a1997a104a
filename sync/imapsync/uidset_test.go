package imapsync

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/imapscript"
)

// boundedRun runs fn and fails the test if it takes longer than limit or
// allocates more than maxAlloc bytes: a hostile answer must cost what it
// weighs, not what it claims.
func boundedRun(t *testing.T, limit time.Duration, maxAlloc uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("still running after %v", limit)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > maxAlloc {
		t.Fatalf("allocated %d bytes, want at most %d", n, maxAlloc)
	}
}

// TestSearchAllHostile: readSearchAll against a scripted server whose SEARCH
// and ESEARCH answers hold UID 4294967295, huge ranges, "*" and more UIDs
// than the folder's EXISTS. Nothing is expanded beyond the folder's size:
// each call ends at once in bounded memory, with the UIDs or a clear error.
func TestSearchAllHostile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		esearch bool
		exists  int
		answer  string // the untagged answer to UID SEARCH
		want    []uint32
		wantErr string
	}{
		{"plain/ok", false, 3, "* SEARCH 1 2 7", []uint32{1, 2, 7}, ""},
		{"plain/max-uid", false, 3, "* SEARCH 1 2 4294967295", []uint32{1, 2, 4294967295}, ""},
		{"plain/zero", false, 3, "* SEARCH 1 0", nil, "not a list of UIDs"},
		// A message delivered during the run may be in the answer before
		// its EXISTS reaches us.
		{"plain/arrived", false, 2, "* SEARCH 1 2 3", []uint32{1, 2, 3}, ""},
		{"esearch/too-many", true, 5, `* ESEARCH (TAG "TAG") UID ALL 1:1006`, nil, "1006 UIDs for a folder of 5 messages"},
		{"esearch/ok", true, 4, `* ESEARCH (TAG "TAG") UID ALL 1:3,4294967295`, []uint32{1, 2, 3, 4294967295}, ""},
		{"esearch/max-range", true, 3, `* ESEARCH (TAG "TAG") UID ALL 4294967290:4294967295`, []uint32{4294967290, 4294967291, 4294967292, 4294967293, 4294967294, 4294967295}, ""},
		{"esearch/everything", true, 3, `* ESEARCH (TAG "TAG") UID ALL 1:4294967295`, nil, "4294967295 UIDs for a folder of 3 messages"},
		{"esearch/many-ranges", true, 5, `* ESEARCH (TAG "TAG") UID ALL 1:2000000000,2000000002:4294967295`, nil, "for a folder of 5 messages"},
		{"esearch/empty", true, 0, `* ESEARCH (TAG "TAG") UID`, []uint32{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caps := "IMAP4rev1"
			if tc.esearch {
				caps += " ESEARCH"
			}
			conn := imapscript.Server(t, "* OK [CAPABILITY "+caps+"] ready", func(cmd string) []string {
				switch {
				case strings.HasPrefix(cmd, "SELECT") || strings.HasPrefix(cmd, "EXAMINE"):
					return []string{fmt.Sprintf("* %d EXISTS", tc.exists), "* OK [UIDVALIDITY 1] x", "TAG OK [READ-ONLY] done"}
				case strings.HasPrefix(cmd, "UID SEARCH"):
					return []string{tc.answer, "TAG OK done"}
				}
				return []string{"TAG BAD what?"}
			})
			c := imapclient.New(conn, nil)
			defer c.Close()
			if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			var got []uint32
			var err error
			boundedRun(t, 5*time.Second, 1<<20, func() { got, err = readSearchAll(c, startSearchAll(c)) })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("readSearchAll = %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("readSearchAll = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestMovedUIDHostile: the COPYUID of a one-message MOVE is read without
// expanding its sets; a set of more than one UID, "*" or another source
// UID gives no UID (the copy is matched by content), at once.
func TestMovedUIDHostile(t *testing.T) {
	set := func(s string) imap.NumSet {
		if s == "" {
			return nil
		}
		var u imap.UIDSet
		for _, part := range strings.Split(s, ",") {
			lo, hi, _ := strings.Cut(part, ":")
			a, b := parseU(lo), parseU(hi)
			if hi == "" {
				b = a
			}
			u = append(u, imap.UIDRange{Start: imap.UID(a), Stop: imap.UID(b)})
		}
		return u
	}
	for _, tc := range []struct {
		src, dst string
		want     uint32
		ok       bool
	}{
		{"7", "12", 12, true},
		{"7", "4294967295", 4294967295, true},
		{"7", "1:4294967295", 0, false},
		{"7", "4294967295:4294967295,1:2", 0, false},
		{"1:4294967295", "12", 0, false},
		{"8", "12", 0, false},
		{"7", "", 0, false},
	} {
		data := &imapclient.MoveData{UIDValidity: 1, SourceUIDs: set(tc.src), DestUIDs: set(tc.dst)}
		var got uint32
		var ok bool
		boundedRun(t, 5*time.Second, 1<<20, func() { got, ok = movedUID(data, 7) })
		if got != tc.want || ok != tc.ok {
			t.Errorf("movedUID(%s -> %s) = %d, %v; want %d, %v", tc.src, tc.dst, got, ok, tc.want, tc.ok)
		}
	}
}

func parseU(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// TestCollectBounded: a server that answers the Message-ID header section
// of an identity FETCH with a literal of 64 MiB is refused before a byte
// of it is read, with a clear error, in bounded memory.
func TestCollectBounded(t *testing.T) {
	const huge = 64 << 20
	conn := imapscript.Server(t, "* OK [CAPABILITY IMAP4rev1] ready", func(cmd string) []string {
		switch {
		case strings.HasPrefix(cmd, "SELECT") || strings.HasPrefix(cmd, "EXAMINE"):
			return []string{"* 1 EXISTS", "* OK [UIDVALIDITY 1] x", "TAG OK [READ-ONLY] done"}
		case strings.HasPrefix(cmd, "UID FETCH"):
			return []string{
				fmt.Sprintf(`* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 100 INTERNALDATE "01-Jan-2026 00:00:00 +0000" BODY[HEADER.FIELDS (MESSAGE-ID)] {%d}`, huge),
				fmt.Sprintf("LITERAL %d", huge), ")", "TAG OK done"}
		}
		return []string{"TAG BAD what?"}
	})
	c := imapclient.New(conn, nil)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var err error
	boundedRun(t, 10*time.Second, 4<<20, func() { _, err = fetchMeta(c, 1, true) })
	if err == nil || !strings.Contains(err.Error(), "where a header was asked for") {
		t.Fatalf("fetchMeta = %v; want the section refused", err)
	}
}

// TestPairUIDs: a COPYUID after a MOVE of several messages maps each
// source UID to its destination UID in order; sets of another size than
// the messages moved (or holding "*") are refused without being walked.
func TestPairUIDs(t *testing.T) {
	set := func(rs ...imap.UIDRange) imap.UIDSet { return imap.UIDSet(rs) }
	got, ok := pairUIDs(set(imap.UIDRange{Start: 3, Stop: 4}, imap.UIDRange{Start: 9, Stop: 9}), set(imap.UIDRange{Start: 20, Stop: 22}), 3)
	if !ok || fmt.Sprint(got) != "map[3:20 4:21 9:22]" {
		t.Errorf("pairUIDs: %v %v", got, ok)
	}
	for _, tc := range []struct{ src, dst imap.UIDSet }{
		{set(imap.UIDRange{Start: 1, Stop: 4294967295}), set(imap.UIDRange{Start: 1, Stop: 3})},
		{set(imap.UIDRange{Start: 1, Stop: 3}), set(imap.UIDRange{Start: 7, Stop: 0})},
		{set(imap.UIDRange{Start: 1, Stop: 2}), set(imap.UIDRange{Start: 7, Stop: 9})},
	} {
		boundedRun(t, time.Second, 1<<20, func() {
			if got, ok := pairUIDs(tc.src, tc.dst, 3); ok {
				t.Errorf("pairUIDs(%v, %v): %v, want refused", tc.src, tc.dst, got)
			}
		})
	}
}

// TestMetaIncomplete: a message of an identity FETCH that comes without
// its header section or its size (an unsolicited FETCH of a flag change
// that go-imap hands to the command, whose own answer for that UID then
// goes elsewhere) makes the answer incomplete, so that matchFresh asks
// again instead of matching against a blank identity.
func TestMetaIncomplete(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  bool
	}{
		{"whole", []string{
			`* 1 FETCH (UID 5 FLAGS () RFC822.SIZE 100 INTERNALDATE "01-Jan-2026 00:00:00 +0000" BODY[HEADER.FIELDS (MESSAGE-ID)] {19}`,
			"Message-ID: <a@b>", ")"}, true},
		{"flags only", []string{`* 1 FETCH (UID 5 FLAGS (\Seen))`}, false},
		{"no section", []string{`* 1 FETCH (UID 5 FLAGS () RFC822.SIZE 100 INTERNALDATE "01-Jan-2026 00:00:00 +0000")`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := imapscript.Server(t, "* OK [CAPABILITY IMAP4rev1] ready", func(cmd string) []string {
				switch {
				case strings.HasPrefix(cmd, "SELECT") || strings.HasPrefix(cmd, "EXAMINE"):
					return []string{"* 1 EXISTS", "* OK [UIDVALIDITY 1] x", "TAG OK [READ-ONLY] done"}
				case strings.HasPrefix(cmd, "UID FETCH"):
					return append(slices.Clone(tc.lines), "TAG OK done")
				}
				return []string{"TAG BAD what?"}
			})
			c := imapclient.New(conn, nil)
			defer c.Close()
			if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			msgs, complete, err := startMeta(c, imap.UIDSetNum(5), true).read(c, 1)
			if err != nil || complete != tc.want || msgs[5] == nil {
				t.Fatalf("read = %v, complete %v, %v; want message 5, complete %v", msgs, complete, err, tc.want)
			}
			if tc.want && msgs[5].messageID != "a@b" {
				t.Errorf("Message-ID %q, want a@b", msgs[5].messageID)
			}
		})
	}
}
