package pop3

import (
	"io"
	"strings"
	"testing"
)

func TestErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		cmd, reply    string
		code          string
		auth, tempErr bool
	}{
		{"PASS", "[AUTH] Authentication failed.", "AUTH", true, false},
		{"PASS", "invalid password", "", true, false},
		{"APOP bob", "[SYS/TEMP] try later", "SYS/TEMP", false, true},
		{"PASS", "[IN-USE] Mailbox locked", "IN-USE", false, true},
		{"USER bob", "[LOGIN-DELAY] wait 15 minutes", "LOGIN-DELAY", false, true},
		{"PASS", "[SYS/PERM] disabled", "SYS/PERM", false, false},
		{"RETR 1", "no such message", "", false, false},
		{"RETR 1", "[] empty code", "", false, false},
		{"RETR 1", "[SYS/ broken", "", false, false},
		{"RETR 1", "[SYS//TEMP] two slashes", "", false, false},
	} {
		e := &Error{Command: tc.cmd, Reply: tc.reply, Code: responseCode(tc.reply)}
		if e.Code != tc.code || IsAuthError(e) != tc.auth || IsTemporary(e) != tc.tempErr {
			t.Errorf("%s -ERR %s: code %q auth %v temp %v", tc.cmd, tc.reply, e.Code, IsAuthError(e), IsTemporary(e))
		}
	}
	if IsAuthError(io.EOF) || IsTemporary(io.EOF) {
		t.Error("io.EOF classified as a POP3 error")
	}
	e := &Error{Command: "RETR 1", Reply: "bad\x1b[31m\ntext"}
	if s := e.Error(); strings.ContainsAny(s, "\x1b\n") {
		t.Errorf("Error() passes control characters: %q", s)
	}
}

func TestParseLines(t *testing.T) {
	for _, tc := range []struct {
		line string
		want MsgInfo
		ok   bool
	}{
		{"1 120", MsgInfo{Num: 1, Size: 120}, true},
		{"12 0", MsgInfo{Num: 12, Size: 0}, true},
		{"2 4500 extra", MsgInfo{Num: 2, Size: 4500}, true},
		{"0 10", MsgInfo{}, false},
		{"1", MsgInfo{}, false},
		{"1 ", MsgInfo{}, false},
		{"-1 10", MsgInfo{}, false},
		{"+1 10", MsgInfo{}, false},
		{"1 -10", MsgInfo{}, false},
		{" 1 10", MsgInfo{}, false},
		{"1 99999999999999999999", MsgInfo{}, false},
	} {
		got, err := parseListLine(tc.line)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseListLine(%q) = %+v, %v", tc.line, got, err)
		}
	}
	for _, tc := range []struct {
		line, uid string
		problem   bool
		ok        bool
	}{
		{"1 abc", "abc", false, true},
		{"1 " + strings.Repeat("x", 70), strings.Repeat("x", 70), false, true},
		{"1 " + strings.Repeat("x", 71), strings.Repeat("x", 71), true, true},
		{"1 has space", "has space", true, true},
		{"1 tab\there", "tab\there", true, true},
		{"1 ümlaut", "ümlaut", true, true},
		{"1 ", "", false, false},
		{"1", "", false, false},
		{"x abc", "", false, false},
	} {
		got, err := parseUIDLLine(tc.line)
		if (err == nil) != tc.ok || got.UID != tc.uid || (got.UIDProblem != "") != tc.problem {
			t.Errorf("parseUIDLLine(%q) = %+v, %v", tc.line, got, err)
		}
	}
	for greeting, want := range map[string]string{
		"POP3 ready <1896.697170952@dbc.mtview.ca.us>": "<1896.697170952@dbc.mtview.ca.us>",
		"Dovecot ready.": "",
		"ready <>":       "",
		"ready <a b@c>":  "",
		"ready <a@b":     "",
	} {
		if got := apopTimestamp(greeting); got != want {
			t.Errorf("apopTimestamp(%q) = %q, want %q", greeting, got, want)
		}
	}
}
