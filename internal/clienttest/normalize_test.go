package clienttest

import (
	"strings"
	"testing"
)

// TestNormalize: what may legitimately differ normalises to the same line,
// what may not stays different.
func TestNormalize(t *testing.T) {
	same := [][2]string{
		{`* OK [UIDVALIDITY 1796462220] UIDs valid`, `* OK [UIDVALIDITY 7] ok`},
		{`a1 OK [COPYUID 17 3,1:2 4:6] Copy completed.`, `a1 OK [COPYUID 99 3,1,2 4,5,6] done`},
		{`a1 OK [COPYUID 17 1:3 4:6] x`, `a1 OK [COPYUID 99 1,2,3 4:6] y`},
		{`* 3 FETCH (UID 7 FLAGS (\Seen \Recent $X) RFC822.SIZE 10)`, `* 3 FETCH (UID 7 RFC822.SIZE 10 FLAGS ($X \Seen) MODSEQ (4))`},
		{`* 1 FETCH (UID 1 INTERNALDATE "05-Mar-2024 10:20:30 +0100")`, `* 1 FETCH (UID 1 INTERNALDATE " 5-Mar-2024 09:20:30 +0000")`},
		{`* LIST (\HasNoChildren \Subscribed) "/" "INBOX"`, `* LIST (\Subscribed \HasNoChildren) "/" INBOX`},
		{`* STATUS "Archive" (UIDVALIDITY 5 MESSAGES 2)`, `* STATUS Archive (MESSAGES 2 UIDVALIDITY 6)`},
		{`* SEARCH 3 1 2`, `* SEARCH 1 2 3`},
		{`* ESEARCH (TAG "a1") UID ALL 1:3,5`, `* ESEARCH (TAG "a1") UID ALL 1,2,3,5`},
		{`* ID ("name" "Dovecot")`, `* ID NIL`},
		{`* 1 FETCH (BODY[] {3}` + "\r\n" + `abc)`, `* 1 FETCH (BODY[] "abc")`},
		{`* FLAGS (\Seen \Answered)`, `* FLAGS (\Answered \Seen)`},
	}
	for _, c := range same {
		a, oka := normalize([]byte(c[0]))
		b, okb := normalize([]byte(c[1]))
		if oka != okb || a.text != b.text {
			t.Errorf("%q -> %q, %q -> %q: want the same", c[0], a.text, c[1], b.text)
		}
	}
	differ := [][2]string{
		{`* 1 FETCH (UID 1 ENVELOPE (NIL "" NIL NIL NIL NIL NIL NIL NIL NIL))`, `* 1 FETCH (UID 1 ENVELOPE ("" "" NIL NIL NIL NIL NIL NIL NIL NIL))`},
		{`* 1 FETCH (UID 1 FLAGS ())`, `* 1 FETCH (FLAGS () UID 1)`},
		{`* 1 FETCH (UID 1 BODY[] "NIL")`, `* 1 FETCH (UID 1 BODY[] NIL)`},
		{`a1 OK [COPYUID 17 1:2 4:5] x`, `a1 OK [COPYUID 17 1:2 5:6] x`},
		{`a1 NO [TRYCREATE] x`, `a1 NO x`},
		{`* 5 EXISTS`, `* 6 EXISTS`},
		{`* ID ("name" "x")`, `* ID ("name")`},
		{`* 1 FETCH (UID 1 INTERNALDATE "05-Mar-2024 10:20:30 +0100")`, `* 1 FETCH (UID 1 INTERNALDATE "05-Mar-2024 10:20:30 +0000")`},
	}
	for _, c := range differ {
		a, _ := normalize([]byte(c[0]))
		b, _ := normalize([]byte(c[1]))
		if a.text == b.text {
			t.Errorf("%q and %q both -> %q: want a difference", c[0], c[1], a.text)
		}
	}
	for _, dropped := range []string{`* OK Still here`, `* 3 RECENT`, `* CAPABILITY IMAP4rev1 IDLE`, `* OK [CLOSED] Previous mailbox closed.`} {
		if n, ok := normalize([]byte(dropped)); ok {
			t.Errorf("%q kept as %q, want it left out", dropped, n.text)
		}
	}
}

