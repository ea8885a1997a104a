package index

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Bounds of text extraction. A message beyond them is indexed as far as
// they reach (its stored file is never touched).
const (
	// extractMaxDepth is how deep nested multiparts are followed; the
	// parts of a deeper one are not indexed.
	extractMaxDepth = 64
	// extractMaxParts is how many MIME parts of a message are looked at.
	extractMaxParts = 1000
	// extractMaxHeader caps the header bytes kept per part; the
	// Content-* fields, which say how to decode the part, have
	// extractMIMEHeader more.
	extractMaxHeader  = 64 << 10
	extractMIMEHeader = 16 << 10
	// extractLine is the longest line a boundary is recognised in (the
	// bufio buffer): RFC 2046 boundaries have at most 70 characters.
	extractLine = 8 << 10
	// extractCheckEvery is how many bytes are read between two looks at
	// the context inside a single part.
	extractCheckEvery = 1 << 20
)

// ExtractText returns up to limit bytes of decoded, valid UTF-8 text from the text/plain
// and text/html parts of a message, for the full-text index, including
// those of messages inside it (message/rfc822 parts). Other parts are
// skipped without being decoded.
//
// It reads the message once, line by line, in time linear in its size
// whatever its nesting (a line is checked against the open boundaries with
// one map look-up), and memory bounded by limit: at most extractMaxDepth
// levels of multipart and extractMaxParts parts are looked at, a part's
// header is kept up to extractMaxHeader bytes, and a text part's raw body
// up to a small multiple of the text still wanted. It stops early, with the
// text found so far, when ctx is done (looked at between parts and every
// extractCheckEvery bytes).
func ExtractText(ctx context.Context, r io.Reader, limit int) string {
	text, _ := ExtractContent(ctx, r, limit)
	return text
}

// Part is a MIME part of a message (a leaf: not a multipart, nor a
// message/rfc822 whose parts are looked at instead).
type Part struct {
	Type       string // lower case, without parameters ("text/plain" when none is given)
	Name       string // file name (Content-Disposition filename, else Content-Type name), decoded
	Attachment bool   // Content-Disposition attachment, or a file name
}

// ExtractContent is ExtractText that also returns the message's MIME
// parts (within the same bounds: at most extractMaxParts).
func ExtractContent(ctx context.Context, r io.Reader, limit int) (string, []Part) {
	e := &extractor{ctx: ctx, limit: limit, bounds: map[string]int{}}
	e.run(bufio.NewReaderSize(r, extractLine))
	return e.out.String(), e.parts
}

type extractState int

const (
	inHeader extractState = iota // reading a part's header
	inText                       // keeping a text part's body
	inSkip                       // skipping a body, preamble or epilogue
)

type extractor struct {
	ctx   context.Context
	limit int
	out   strings.Builder

	stack  []string       // open multipart boundaries, outermost first
	bounds map[string]int // boundary -> its (outermost) index in stack
	nparts int            // parts begun
	parts  []Part         // the leaf parts seen

	state   extractState
	header  bytes.Buffer     // the current part's header lines (valid ones)
	keep    bool             // the last header line was kept (for its continuations)
	mime    bool             // the last header line is a Content-* field
	hr      *bufio.Reader    // reads header (one for all parts)
	body    bytes.Buffer     // the current text part's raw body
	bodyCap int              // raw body bytes kept at most
	eol     []byte           // the line end held back (it may precede a boundary)
	th      textproto.Header // the current text part's header
	html    bool             // the current text part is text/html
}

func (e *extractor) run(br *bufio.Reader) {
	e.beginPart()
	lineStart, read := true, 0
	for {
		chunk, err := br.ReadSlice('\n')
		whole := lineStart && (err == nil || err == io.EOF)
		if len(chunk) > 0 {
			read += len(chunk)
			if read >= extractCheckEvery {
				read = 0
				if e.ctx.Err() != nil {
					return
				}
			}
			if !e.line(chunk, lineStart, whole) {
				return
			}
		}
		lineStart = err == nil
		if err != nil && err != bufio.ErrBufferFull {
			break
		}
	}
	e.endPart()
}

