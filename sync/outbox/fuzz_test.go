package outbox

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

// Fuzz target of the submission reader (ReadSubmission), checked
// against a reference reading of its documentation: the header is the
// lines up to the first empty one (LF or CRLF ends, CRs at a line's end
// dropped), a first line "From " dropped, a field a name of printable
// ASCII without blanks and a colon, continued by lines starting with a
// blank; the result is the header's fields but Bcc and Resent-Bcc, each
// line ending in CRLF, an empty line, then the body untouched.

// submissionRef is that reading: the header ReadSubmission must give
// and the body after it; ok false: the header is malformed (the
// addresses aside, which the reference does not parse).
func submissionRef(in string) (hdr, body string, ok bool) {
	if in == "" {
		return "", "", false
	}
	var out strings.Builder
	name, rest := "", in
	for lineNo := 1; ; lineNo++ {
		line, after, found := strings.Cut(rest, "\n")
		rest = after
		text := strings.TrimRight(line, "\r")
		switch {
		case text == "":
			out.WriteString("\r\n")
			return out.String(), rest, true
		case lineNo == 1 && strings.HasPrefix(text, "From "):
		case text[0] == ' ' || text[0] == '\t':
			if name == "" {
				return "", "", false
			}
			if !bcc(name) {
				out.WriteString(text + "\r\n")
			}
		default:
			i := strings.IndexByte(text, ':')
			if i <= 0 {
				return "", "", false
			}
			for _, c := range []byte(text[:i]) {
				if c < 0x21 || c > 0x7e {
					return "", "", false
				}
			}
			name = text[:i]
			if !bcc(name) {
				out.WriteString(text + "\r\n")
			}
		}
		if !found {
			out.WriteString("\r\n")
			return out.String(), "", true
		}
	}
}

func bcc(name string) bool {
	return strings.EqualFold(name, "bcc") || strings.EqualFold(name, "resent-bcc")
}

// addressField says whether ReadSubmission parses the field's addresses.
func addressField(name string) bool {
	switch strings.ToLower(name) {
	case "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc", "from", "sender":
		return true
	}
	return false
}

// FuzzReadSubmission: what ReadSubmission accepts is the reference's
// header byte for byte (no Bcc field left), then the body as given; what
// the reference finds malformed it refuses, and it refuses a well-formed
// header only for an address field it cannot parse; its errors are one
// line without control characters; reading its own output again gives
// the same message, senders and recipients, and no Bcc.
func FuzzReadSubmission(f *testing.F) {
	for _, s := range []string{
		msgBcc, wire, "",
		"From me@example.org Sat Dec  5 12:00:00 2026\nTo: a@example.org\n\nbody\n",
		"To: a@example.org,\n b@example.org\nBcc: c@example.org,\n\td@example.org\nSubject: x\n\n",
		"Resent-Bcc: x@example.org\r\nResent-To: y@example.org\r\n\r\nbody\r\n.\r\n",
		"bcc: <x@example.org>\nCC: Some One <s@example.org>\nX-Bcc: keep@example.org\n\nBcc: in the body\n",
		" continued\nTo: a@example.org\n\n",
		"To a@example.org\n\n",
		"To: =?utf-8?q?J=C3=B6rg?= <j@example.org>\nFrom: \"Ann\" <ann@example.org>\nSender: s@example.org\n\n",
		"To: undisclosed-recipients:;\n\n",
		"Subject: no end of header",
		"To: a@example.org\r\r\n\r\nx",
		"\n\nbody only",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 32<<10 {
			return // the line and header limits are tested elsewhere
		}
		sub, err := ReadSubmission(strings.NewReader(in))
		hdr, body, ok := submissionRef(in)
		if err != nil {
			if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("error with a control character: %q", err.Error())
			}
			if ok {
				field, _, isField := strings.Cut(strings.TrimPrefix(err.Error(), "message header: "), " field: ")
				if !isField || !addressField(field) {
					t.Errorf("refused a well-formed header: %v\n%q", err, in)
				}
			}
			return
		}
		if !ok {
			t.Fatalf("accepted a malformed header:\n%q", in)
		}
		got, err := io.ReadAll(sub.Body)
		if err != nil {
			t.Fatal(err)
		}
		if want := hdr + body; string(got) != want {
			t.Fatalf("ReadSubmission(%q)\ngave  %q\nwant  %q", in, got, want)
		}
		// Again, from its own output: the same message, no Bcc.
		again, err := ReadSubmission(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("its own output refused: %v\n%q", err, got)
		}
		got2, _ := io.ReadAll(again.Body)
		if !bytes.Equal(got2, got) || len(again.Bcc) != 0 || again.From != sub.From ||
			!slices.Equal(again.To, sub.To) || !slices.Equal(again.Cc, sub.Cc) {
			t.Errorf("read again: %q %+v, first %+v", got2, again, sub)
		}
	})
}