// TestOptionsNormalize: a difference declared legitimate by
// Options.Normalize is not reported; others still are.
func TestOptionsNormalize(t *testing.T) {
	step := Step{Line: 1, Conn: "A", Kind: ':', Text: "a1 SELECT INBOX"}
	ref := &Transcript{Records: []Record{{Step: step, Responses: [][]byte{[]byte("* OK [UNSEEN 2] x"), []byte("* 3 EXISTS"), []byte("a1 OK [READ-WRITE] done")}}}}
	got := &Transcript{Records: []Record{{Step: step, Responses: [][]byte{[]byte("* 3 EXISTS"), []byte("a1 OK [READ-WRITE] Select completed")}}}}
	if d := Compare(ref, got, nil); len(d) != 1 {
		t.Fatalf("without Normalize: %d differences, want 1", len(d))
	}
	dropUnseen := &Options{Normalize: func(l string) string {
		if strings.HasPrefix(l, "* OK [UNSEEN ") {
			return ""
		}
		return l
	}}
	if d := Compare(ref, got, dropUnseen); len(d) != 0 {
		t.Errorf("with Normalize dropping UNSEEN: %v", d)
	}
	got.Records[0].Responses[0] = []byte("* 4 EXISTS")
	if d := Compare(ref, got, dropUnseen); len(d) != 1 {
		t.Errorf("a wrong EXISTS count went unnoticed with Normalize set")
	}
}

// TestNormalizeMore: CLIENTBUG, STATUS RECENT and quoted HEADER.FIELDS
// names are left out of the comparison; the status itself is not.
func TestNormalizeMore(t *testing.T) {
	same := [][2]string{
		{`a1 BAD [CLIENTBUG] Syntax error`, `a1 BAD Error in IMAP command`},
		{`a1 OK [CLIENTBUG] Status on selected mailbox`, `a1 OK done`},
		{`* STATUS Archive (MESSAGES 1 RECENT 1)`, `* STATUS Archive (MESSAGES 1 RECENT 0)`},
		{`* 5 FETCH (UID 5 BODY[HEADER.FIELDS (TO SUBJECT)] "x")`, `* 5 FETCH (UID 5 BODY[HEADER.FIELDS ("TO" "SUBJECT")] "x")`},
	}
	for _, c := range same {
		a, _ := normalize([]byte(c[0]))
		b, _ := normalize([]byte(c[1]))
		if a.text != b.text {
			t.Errorf("%q -> %q, %q -> %q: want the same", c[0], a.text, c[1], b.text)
		}
	}
	differ := [][2]string{
		{`a1 NO Invalid mailbox name`, `a1 BAD [CLIENTBUG] Invalid mailbox name`},
		{`* STATUS Archive (MESSAGES 1 RECENT 1)`, `* STATUS Archive (MESSAGES 2 RECENT 1)`},
		{`* 5 FETCH (UID 5 BODY[HEADER.FIELDS (TO SUBJECT)] "x")`, `* 5 FETCH (UID 5 BODY[HEADER.FIELDS ("TO" "FROM")] "x")`},
	}
	for _, c := range differ {
		a, _ := normalize([]byte(c[0]))
		b, _ := normalize([]byte(c[1]))
		if a.text == b.text {
			t.Errorf("%q and %q both -> %q: want a difference", c[0], c[1], a.text)
		}
	}
}

// records makes a transcript of IMAP commands on connection A, each with
// its raw responses.
func records(cmds ...[]string) *Transcript {
	tr := &Transcript{}
	for i, c := range cmds {
		r := Record{Step: Step{Line: i + 1, Conn: "A", Kind: ':', Text: c[0]}}
		for _, l := range c[1:] {
			r.Responses = append(r.Responses, []byte(l))
		}
		tr.Records = append(tr.Records, r)
	}
	return tr
}