// line handles one line, or a piece of a line longer than the buffer
// (start tells whether it is the first piece, whole whether it is the
// whole line). It returns false to stop.
func (e *extractor) line(chunk []byte, start, whole bool) bool {
	content, eol := splitEOL(chunk)
	if whole && len(e.stack) > 0 && bytes.HasPrefix(content, []byte("--")) {
		if level, final, ok := e.boundary(content); ok {
			e.endPart()
			for _, b := range e.stack[level+1:] {
				if e.bounds[b] > level {
					delete(e.bounds, b)
				}
			}
			e.stack = e.stack[:level+1]
			if final {
				if e.bounds[e.stack[level]] == level {
					delete(e.bounds, e.stack[level])
				}
				e.stack = e.stack[:level]
				e.state = inSkip
				return true
			}
			e.nparts++
			if e.nparts >= extractMaxParts || e.ctx.Err() != nil {
				return false
			}
			e.beginPart()
			return true
		}
	}
	switch e.state {
	case inHeader:
		if start && len(content) == 0 && whole {
			e.beginBody()
			return true
		}
		e.headerLine(chunk, start)
	case inText:
		if e.body.Len()+len(e.eol)+len(content) <= e.bodyCap {
			e.body.Write(e.eol)
			e.body.Write(content)
		}
		e.eol = append(e.eol[:0], eol...)
	}
	return true
}

// splitEOL splits a line into its content and its CRLF or LF line end.
func splitEOL(line []byte) (content, eol []byte) {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
		if n > 0 && line[n-1] == '\r' {
			n--
		}
	}
	return line[:n], line[n:]
}

// boundary reports whether a line (without its line end) is the delimiter
// or, final, the close delimiter of the open multipart at index level.
// Trailing blanks are allowed (RFC 2046 5.1.1), as Go's mime/multipart
// does.
func (e *extractor) boundary(content []byte) (level int, final, ok bool) {
	b := bytes.TrimRight(content[2:], " \t")
	if level, ok = e.bounds[string(b)]; ok { // (no copy made for a look-up)
		return level, false, true
	}
	if bytes.HasSuffix(b, []byte("--")) {
		level, ok = e.bounds[string(b[:len(b)-2])]
		return level, true, ok
	}
	return 0, false, false
}

// headerLine keeps a header line (or piece) if it is a "Key: value" line
// with a valid key or a continuation of a kept one: textproto.ReadHeader
// stops at the first malformed line, which would lose the Content-Type
// after an 8-bit or garbage line.
func (e *extractor) headerLine(chunk []byte, start bool) {
	if start {
		if n := e.header.Len(); n > 0 && e.header.Bytes()[n-1] != '\n' {
			e.header.WriteString("\r\n") // end the line cut at the cap
		}
		content, _ := splitEOL(chunk)
		if len(content) > 0 && (content[0] == ' ' || content[0] == '\t') {
			// a continuation: kept with the line it continues
		} else {
			e.keep = validHeaderLine(content)
			e.mime = len(content) > 8 && strings.EqualFold(string(content[:8]), "content-")
		}
	}
	if !e.keep {
		return
	}
	limit := extractMaxHeader
	if e.mime {
		limit += extractMIMEHeader
	}
	if e.header.Len()+len(chunk) > limit {
		e.keep = false // the rest of this field is left out
		return
	}
	e.header.Write(chunk)
}

func (e *extractor) beginPart() {
	e.state = inHeader
	e.header.Reset()
	e.keep = false
}

