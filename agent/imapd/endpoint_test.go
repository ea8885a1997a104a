package imapd

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

const msgPlain = "From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: hello there\r\nMessage-ID: <one@example.org>\r\nDate: Tue, 03 Nov 2026 10:00:00 +0000\r\n\r\nfirst body\r\nline two\r\n"

const msgMulti = "From: carl@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b1--\r\n"

// step is one step of a client script: imaplib's result and the untagged
// responses that came with it.
type step struct {
	Typ      string
	Data     json.RawMessage
	Untagged map[string][]string
}

// flat returns the step's data as strings (imaplib's tuples flattened).
func (s step) flat() []string {
	var raw []any
	if err := json.Unmarshal(s.Data, &raw); err != nil {
		var one string
		json.Unmarshal(s.Data, &one)
		return []string{one}
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			out = append(out, v)
		case nil:
		default:
			out = append(out, fmt.Sprint(v))
		}
	}
	walk(raw)
	return out
}

func TestEndpointBasic(t *testing.T) {
	st, fs := testStore(t, "INBOX", "Archive")
	deliver(t, st, fs["INBOX"], 101, msgPlain, 0)
	deliver(t, st, fs["INBOX"], 102, msgMulti, maildir.FlagSeen)
	_, addr := startServer(t, st)
	var out map[string]step
	python(t, "basic.py", addr, &out)
	get := func(name, typ string) step {
		t.Helper()
		s, ok := out[name]
		if !ok {
			t.Fatalf("step %s missing", name)
		}
		if s.Typ != typ {
			t.Errorf("%s: %s %s, want %s", name, s.Typ, s.Data, typ)
		}
		return s
	}
	same := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	get("badlogin", "ERR")
	login := get("login", "OK").flat()[0]
	for _, c := range []string{"IMAP4rev2", "IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "SPECIAL-USE", "LIST-EXTENDED",
		"LIST-STATUS", "STATUS=SIZE", "CHILDREN", "APPENDLIMIT=", "UNSELECT", "ENABLE", "LITERAL+", "ESEARCH", "SASL-IR"} {
		if !strings.Contains(login, c) {
			t.Errorf("capability %s missing from %q", c, login)
		}
	}
	same("list", get("list", "OK").flat(), []string{`(\HasNoChildren) "/" "Archive"`, `(\HasNoChildren) "/" INBOX`})
	sel := get("select", "OK")
	same("select EXISTS", sel.Untagged["EXISTS"], []string{"2"})
	same("select UIDVALIDITY", sel.Untagged["UIDVALIDITY"], []string{fmt.Sprint(fs["INBOX"].LocalUIDValidity)})
	same("fetchall", get("fetchall", "OK").flat(), []string{
		`1 (UID 1 FLAGS () INTERNALDATE " 3-Nov-2026 10:20:30 +0000" RFC822.SIZE 166 BODY[] {166}`, msgPlain, ")",
		`2 (UID 2 FLAGS (\Seen) INTERNALDATE " 3-Nov-2026 10:20:30 +0000" RFC822.SIZE 214 BODY[] {214}`, msgMulti, ")"})
	same("sections", get("sections", "OK").flat(), []string{
		`2 (UID 2 BODY[HEADER.FIELDS ("Subject")] {18}`, "Subject: parts\r\n\r\n",
		` BODY[TEXT] {107}`, msgMulti[strings.Index(msgMulti, "\r\n\r\n")+4:],
		` BODY[1] {8}`, "part one",
		` BODY[2.MIME] {27}`, "Content-Type: text/html\r\n\r\n",
		` BODY[]<5> {10}`, " carl@exam",
		` BODY[HEADER] {107}`, msgMulti[:strings.Index(msgMulti, "\r\n\r\n")+4], ")"})
	// A part without Content-Type is text/plain; charset=us-ascii (RFC 2045, 5.2), as Dovecot says.
	same("envelope", get("envelope", "OK").flat(), []string{`1 (UID 1 ENVELOPE ("Tue, 03 Nov 2026 10:00:00 +0000" "hello there" (("Ann" NIL "ann" "example.org")) (("Ann" NIL "ann" "example.org")) (("Ann" NIL "ann" "example.org")) ((NIL NIL "bob" "example.org")) NIL NIL NIL "<one@example.org>") BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 22 2 NIL NIL NIL NIL))`})
	same("read", get("read", "OK").flat(), []string{`1 (UID 1 FLAGS (\Seen) BODY[TEXT] {22}`, "first body\r\nline two\r\n", ")"})
	same("store", get("store", "OK").flat(), []string{`1 (UID 1 FLAGS (\Seen \Flagged $Work))`})
	if s := get("storesilent", "OK"); len(s.Untagged) != 0 {
		t.Errorf("STORE .SILENT answered %v", s.Untagged)
	}
	same("search subject", get("search_subject", "OK").flat(), []string{"1"})
	same("search flagged", get("search_flagged", "OK").flat(), []string{"1"})
	same("uid search unanswered", get("search_unanswered", "OK").flat(), []string{"1"})
	same("search 2:*", get("search_seq", "OK").flat(), []string{"2"})
	app := get("append", "OK")
	same("append", app.flat(), []string{fmt.Sprintf("[APPENDUID %d 3] APPEND completed", fs["INBOX"].LocalUIDValidity)})
	same("append EXISTS", app.Untagged["EXISTS"], []string{"3"})
	same("copy", get("copy_other", "OK").flat(), []string{fmt.Sprintf("[COPYUID %d 1 1] COPY completed", fs["Archive"].LocalUIDValidity)})
	same("copy into the selected mailbox: EXISTS", get("copy_self", "OK").Untagged["EXISTS"], []string{"4"})
	mv := get("move", "OK")
	same("move: EXPUNGE", mv.Untagged["EXPUNGE"], []string{"2"})
	same("move: COPYUID", mv.Untagged["COPYUID"], []string{fmt.Sprintf("%d 2 2", fs["Archive"].LocalUIDValidity)})
	same("expunge", get("expunge", "OK").flat(), []string{"1"})
	same("after", get("after", "OK").flat(), []string{`1 (UID 3 FLAGS (\Seen))`, `2 (UID 4 FLAGS (\Seen \Flagged $Work))`})
	same("status", get("status", "OK").flat(), []string{fmt.Sprintf(`"Archive" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY %d UNSEEN 0)`, fs["Archive"].LocalUIDValidity)})
	get("copy_missing", "NO")
	get("create", "OK")
	get("rename", "OK")
	same("list after rename", get("list2", "OK").flat(), []string{`(\Noselect \HasChildren) "/" "Projects"`, `(\HasNoChildren) "/" "Projects/Done"`})
	get("unsubscribe", "OK")
	same("lsub after unsubscribe", get("lsub2", "OK").flat(), []string{`(\HasNoChildren \Subscribed) "/" INBOX`,
		`(\HasNoChildren \Subscribed) "/" "Projects/Done"`})
	same("lsub %", get("lsub3", "OK").flat(), []string{`(\HasNoChildren \Subscribed) "/" INBOX`, `(\NonExistent \Noselect \HasChildren) "/" "Projects"`})
	get("delete", "OK")
	same("list after delete", get("list3", "OK").flat(), []string{`(\HasNoChildren) "/" "Archive"`, `(\HasNoChildren) "/" INBOX`})
	get("examine", "OK")
	get("ro_store", "NO")
	if f := get("ro_fetch", "OK").Untagged["FETCH"]; len(f) != 0 {
		t.Errorf("FETCH BODY[] after EXAMINE changed flags: %q", f)
	}

	checkQueued(t, st, fs)
}