// TestCanonicalEvents: the same expunges and additions told in another
// order or with intermediate counts are the same; other expunges, or a
// count that falls without EXPUNGE, are not.
func TestCanonicalEvents(t *testing.T) {
	sel := []string{"a1 SELECT INBOX", "* 8 EXISTS", "a1 OK [READ-WRITE] x"}
	ref := records(sel,
		[]string{"a2 UID EXPUNGE 2:6", "* 6 EXPUNGE", "* 3 EXPUNGE", "* 2 EXPUNGE", "a2 OK x"},
		[]string{"a3 COPY 1:2 INBOX", "* 7 EXISTS", "a3 OK x"},
		[]string{"a4 NOOP", "* 7 EXPUNGE", "* 2 EXPUNGE", "* 6 EXISTS", "a4 OK x"})
	same := records(sel,
		[]string{"a2 UID EXPUNGE 2:6", "* 2 EXPUNGE", "* 2 EXPUNGE", "* 4 EXPUNGE", "a2 OK x"},
		[]string{"a3 COPY 1:2 INBOX", "* 6 EXISTS", "* 7 EXISTS", "a3 OK x"},
		[]string{"a4 NOOP", "* 2 EXPUNGE", "* 7 EXISTS", "* 6 EXPUNGE", "a4 OK x"})
	if d := Compare(ref, same, nil); len(d) != 0 {
		t.Errorf("the same changes told differently: %v", d)
	}
	wrong := records(sel,
		[]string{"a2 UID EXPUNGE 2:6", "* 2 EXPUNGE", "* 2 EXPUNGE", "* 2 EXPUNGE", "a2 OK x"}, // messages 2, 3, 4
		[]string{"a3 COPY 1:2 INBOX", "* 7 EXISTS", "* 6 EXISTS", "a3 OK x"},                   // EXISTS falls
		[]string{"a4 NOOP", "* 2 EXPUNGE", "* 7 EXISTS", "* 2 EXPUNGE", "a4 OK x"})
	d := Compare(ref, wrong, nil)
	if len(d) != 3 {
		t.Errorf("%d differences, want 3 (one per wrong command): %v", len(d), d)
	}
	if got := originalExpunges([]string{"1", "1"}); strings.Join(got, " ") != "2 1" {
		t.Errorf("imaplib expunge 1 1 -> %v, want 2 1", got)
	}
	if got := originalExpunges([]string{"1", "2"}); strings.Join(got, " ") == "2 1" {
		t.Errorf("imaplib expunge 1 2 (messages 1 and 3) taken as 2 1")
	}
}

