package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// FuzzIMAPView: computing a message's view never fails or panics on any
// bytes, gives a body structure go-imap can write (every multipart has a
// part), survives its stored form, and is the same whether the message is
// stored with LF or CRLF line ends.
func FuzzIMAPView(f *testing.F) {
	for _, k := range corpus.Malformed() {
		f.Add(k.Raw)
	}
	for _, m := range corpus.Generate(3, 8, corpus.Options{}) {
		f.Add(m.Raw)
	}
	f.Add(corpus.DeepMIME(0, 40))
	f.Add([]byte(strings.Repeat("Content-Type: message/rfc822\n\n", 40) + "x\n"))
	f.Add([]byte("To: g: a@b, (c) \"d\\\"\" <@r:e@[1.2.3.4]>;, <>, x\nContent-Type: message/rfc822\n\nContent-Type: multipart/digest; boundary=q\n\n--q\n\n--q--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		lfRaw := raw // without any CRLF ("\r\r\n" needs two rounds)
		for bytes.Contains(lfRaw, []byte("\r\n")) {
			lfRaw = bytes.ReplaceAll(lfRaw, []byte("\r\n"), []byte("\n"))
		}
		a, err := viewOf(bytes.NewReader(lfRaw))
		if err != nil {
			t.Fatal(err)
		}
		b, err := viewOf(bytes.NewReader(bytes.ReplaceAll(lfRaw, []byte("\n"), []byte("\r\n"))))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.env, b.env) || !reflect.DeepEqual(a.body, b.body) || a.size != b.size {
			t.Fatalf("LF and CRLF views differ:\n%+v\n%+v", a.body, b.body)
		}
		if a.size != int64(len(lfRaw)+bytes.Count(lfRaw, []byte("\n"))) {
			t.Fatalf("size %d of %d bytes", a.size, len(lfRaw))
		}
		blob, err := json.Marshal(storedView{Envelope: a.env, Body: a.body})
		if err != nil {
			t.Fatal(err)
		}
		env, bs, err := decodeView(blob)
		if err != nil {
			t.Fatal(err)
		}
		if env == nil {
			t.Fatal("no envelope")
		}
		checkWritable(t, bs, "1")
	})
}

// checkWritable fails unless go-imap can write bs as an extended
// BODYSTRUCTURE that parses back: every multipart has parts, every part is
// extended, and exactly the message/rfc822 and message/global parts carry
// an encapsulated message (checked inside those too).
func checkWritable(t *testing.T, bs imap.BodyStructure, path string) {
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(p.Children) == 0 || p.Extended == nil {
			t.Fatalf("multipart %s: %d parts, extended %v", path, len(p.Children), p.Extended != nil)
		}
		for i, c := range p.Children {
			checkWritable(t, c, fmt.Sprintf("%s.%d", path, i+1))
		}
	case *imap.BodyStructureSinglePart:
		if p.Extended == nil {
			t.Fatalf("part %s not extended", path)
		}
		mt := p.MediaType()
		if (mt == "message/rfc822" || mt == "message/global") != (p.MessageRFC822 != nil) {
			t.Fatalf("part %s: %s with encapsulated message %v", path, mt, p.MessageRFC822 != nil)
		}
		if m := p.MessageRFC822; m != nil {
			if m.Envelope == nil {
				t.Fatalf("part %s: no envelope", path)
			}
			checkWritable(t, m.BodyStructure, path+".msg")
		}
	default:
		t.Fatalf("part %s: %T", path, bs)
	}
}

// TestIMAPViewLongHeader: a header beyond maxViewHeader is kept up to its
// last whole line: the piece of a long line after the cap is not taken for
// a field of its own.
func TestIMAPViewLongHeader(t *testing.T) {
	raw := "Subject: first\nA: " + strings.Repeat("a", 60000) + "\nB: " + strings.Repeat("b", 16381) +
		"Fake: yes\nC: c\n\nbody\n"
	v, err := viewOf(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.header) > maxViewHeader || !bytes.HasSuffix(v.header, []byte("\n")) {
		t.Errorf("kept %d bytes of header, ending %q", len(v.header), v.header[max(0, len(v.header)-5):])
	}
	for _, f := range headerFields(v.header) {
		if f.name == "Fake" || f.name == "C" {
			t.Errorf("field %s kept from beyond the cap", f.name)
		}
	}
	if v.env.Subject != "first" || v.body.Size != 6 {
		t.Errorf("subject %q, body size %d", v.env.Subject, v.body.Size)
	}
}
