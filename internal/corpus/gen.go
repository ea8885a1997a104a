package corpus

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"html"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// kind is the structure of a generated message.
type kind int

const (
	kindPlainASCII  kind = iota // text/plain; charset=us-ascii, 7bit
	kindPlainQP                 // text/plain; charset=utf-8, quoted-printable
	kindAlternative             // multipart/alternative: text/plain + text/html
	kindIntl                    // RFC 2047 Subject and From, utf-8 body
	kindMixed                   // multipart/mixed: text/plain + small attachment
)

// kindOf maps a percentile to the mix documented in the package comment.
func kindOf(p int) kind {
	switch {
	case p < 30:
		return kindPlainASCII
	case p < 60:
		return kindPlainQP
	case p < 80:
		return kindAlternative
	case p < 90:
		return kindIntl
	default:
		return kindMixed
	}
}

// part is a MIME entity: header lines (without CRLF) and a CRLF body.
type part struct {
	header []string
	body   []byte
}

func (p part) bytes() []byte {
	var b bytes.Buffer
	b.Grow(p.size())
	for _, h := range p.header {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(p.body)
	return b.Bytes()
}

// size is the length of bytes().
func (p part) size() int {
	n := 2 + len(p.body)
	for _, h := range p.header {
		n += len(h) + 2
	}
	return n
}

type gen struct {
	seed int64
	i    int
	opts Options
	r    *rand.Rand
}

func (g *gen) message() Message {
	r := g.r
	k := kindOf(r.IntN(100))

	folders := g.opts.Folders
	if len(folders) == 0 {
		folders = DefaultFolders
	}
	folder := folders[0]
	if len(folders) > 1 && r.IntN(100) >= 40 {
		folder = folders[1+r.IntN(len(folders)-1)]
	}

	sent := epoch.Add(time.Duration(g.i)*30*time.Minute + time.Duration(r.IntN(30*60))*time.Second)
	zone := zones[r.IntN(len(zones))]
	internal := sent.Add(time.Duration(1+r.IntN(120)) * time.Second).UTC()

	var flags []imap.Flag
	if r.IntN(100) < 3 {
		flags = append(flags, imap.FlagAnswered)
	}
	if r.IntN(100) < 5 {
		flags = append(flags, imap.FlagFlagged)
	}
	if r.IntN(100) < 20 {
		flags = append(flags, imap.FlagSeen)
	}
	if r.IntN(100) < 2 {
		flags = append(flags, "$Label1")
	}

	id := messageID(g.seed, g.i)
	var h []string
	h = append(h, "Date: "+sent.In(zone).Format(time.RFC1123Z))

	from := pick(r, senders)
	subject := g.subject()
	if k == kindIntl {
		if r.IntN(2) == 0 {
			s := pick(r, japaneseSenders)
			from = addr(mime.BEncoding.Encode("utf-8", s.name), s.email)
			subject = mime.BEncoding.Encode("utf-8", pick(r, japaneseSubjects))
		} else {
			s := pick(r, germanSenders)
			from = addr(mime.QEncoding.Encode("utf-8", s.name), s.email)
			subject = mime.QEncoding.Encode("utf-8", pick(r, germanSubjects))
		}
	}
	h = append(h, fold("From: "+from))
	h = append(h, "To: Postfach Tester <me@example.org>")
	if r.IntN(100) < 20 {
		h = append(h, "Cc: "+pick(r, senders))
	}
	if g.i > 0 && r.IntN(100) < 15 {
		parent := messageID(g.seed, g.i-1-r.IntN(min(g.i, 20)))
		subject = "Re: " + subject
		h = append(h, "In-Reply-To: <"+parent+">", "References: <"+parent+">")
	}
	h = append(h, fold("Subject: "+subject))
	h = append(h, "Message-ID: <"+id+">")
	if name, ok := strings.CutPrefix(folder, "Lists/"); ok {
		list := strings.ToLower(asciiOnly(name))
		h = append(h, fmt.Sprintf("List-Id: %s discussion <%s.lists.example.org>", name, list))
	}
	h = append(h, "MIME-Version: 1.0")

	var body part
	if g.opts.RealSizes {
		body = g.realBody(k)
	} else {
		body = g.smallBody(k, subject)
	}
	if every := g.opts.BigAttachmentEvery; every > 0 && (g.i+1)%every == 0 {
		size := g.opts.BigAttachmentSize
		if size <= 0 {
			size = DefaultBigAttachmentSize
		}
		body = g.multipart("mixed", body, g.attachment(size))
	}

	var raw bytes.Buffer
	n := body.size()
	for _, l := range h {
		n += len(l) + 2
	}
	raw.Grow(n)
	for _, l := range h {
		raw.WriteString(l)
		raw.WriteString("\r\n")
	}
	raw.Write(body.bytes())
	return Message{Folder: folder, Flags: flags, Date: internal, MessageID: id, Raw: raw.Bytes()}
}

// smallBody is the body of the default corpus: of kind k, a few KB.
func (g *gen) smallBody(k kind, subject string) part {
	r := g.r
	var body part
	switch k {
	case kindPlainASCII:
		body = g.plainASCII()
	case kindPlainQP:
		body = g.plainQP(g.paragraphs(germanWords))
	case kindAlternative:
		paras := g.paragraphs(englishWords)
		body = g.multipart("alternative", g.plainQP(paras), g.html(paras))
	case kindIntl:
		if strings.Contains(subject, "?B?") || strings.Contains(subject, "?b?") {
			body = g.plainBase64(japaneseParagraphs(r))
		} else {
			body = g.plainQP(g.paragraphs(germanWords))
		}
	case kindMixed:
		body = g.multipart("mixed", g.plainQP(g.paragraphs(englishWords)), g.attachment(1024+r.IntN(6*1024)))
	}
	return body
}

func messageID(seed int64, i int) string {
	return fmt.Sprintf("%016x.%d@corpus.postfach.test", uint64(seed), i)
}

func (g *gen) subject() string {
	n := 3 + g.r.IntN(6)
	w := make([]string, n)
	for j := range w {
		w[j] = pick(g.r, englishWords)
	}
	w[0] = strings.ToUpper(w[0][:1]) + w[0][1:]
	return strings.Join(w, " ")
}

// paragraphs returns 1-8 paragraphs of 2-6 sentences from words.
func (g *gen) paragraphs(words []string) []string {
	paras := make([]string, 1+g.r.IntN(8))
	for p := range paras {
		paras[p] = g.paragraph(words)
	}
	return paras
}

// paragraph returns one paragraph of 2-6 sentences from words.
func (g *gen) paragraph(words []string) string {
	r := g.r
	var b strings.Builder
	for s := range 2 + r.IntN(5) {
		if s > 0 {
			b.WriteByte(' ')
		}
		n := 5 + r.IntN(11)
		for j := range n {
			w := pick(r, words)
			if j == 0 {
				w = capitalize(w)
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
		}
		b.WriteByte(pick(r, terminators))
	}
	return b.String()
}

// plainASCII is a 7bit text/plain body wrapped at 72 columns. Some bodies
// hold lines that trip naive code: a lone ".", a leading "." (POP3 dot
// stuffing) and a leading "From " (mbox).
func (g *gen) plainASCII() part {
	r := g.r
	var b bytes.Buffer
	paras := g.paragraphs(englishWords)
	for j, p := range paras {
		if j > 0 {
			b.WriteString("\r\n")
		}
		wrap(&b, p, 72)
	}
	if r.IntN(100) < 10 {
		b.WriteString("\r\n.\r\n..and a line that starts with a dot\r\nFrom the desk of the sender\r\n")
	}
	b.WriteString("\r\n-- \r\n")
	b.WriteString("Sent from a generated corpus\r\n")
	return part{
		header: []string{"Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"},
		body:   b.Bytes(),
	}
}

func (g *gen) plainQP(paras []string) part {
	text := strings.Join(paras, "\n\n") + "\n\n-- \nGrüße, der Generator\n"
	return part{
		header: []string{"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"},
		body:   qp(text),
	}
}

func (g *gen) plainBase64(paras []string) part {
	return part{
		header: []string{"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"},
		body:   b64([]byte(strings.Join(paras, "\n\n") + "\n")),
	}
}

func (g *gen) html(paras []string) part {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n")
	for _, p := range paras {
		b.WriteString("<p>")
		b.WriteString(html.EscapeString(p))
		b.WriteString("</p>\n")
	}
	b.WriteString("<p>-- <br><i>Grüße, der Generator</i></p>\n</body></html>\n")
	return part{
		header: []string{"Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"},
		body:   qp(b.String()),
	}
}

// attachment is a base64 part of size random bytes.
func (g *gen) attachment(size int) part {
	r := g.r
	data := make([]byte, size)
	j := 0
	for ; j+8 <= size; j += 8 {
		binary.LittleEndian.PutUint64(data[j:], r.Uint64())
	}
	if j < size {
		v := r.Uint64()
		for k := 0; j+k < size; k++ {
			data[j+k] = byte(v >> (8 * k))
		}
	}
	var disp string
	switch r.IntN(4) {
	case 0:
		// RFC 2231 encoded non-ASCII file name.
		disp = "Content-Disposition: attachment; filename*=utf-8''%C3%9Cbersicht-" + fmt.Sprint(g.i) + ".pdf"
	default:
		disp = fmt.Sprintf("Content-Disposition: attachment; filename=\"report-%d.pdf\"", g.i)
	}
	return part{
		header: []string{"Content-Type: application/pdf", disp, "Content-Transfer-Encoding: base64"},
		body:   b64(data),
	}
}

func (g *gen) multipart(sub string, parts ...part) part {
	boundary := fmt.Sprintf("=_%016x", g.r.Uint64())
	var b bytes.Buffer
	n := 64 + len(boundary)
	for _, p := range parts {
		n += p.size() + len(boundary) + 6
	}
	b.Grow(n)
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for _, p := range parts {
		b.WriteString("\r\n--" + boundary + "\r\n")
		b.Write(p.bytes())
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return part{
		header: []string{fmt.Sprintf("Content-Type: multipart/%s; boundary=\"%s\"", sub, boundary)},
		body:   b.Bytes(),
	}
}

// qp encodes text (LF line ends) as quoted-printable with CRLF line ends.
func qp(text string) []byte {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(text)) // writes to a bytes.Buffer cannot fail
	w.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// b64 encodes data as base64 in 76-column lines with CRLF.
func b64(data []byte) []byte {
	const line = 57 // bytes per 76 columns
	out := make([]byte, 0, (len(data)/line+1)*78)
	for len(data) > line {
		out = base64.StdEncoding.AppendEncode(out, data[:line])
		out = append(out, '\r', '\n')
		data = data[line:]
	}
	out = base64.StdEncoding.AppendEncode(out, data)
	return append(out, '\r', '\n')
}

// wrap writes text word-wrapped at width columns with CRLF line ends.
func wrap(b *bytes.Buffer, text string, width int) {
	col := 0
	for _, w := range strings.Fields(text) {
		if col > 0 && col+1+len(w) > width {
			b.WriteString("\r\n")
			col = 0
		}
		if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\r\n")
}

// fold folds a header field before RFC 2047 encoded words so that lines
// stay short.
func fold(field string) string {
	if len(field) <= 78 {
		return field
	}
	return strings.ReplaceAll(field, " =?", "\r\n =?")
}

func addr(name, email string) string { return name + " <" + email + ">" }

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func capitalize(w string) string {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return w
	}
	return string(w[0]-'a'+'A') + w[1:]
}

func asciiOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 0x80 && c != ' ' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

var zones = []*time.Location{
	time.UTC,
	time.FixedZone("CET", 3600),
	time.FixedZone("CEST", 2*3600),
	time.FixedZone("PDT", -7*3600),
	time.FixedZone("JST", 9*3600),
	time.FixedZone("IST", 5*3600+1800),
}