// TestAcceptOptions: each option accepts its own shape only.
func TestAcceptOptions(t *testing.T) {
	o := &Options{ExtraUID: true, StoreEcho: true, ExtraCodes: []string{"NONEXISTENT"}}
	cases := []struct {
		cmd        string
		want, have []string
		ok         bool
	}{
		{"a1 NOOP", []string{"* 2 FETCH (FLAGS (\\Seen))"}, []string{"* 2 FETCH (UID 2 FLAGS (\\Seen))"}, true},
		{"a1 NOOP", []string{"* 2 FETCH (FLAGS (\\Seen))"}, []string{"* 2 FETCH (UID 2 FLAGS ())"}, false},
		{"a1 NOOP", []string{"* 2 FETCH (FLAGS (\\Seen))"}, []string{"* 2 FETCH (UID 2 UID-NOT-FIRST FLAGS (\\Seen))"}, false},
		{"a1 STORE 2 -FLAGS (\\Seen)", nil, []string{"* 2 FETCH (UID 2 FLAGS ())"}, true},
		{"a1 STORE 2 -FLAGS (\\Seen)", nil, []string{"* 2 FETCH (UID 2 FLAGS (\\Seen))"}, false},
		{"a1 STORE 2 -FLAGS (\\Seen)", nil, []string{"* 3 FETCH (UID 3 FLAGS ())"}, false},
		{"a1 STORE 2 -FLAGS.SILENT (\\Seen)", nil, []string{"* 2 FETCH (UID 2 FLAGS ())"}, false},
		{"a1 UID STORE 5 +FLAGS ($X)", nil, []string{"* 1 FETCH (UID 5 FLAGS ($X \\Seen))"}, true},
		{"a1 UID STORE 5 +FLAGS ($X)", nil, []string{"* 5 FETCH (UID 4 FLAGS ($X))"}, false},
		{"a1 STORE 1 FLAGS (\\Seen)", nil, []string{"* 1 FETCH (FLAGS (\\Seen \\Draft))"}, false},
		{"a1 STATUS Nowhere (MESSAGES)", []string{"a1 NO"}, []string{"a1 NO [NONEXISTENT]"}, true},
		{"a1 STATUS Nowhere (MESSAGES)", []string{"a1 NO"}, []string{"a1 BAD [NONEXISTENT]"}, false},
		{"a1 STATUS Nowhere (MESSAGES)", []string{"a1 NO"}, []string{"a1 NO [TRYCREATE]"}, false},
	}
	for _, c := range cases {
		got := o.accept(c.cmd, false, c.want, c.have)
		if equalLines(c.want, got) != c.ok {
			t.Errorf("%s: %q against %q: accepted %v, want %v", c.cmd, c.have, c.want, !c.ok, c.ok)
		}
	}
	// ReadOnlyStoreNO: only for a STORE after EXAMINE, only NO [CANNOT].
	ro := records([]string{"a1 EXAMINE INBOX", "* 1 EXISTS", "a1 OK [READ-ONLY] x"}, []string{"a2 STORE 1 +FLAGS (\\Seen)", "a2 OK x"},
		[]string{"a3 SELECT INBOX", "* 1 EXISTS", "a3 OK [READ-WRITE] x"}, []string{"a4 STORE 1 +FLAGS (\\Seen)", "a4 OK x"})
	roGot := records([]string{"a1 EXAMINE INBOX", "* 1 EXISTS", "a1 OK [READ-ONLY] x"}, []string{"a2 STORE 1 +FLAGS (\\Seen)", "a2 NO [CANNOT] read-only"},
		[]string{"a3 SELECT INBOX", "* 1 EXISTS", "a3 OK [READ-WRITE] x"}, []string{"a4 STORE 1 +FLAGS (\\Seen)", "a4 NO [CANNOT] read-only"})
	if d := Compare(ro, roGot, &Options{ReadOnlyStoreNO: true}); len(d) != 1 || d[0].Step.Text != "a4 STORE 1 +FLAGS (\\Seen)" {
		t.Errorf("ReadOnlyStoreNO: differences %v, want only a4's (after SELECT)", d)
	}
	// FlagKeywords: keywords out of FLAGS, a repeated FLAGS dropped, a
	// FLAGS without a system flag still differs.
	fo := &Options{FlagKeywords: true}
	ref := records([]string{"a1 SELECT INBOX", "* FLAGS (\\Seen \\Deleted $Label1)", "* 0 EXISTS", "a1 OK x"},
		[]string{"a2 STORE 1 +FLAGS ($New)", "* FLAGS (\\Seen \\Deleted $Label1 $New)", "a2 OK x"})
	got := records([]string{"a1 SELECT INBOX", "* FLAGS (\\Seen \\Deleted $Forwarded)", "* 0 EXISTS", "a1 OK x"},
		[]string{"a2 STORE 1 +FLAGS ($New)", "a2 OK x"})
	if d := Compare(ref, got, fo); len(d) != 0 {
		t.Errorf("FlagKeywords: %v", d)
	}
	got.Records[0].Responses[0] = []byte("* FLAGS (\\Seen $Forwarded)")
	if d := Compare(ref, got, fo); len(d) != 1 {
		t.Errorf("FlagKeywords hid a missing \\Deleted: %v", d)
	}
}