// beginBody decides, at the end of a part's header, what its body is: a
// multipart whose boundary is pushed, a text part to keep, or a skip.
func (e *extractor) beginBody() {
	if n := e.header.Len(); n > 0 && e.header.Bytes()[n-1] != '\n' {
		e.header.WriteString("\r\n") // a line cut at extractMaxHeader
	}
	e.header.WriteString("\r\n")
	if e.hr == nil {
		e.hr = bufio.NewReaderSize(&e.header, 4096)
	}
	e.hr.Reset(&e.header)
	th, _ := textproto.ReadHeader(e.hr)
	e.th = th
	h := message.Header{Header: th}
	e.state = inSkip
	t, params, err := h.ContentType()
	if err != nil { // go-message then returns the field whole as the type
		t, _, _ = strings.Cut(h.Get("Content-Type"), ";")
		t = strings.ToLower(strings.TrimSpace(t))
	}
	switch {
	case strings.HasPrefix(t, "multipart/"):
		b := params["boundary"]
		if b == "" || len(e.stack) >= extractMaxDepth {
			return
		}
		if _, dup := e.bounds[b]; !dup { // an outer use of it ends this one too
			e.bounds[b] = len(e.stack)
		}
		e.stack = append(e.stack, b)
		return
	case t == "message/rfc822" || t == "message/global":
		// A message in the message (one forwarded inline or attached):
		// its own header follows, then its body, whose text parts are
		// this message's text too (SEARCH BODY and TEXT find them, as
		// RFC 3501 asks of "the body of the message"). RFC 2046 5.2.1
		// allows no transfer encoding here that would hide the lines.
		// (One so encoded is a leaf part.)
		switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
		case "base64", "quoted-printable":
		default:
			e.beginPart()
			return
		}
	}
	disp, dparams, _ := h.ContentDisposition()
	p := Part{Type: t, Name: dparams["filename"]}
	if p.Type == "" {
		p.Type = "text/plain"
	}
	if p.Name == "" {
		p.Name = params["name"]
	}
	p.Name = strings.TrimSpace(p.Name)
	p.Attachment = disp == "attachment" || p.Name != ""
	e.parts = append(e.parts, p)
	switch {
	case t != "text/plain" && t != "text/html" && t != "":
	case e.out.Len() >= e.limit:
	case disp == "attachment":
	default:
		e.state = inText
		e.html = t == "text/html"
		e.body.Reset()
		e.eol = e.eol[:0]
		// Quoted-printable takes up to 3 bytes per byte; a charset
		// converter may make up to 3 bytes of UTF-8 of it again.
		e.bodyCap = 4*(e.limit-e.out.Len()) + 4096
	}
}

// endPart decodes the text part that ends (if it is one) into the output.
func (e *extractor) endPart() {
	if e.state != inText {
		e.state = inSkip
		return
	}
	e.state = inSkip
	room := e.limit - e.out.Len()
	if room <= 0 {
		return
	}
	// The body decoded (transfer encoding, charset) where its header can
	// be understood, else as it is (a Content-Type go-message cannot parse).
	var body io.Reader = bytes.NewReader(e.body.Bytes())
	ent, err := message.New(message.Header{Header: e.th}, body)
	if ent != nil && (err == nil || message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)) {
		body = ent.Body
	}
	chunk, _ := io.ReadAll(io.LimitReader(body, int64(room)))
	s := string(chunk)
	if e.html {
		s = stripTags(s)
	}
	if e.out.Len() > 0 {
		e.out.WriteByte('\n')
		room--
	}
	// Invalid UTF-8 becomes U+FFFD, up to 3 bytes for 1: cut again, at a
	// character boundary, so that the text kept stays within the limit.
	s = validUTF8(s)
	if len(s) > room {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	e.out.WriteString(s)
}

// stripTags replaces the tags of HTML text, and script and style elements
// whole, by a space, in linear time: a regular expression with a lazy
// ".*?</script>" rescans the rest of the text at each unclosed "<script"
// (quadratic); here, once a closing tag is not found, none is looked for
// again.
func stripTags(s string) string {
	lower := []byte(s)
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	unclosed := map[string]bool{}
	i := 0
	for i < len(s) {
		j := bytes.IndexByte(lower[i:], '<')
		if j < 0 {
			break
		}
		b.WriteString(s[i : i+j])
		i += j
		end := bytes.IndexByte(lower[i:], '>')
		if end < 0 {
			break // no tag: the rest is text
		}
		end += i + 1
		for _, name := range []string{"script", "style"} {
			if unclosed[name] || !bytes.HasPrefix(lower[i+1:], []byte(name)) {
				continue
			}
			c := bytes.Index(lower[end:], []byte("</"+name))
			if c < 0 {
				unclosed[name] = true
				continue
			}
			if k := bytes.IndexByte(lower[end+c:], '>'); k >= 0 {
				end += c + k + 1
			}
			break
		}
		b.WriteByte(' ')
		i = end
	}
	b.WriteString(s[i:])
	return b.String()
}
