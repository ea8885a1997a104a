package index

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"

	"github.com/postfach/postfach/maildir"
)

// Computing ENVELOPE and BODYSTRUCTURE (RFC 3501 7.4.2, RFC 9051 7.5.2).
//
// Where RFC 3501 asks for a header's value "as sent" it is kept so:
// subjects, display names, Content-Description and parameter values keep
// their encoded words (go-imap's writer encodes only 8-bit text). Where
// go-imap's types cannot carry the text as sent, the nearest it can:
// the Date is a time (NIL when unparseable), and In-Reply-To and
// Message-ID are written back between angle brackets (a value that has
// them is kept whole between the outer ones).
//
// Addresses follow RFC 5322 with its obsolete forms: groups become the
// group start (NIL NIL "name" NIL) and end (NIL NIL NIL NIL) markers, a
// route is dropped, a comment names a mailbox that has no phrase, and a
// mailbox without a local part or domain gets "MISSING_MAILBOX" or
// "MISSING_DOMAIN" (as Dovecot writes them: NIL would make it a group
// marker). An absent or empty Sender or Reply-To is the From list.
//
// Bodies: a part without a usable Content-Type is text/plain; charset=
// us-ascii (message/rfc822 inside multipart/digest), a text part without
// a charset has charset us-ascii (RFC 2045 5.2), a missing
// Content-Transfer-Encoding is 7BIT, text parts and message/rfc822 parts
// count their lines, MD5 is NIL (go-imap's writer), a multipart without
// parts (no boundary, or none found) gets one empty text/plain part, as
// Dovecot gives it, since IMAP's grammar needs one. At most viewMaxDepth
// levels of nesting and viewMaxParts parts are described; a multipart or
// message/rfc822 part beyond them is an application/octet-stream part.

const (
	viewMaxDepth  = 32
	viewMaxParts  = 1000
	maxViewHeader = maildir.MaxHeader
)

// viewPart is the stored form of one BODYSTRUCTURE part.
type viewPart struct {
	Type        string                         `json:"t"`
	Subtype     string                         `json:"s"`
	Params      map[string]string              `json:"p,omitempty"`
	ID          string                         `json:"id,omitempty"`
	Description string                         `json:"d,omitempty"`
	Encoding    string                         `json:"enc,omitempty"`
	Size        int64                          `json:"n"`
	Lines       int64                          `json:"l,omitempty"`
	Envelope    *imap.Envelope                 `json:"env,omitempty"` // message/rfc822, message/global
	Message     *viewPart                      `json:"msg,omitempty"`
	Children    []*viewPart                    `json:"c,omitempty"` // multipart
	Disposition *imap.BodyStructureDisposition `json:"disp,omitempty"`
	Language    []string                       `json:"lang,omitempty"`
	Location    string                         `json:"loc,omitempty"`
}

// imap returns the part as go-imap's extended body structure.
func (p *viewPart) imap() imap.BodyStructure {
	if p.Type == "multipart" {
		mp := &imap.BodyStructureMultiPart{Subtype: p.Subtype, Extended: &imap.BodyStructureMultiPartExt{
			Params: p.Params, Disposition: p.Disposition, Language: p.Language, Location: p.Location}}
		for _, c := range p.Children {
			mp.Children = append(mp.Children, c.imap())
		}
		if len(mp.Children) == 0 {
			mp.Children = append(mp.Children, emptyTextPart().imap())
		}
		return mp
	}
	sp := &imap.BodyStructureSinglePart{
		Type: p.Type, Subtype: p.Subtype, Params: p.Params, ID: p.ID, Description: p.Description,
		Encoding: p.Encoding, Size: uint32(min(p.Size, math.MaxUint32)),
		Extended: &imap.BodyStructureSinglePartExt{Disposition: p.Disposition, Language: p.Language, Location: p.Location},
	}
	switch {
	case p.Message != nil:
		env := p.Envelope
		if env == nil {
			env = &imap.Envelope{}
		}
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: env, BodyStructure: p.Message.imap(), NumLines: p.Lines}
	case p.Type == "text":
		sp.Text = &imap.BodyStructureText{NumLines: p.Lines}
	}
	return sp
}