// TestRecentSearch: the results of SEARCH NEW (which only \Recent
// decides) are not compared, those of other searches are.
func TestRecentSearch(t *testing.T) {
	ref := records([]string{"a1 SEARCH NEW", "* SEARCH 1 2 3", "a1 OK x"}, []string{"a2 UID SEARCH NOT SEEN", "* SEARCH 1 2 3", "a2 OK x"})
	got := records([]string{"a1 SEARCH NEW", "* SEARCH", "a1 OK x"}, []string{"a2 UID SEARCH NOT SEEN", "* SEARCH 1 2", "a2 OK x"})
	d := Compare(ref, got, nil)
	if len(d) != 1 || d[0].Step.Text != "a2 UID SEARCH NOT SEEN" {
		t.Errorf("differences %v, want only a2's", d)
	}
}

// TestListAttrs: \HasChildren/\HasNoChildren count only where asked for
// or in a basic LIST; LSUB's extra attributes do not count; \Noselect and
// \NonExistent always do.
func TestListAttrs(t *testing.T) {
	ref := records([]string{`a1 LIST "" ("INBOX" "Work/*")`, `* LIST () "/" INBOX`, `* LIST (\NonExistent) "/" Work/Projects`, "a1 OK x"},
		[]string{`a2 LSUB "" "*"`, `* LSUB () "/" INBOX`, "a2 OK x"},
		[]string{`a3 LIST "" "%" RETURN (CHILDREN)`, `* LIST (\HasNoChildren) "/" INBOX`, "a3 OK x"},
		[]string{`a4 LIST "" "%"`, `* LIST (\HasNoChildren) "/" INBOX`, "a4 OK x"})
	got := records([]string{`a1 LIST "" ("INBOX" "Work/*")`, `* LIST (\HasNoChildren) "/" INBOX`, `* LIST (\HasChildren \Noselect) "/" Work/Projects`, "a1 OK x"},
		[]string{`a2 LSUB "" "*"`, `* LSUB (\HasNoChildren \Subscribed) "/" INBOX`, "a2 OK x"},
		[]string{`a3 LIST "" "%" RETURN (CHILDREN)`, `* LIST () "/" INBOX`, "a3 OK x"},
		[]string{`a4 LIST "" "%"`, `* LIST () "/" INBOX`, "a4 OK x"})
	ref.Records = append(ref.Records, records([]string{`a5 LIST (REMOTE) "" "%"`, `* LIST (\NonExistent) "/" Work`, "a5 OK x"}).Records...)
	got.Records = append(got.Records, records([]string{`a5 LIST (REMOTE) "" "%"`, `* LIST (\Noselect \NonExistent) "/" Work`, "a5 OK x"}).Records...)
	d := Compare(ref, got, nil)
	var at []string
	for _, x := range d {
		at = append(at, strings.Fields(x.Step.Text)[0])
	}
	if strings.Join(at, " ") != "a1 a3 a4" {
		t.Errorf("differences at %v, want a1 (\\Noselect for \\NonExistent), a3 and a4 (children asked for)", at)
	}
}

// TestInvalidNameBAD: BAD for NO is accepted only where a mailbox name is
// not valid modified UTF-7.
func TestInvalidNameBAD(t *testing.T) {
	for name, valid := range map[string]bool{"a&b": false, "&Jjo": false, "&AGE-": false, "&U,BTF2XlZyyKng-x&-y": true,
		"&-amp": true, "Entw&APw-rfe": true, "b&c": false, "&APw-&APw-": false, "&2D3cAA-": true, "&2D0-": false, "INBOX": true} {
		if validMUTF7(name) != valid {
			t.Errorf("validMUTF7(%q) = %v", name, !valid)
		}
	}
	o := &Options{InvalidNameBAD: true}
	if got := o.accept(`a1 CREATE "a&b"`, false, []string{"a1 NO"}, []string{"a1 BAD"}); !equalLines(got, []string{"a1 NO"}) {
		t.Errorf("invalid name: %q not accepted", got)
	}
	if got := o.accept(`a1 CREATE "Entw&APw-rfe"`, false, []string{"a1 NO"}, []string{"a1 BAD"}); equalLines(got, []string{"a1 NO"}) {
		t.Errorf("valid name: BAD for NO accepted")
	}
}

