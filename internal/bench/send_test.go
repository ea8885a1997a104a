package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/postfach/postfach/internal/smtptest"
)

// TestSendMessages: the scenario's messages carry our header (several
// recipients, a Bcc on every other one) on the corpus's; what must
// arrive is the message without the Bcc field, and the envelope has
// every recipient, Bcc included.
func TestSendMessages(t *testing.T) {
	msgs := sendMessages(1, 4)
	for i, m := range msgs {
		if !bytes.HasPrefix(m.raw, []byte("From: Postfach Tester <me@example.org>\r\nTo: ")) {
			t.Errorf("message %d: header starts %q", i, m.raw[:60])
		}
		if bytes.Count(m.raw, []byte("\r\nFrom: ")) != 0 || bytes.Count(m.raw, []byte("\r\nTo: ")) != 1 {
			t.Errorf("message %d: the corpus's From or To is left:\n%s", i, m.raw)
		}
		head, _, _ := bytes.Cut(m.sent, []byte("\r\n\r\n"))
		if bytes.Contains(head, []byte("Bcc:")) {
			t.Errorf("message %d: Bcc in what must arrive", i)
		}
		wantRcpts := 3
		if i%2 == 0 {
			wantRcpts = 4
			if !bytes.Contains(m.raw, []byte("\r\nBcc: dora.")) {
				t.Errorf("message %d: no Bcc field", i)
			}
			if got := string(bytes.Replace(m.raw, []byte("Bcc: "+m.rcpts[3]+"\r\n"), nil, 1)); got != string(m.sent) {
				t.Errorf("message %d: sent form is not the raw one without its Bcc field", i)
			}
		}
		if len(m.rcpts) != wantRcpts {
			t.Errorf("message %d: recipients %v", i, m.rcpts)
		}
		if !strings.Contains(string(m.raw), "Message-ID: <"+m.id+">") {
			t.Errorf("message %d: no Message-ID <%s>", i, m.id)
		}
	}
}

// TestCheckSent: the check passes for every message once per recipient,
// and names a duplicate, a missing recipient, changed content (a Bcc
// field left in) and a stranger.
func TestCheckSent(t *testing.T) {
	msgs := sendMessages(1, 3)
	const tag = "r1.x"
	good := func() []smtptest.Delivered {
		var ds []smtptest.Delivered
		for _, m := range msgs {
			ds = append(ds, smtptest.Delivered{From: sendFrom, To: append([]string(nil), m.rcpts...), Data: tagged(m.sent, m.id, tag)})
		}
		return ds
	}
	if err := checkSent(good(), tag, msgs); err != nil {
		t.Fatalf("all delivered once: %v", err)
	}
	// Split into one delivery per recipient: still once each.
	var split []smtptest.Delivered
	for _, d := range good() {
		for _, r := range d.To {
			split = append(split, smtptest.Delivered{From: d.From, To: []string{r}, Data: d.Data})
		}
	}
	if err := checkSent(split, tag, msgs); err != nil {
		t.Fatalf("one delivery per recipient: %v", err)
	}
	for _, c := range []struct {
		name, want string
		change     func([]smtptest.Delivered) []smtptest.Delivered
	}{
		{"duplicate", "delivered 2 times", func(ds []smtptest.Delivered) []smtptest.Delivered { return append(ds, ds[1]) }},
		{"missing", "delivered 0 times", func(ds []smtptest.Delivered) []smtptest.Delivered { ds[2].To = ds[2].To[1:]; return ds }},
		{"Bcc leaked", "content differs", func(ds []smtptest.Delivered) []smtptest.Delivered {
			ds[0].Data = tagged(msgs[0].raw, msgs[0].id, tag)
			return ds
		}},
		{"other tag", "not one of this phase's", func(ds []smtptest.Delivered) []smtptest.Delivered {
			return append(ds, smtptest.Delivered{From: sendFrom, To: []string{"x@example.org"}, Data: tagged(msgs[0].sent, msgs[0].id, "r2.x")})
		}},
		{"sender", "envelope sender", func(ds []smtptest.Delivered) []smtptest.Delivered { ds[1].From = "other@example.org"; return ds }},
	} {
		err := checkSent(c.change(good()), tag, msgs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}