func emptyTextPart() *viewPart {
	return &viewPart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"}, Encoding: "7bit"}
}

type viewParser struct{ parts int }

// hfield is one header field, its value unfolded and trimmed.
//
// A field that RFC 5322 allows once but a message has more than once:
// the last one counts (as go-message and Dovecot read it), except for the
// address fields, whose lists are joined (as Dovecot does).
type hfield struct{ name, value string }

func fieldValue(fields []hfield, name string) string {
	for i := len(fields) - 1; i >= 0; i-- {
		if strings.EqualFold(fields[i].name, name) {
			return fields[i].value
		}
	}
	return ""
}

// addressFields returns the values of all the fields so named, joined
// into one address list.
func addressFields(fields []hfield, name string) string {
	var vs []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) && f.value != "" {
			vs = append(vs, f.value)
		}
	}
	return strings.Join(vs, ", ")
}

// part describes a part with header fields and body (read to its end).
func (p *viewParser) part(fields []hfield, body io.Reader, depth int, digest bool) *viewPart {
	p.parts++
	c := &viewCounter{r: body}
	vp := contentOf(fields, digest)
	deep := depth >= viewMaxDepth || p.parts >= viewMaxParts
	switch {
	case deep && (vp.Type == "multipart" || isMessage(vp)):
		// Described as opaque: a message/rfc822 part must carry its
		// envelope and structure (IMAP's grammar), a multipart its parts.
		vp.Type, vp.Subtype, vp.Params = "application", "octet-stream", nil
	case vp.Type == "multipart":
		if b := vp.Params["boundary"]; b != "" {
			mr := textproto.NewMultipartReader(c, b)
			for p.parts < viewMaxParts {
				part, err := mr.NextPart()
				if err != nil {
					break
				}
				vp.Children = append(vp.Children, p.part(fieldsOf(part.Header), part, depth+1, vp.Subtype == "digest"))
			}
		}
		if len(vp.Children) == 0 {
			vp.Children = []*viewPart{emptyTextPart()}
		}
	case isMessage(vp):
		br := bufio.NewReader(c)
		_, inner := readHeaderBlock(br)
		vp.Envelope = envelopeOf(inner)
		vp.Message = p.part(inner, br, depth+1, false)
		io.Copy(io.Discard, br)
	}
	io.Copy(io.Discard, c)
	vp.Size = c.n
	if vp.Type == "text" || vp.Message != nil {
		vp.Lines = c.lines
	}
	return vp
}

// isMessage reports whether a part is an encapsulated message, which
// BODYSTRUCTURE describes with its envelope, structure and lines.
func isMessage(vp *viewPart) bool {
	return vp.Type == "message" && (vp.Subtype == "rfc822" || vp.Subtype == "global")
}

// contentOf reads a part's Content-* fields (RFC 2045 defaults).
func contentOf(fields []hfield, digest bool) *viewPart {
	vp := &viewPart{}
	t, params, err := mime.ParseMediaType(fieldValue(fields, "Content-Type"))
	typ, sub, ok := strings.Cut(t, "/")
	if (err != nil && err != mime.ErrInvalidMediaParameter) || !ok || typ == "" || sub == "" {
		if digest {
			typ, sub, params = "message", "rfc822", nil
		} else {
			typ, sub, params = "text", "plain", map[string]string{"charset": "us-ascii"}
		}
	}
	if typ == "text" && params["charset"] == "" { // RFC 2045 5.2; Dovecot says it too
		if params == nil {
			params = map[string]string{}
		}
		params["charset"] = "us-ascii"
	}
	vp.Type, vp.Subtype, vp.Params = typ, sub, params
	vp.ID = fieldValue(fields, "Content-Id")
	vp.Description = fieldValue(fields, "Content-Description")
	vp.Encoding = fieldValue(fields, "Content-Transfer-Encoding")
	if vp.Encoding == "" {
		vp.Encoding = "7bit"
	}
	vp.Location = fieldValue(fields, "Content-Location")
	if d := fieldValue(fields, "Content-Disposition"); d != "" {
		if v, dp, err := mime.ParseMediaType(d); v != "" && (err == nil || err == mime.ErrInvalidMediaParameter) {
			vp.Disposition = &imap.BodyStructureDisposition{Value: v, Params: dp}
		}
	}
	for _, l := range strings.Split(fieldValue(fields, "Content-Language"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			vp.Language = append(vp.Language, l)
		}
	}
	return vp
}