// TestFetchOrder: FETCH responses of different messages in another order
// are the same; those of one message in another order, or a FETCH moved
// across an EXPUNGE, are not.
func TestFetchOrder(t *testing.T) {
	sel := []string{"a1 SELECT INBOX", "* 3 EXISTS", "a1 OK x"}
	ref := records(sel, []string{"a2 NOOP", "* 1 FETCH (FLAGS (\\Seen))", "* 3 FETCH (FLAGS ())", "a2 OK x"},
		[]string{"a3 NOOP", "* 2 FETCH (FLAGS (\\Seen))", "* 2 FETCH (FLAGS ())", "a3 OK x"},
		[]string{"a4 NOOP", "* 1 FETCH (FLAGS ())", "* 1 EXPUNGE", "a4 OK x"})
	got := records(sel, []string{"a2 NOOP", "* 3 FETCH (FLAGS ())", "* 1 FETCH (FLAGS (\\Seen))", "a2 OK x"},
		[]string{"a3 NOOP", "* 2 FETCH (FLAGS ())", "* 2 FETCH (FLAGS (\\Seen))", "a3 OK x"},
		[]string{"a4 NOOP", "* 1 EXPUNGE", "* 1 FETCH (FLAGS ())", "a4 OK x"})
	d := Compare(ref, got, nil)
	var at []string
	for _, x := range d {
		at = append(at, strings.Fields(x.Step.Text)[0])
	}
	if strings.Join(at, " ") != "a3 a4" {
		t.Errorf("differences at %v, want a3 and a4", at)
	}
}

// TestNoID: BAD (and BYE) for ID is accepted only from a target declared
// without ID, and only for an ID command the reference answered.
func TestNoID(t *testing.T) {
	want := []string{"* ID <valid>", "a1 OK"}
	o := &Options{NoID: true}
	for _, have := range [][]string{{"a1 BAD"}, {"* BYE", "a1 BAD"}} {
		if got := o.accept(`a1 ID NIL`, false, want, have); !equalLines(got, want) {
			t.Errorf("%q not accepted", have)
		}
		if got := (&Options{}).accept(`a1 ID NIL`, false, want, have); equalLines(got, want) {
			t.Errorf("%q accepted without NoID", have)
		}
	}
	if got := o.accept(`a1 ID NIL`, false, want, []string{"* ID (\"name\")", "a1 OK"}); equalLines(got, want) {
		t.Errorf("a malformed ID response accepted")
	}
	if got := o.accept(`a1 NOOP`, false, []string{"a1 OK"}, []string{"a1 BAD"}); equalLines(got, []string{"a1 OK"}) {
		t.Errorf("BAD for another command accepted")
	}
}

// TestKnownDefects: a step listed as a known defect is not reported while
// it differs, and is reported once it no longer does; others still are.
func TestKnownDefects(t *testing.T) {
	ref := []ClientStep{{Name: "a", Normal: []string{"x"}}, {Name: "b", Normal: []string{"y"}}}
	got := []ClientStep{{Name: "a", Normal: []string{"x2"}}, {Name: "b", Normal: []string{"y2"}}}
	opts := &Options{KnownDefects: map[string]string{"imaplib/a": "why"}}
	if d := CompareClientSteps(ref, got, opts); len(d) != 1 || !strings.Contains(d[0], `"b"`) {
		t.Errorf("a known defect and an unknown difference: %q; want only b reported", d)
	}
	got[0].Normal = []string{"x"}
	if d := CompareClientSteps(ref, got, opts); len(d) != 2 || !strings.Contains(d[0], "answers as the reference now") {
		t.Errorf("a known defect fixed: %q; want it reported as fixed, and b", d)
	}
}