// checkQueued checks what TestEndpointBasic queued upstream: the moved
// message (upstream UID 102) and the expunged one (101) as intents; the
// copies and the appended message as rows without a UID.
func checkQueued(t *testing.T, st *index.Store, fs map[string]*index.Folder) {
	t.Helper()
	var intents []index.Intent
	var pending int
	var moved []*index.Message
	st.Read(context.Background(), func(tx *index.ReadTx) error {
		in, err := tx.Intents(fs["INBOX"].ID)
		intents = in
		moved, _ = tx.LocalMessages(fs["Archive"].ID, []uint32{2})
		for _, f := range fs {
			_, p, _ := tx.SyncCounts(f.ID)
			pending += p
		}
		return err
	})
	var got []string
	for _, in := range intents {
		got = append(got, fmt.Sprintf("%s %d %s", in.Op, in.Message, in.Arg))
	}
	if len(moved) != 1 || moved[0].UID != 0 {
		t.Fatalf("the moved message in Archive: %v", moved)
	}
	if want := []string{fmt.Sprintf("move %d 102/777", moved[0].ID), "expunge 0 101/777"}; !slices.Equal(got, want) {
		t.Errorf("intents %q, want %q", got, want)
	}
	if pending != 4 { // appended, two copies, the moved message (UID 0 in Archive)
		t.Errorf("%d messages wait for the sync, want 4", pending)
	}
}