// fieldsOf lists a parsed part header's fields in order.
func fieldsOf(h textproto.Header) []hfield {
	var out []hfield
	for f := h.Fields(); f.Next(); {
		out = append(out, hfield{f.Key(), unfoldValue(f.Value())})
	}
	return out
}

func unfoldValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
	}
	return strings.TrimSpace(v)
}

// readHeaderBlock reads a header up to and including its blank line (or
// the end), returning its first maxViewHeader bytes and its fields (lines
// that are neither a field nor a continuation left out, see cleanHeader).
func readHeaderBlock(br *bufio.Reader) ([]byte, []hfield) {
	var raw []byte
	lineStart, full := true, false
	for {
		chunk, err := br.ReadSlice('\n')
		if lineStart && (bytes.Equal(chunk, []byte("\r\n")) || bytes.Equal(chunk, []byte("\n"))) {
			break
		}
		if !full && len(raw)+len(chunk) <= maxViewHeader {
			raw = append(raw, chunk...)
		} else if !full {
			// Kept up to the last whole line: the rest is read, not kept.
			full = true
			if i := bytes.LastIndexByte(raw, '\n'); i >= 0 {
				raw = raw[:i+1]
			} else {
				raw = raw[:0]
			}
		}
		lineStart = err == nil
		if err != nil && err != bufio.ErrBufferFull {
			break
		}
	}
	return raw, headerFields(raw)
}

// headerFields parses a header block, leaving out the lines that are
// neither a field nor a continuation (see cleanHeader).
func headerFields(raw []byte) []hfield {
	var fields []hfield
	for _, line := range bytes.SplitAfter(cleanHeader(raw), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(fields); n > 0 {
				fields[n-1].value += strings.TrimRight(string(line), "\r\n")
			}
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		fields = append(fields, hfield{string(bytes.TrimRight(name, " \t")), string(bytes.TrimRight(value, "\r\n"))})
	}
	for i := range fields {
		fields[i].value = strings.TrimSpace(fields[i].value)
	}
	return fields
}

// envelopeOf builds a message's ENVELOPE from its header fields.
func envelopeOf(fields []hfield) *imap.Envelope {
	env := &imap.Envelope{Subject: fieldValue(fields, "Subject")}
	if d := fieldValue(fields, "Date"); d != "" {
		if t, err := parseDate(d); err == nil {
			env.Date = t
		}
	}
	env.From = addressList(addressFields(fields, "From"))
	env.Sender = addressList(addressFields(fields, "Sender"))
	env.ReplyTo = addressList(addressFields(fields, "Reply-To"))
	env.To = addressList(addressFields(fields, "To"))
	env.Cc = addressList(addressFields(fields, "Cc"))
	env.Bcc = addressList(addressFields(fields, "Bcc"))
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	if v := fieldValue(fields, "In-Reply-To"); v != "" {
		env.InReplyTo = []string{envelopeMsgID(v)}
	}
	if v := fieldValue(fields, "Message-Id"); v != "" {
		env.MessageID = envelopeMsgID(v)
	}
	return env
}

// envelopeMsgID returns what go-imap writes between angle brackets for a
// Message-ID or In-Reply-To value: the value as sent without its outer
// brackets when it has them, else the first bracketed id in it, else the
// value.
func envelopeMsgID(v string) string {
	if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") && len(v) >= 2 {
		return v[1 : len(v)-1]
	}
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return v
}

// calendarDay returns t's calendar day in its own zone as days since
// 1970-01-01.
func calendarDay(t time.Time) int64 {
	y, m, d := t.Date()
	s := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
	if s < 0 {
		return (s - 86399) / 86400
	}
	return s / 86400
}
