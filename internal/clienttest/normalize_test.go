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
