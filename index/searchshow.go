package index

import (
	"bytes"
	stdhtml "html"
	"io"
	"strings"

	"github.com/emersion/go-message"
)

// showTextLimit caps the text ShowText returns.
const showTextLimit = 16 << 20

// ShowText returns a message's decoded header fields and its text for
// reading (postfach show): its text/plain parts that are not
// attachments, in order; when it has none, its text/html parts reduced to
// text. A message go-message cannot parse at all is shown as its body
// undecoded.
func ShowText(raw []byte) (Header, string) {
	h := ParseHeader(raw)
	ent, err := message.Read(bytes.NewReader(raw))
	if ent == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		return h, validUTF8(string(rawBody(raw)))
	}
	var plain, html []string
	_ = ent.Walk(func(_ []int, e *message.Entity, err error) error {
		if e == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
			return nil
		}
		t, _, _ := e.Header.ContentType()
		if t == "" {
			t = "text/plain"
		}
		if t != "text/plain" && t != "text/html" {
			return nil
		}
		if disp, _, _ := e.Header.ContentDisposition(); disp == "attachment" {
			return nil
		}
		b, _ := io.ReadAll(io.LimitReader(e.Body, showTextLimit))
		s := validUTF8(string(b))
		if t == "text/plain" {
			plain = append(plain, s)
		} else {
			html = append(html, collapseBlankLines(stdhtml.UnescapeString(stripTags(blockBreaks(s)))))
		}
		return nil
	})
	if len(plain) > 0 {
		return h, strings.Join(plain, "\n")
	}
	return h, strings.Join(html, "\n")
}

// collapseBlankLines trims each line of text reduced from HTML and keeps
// at most one blank line in a row.
func collapseBlankLines(s string) string {
	var out []string
	blank := true
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, line)
	}
	return strings.TrimSpace(strings.Join(out, "\n")) + "\n"
}

// rawBody is what follows a message's header (the first empty line).
func rawBody(raw []byte) []byte {
	end := -1
	for _, sep := range []string{"\n\n", "\r\n\r\n"} {
		if i := bytes.Index(raw, []byte(sep)); i >= 0 && (end < 0 || i+len(sep) < end) {
			end = i + len(sep)
		}
	}
	if end < 0 {
		return nil
	}
	return raw[end:]
}

// blockBreaks puts a line end before each tag of HTML that starts or ends
// a block (a paragraph, a heading, a line break ...), so that the text
// stripTags leaves keeps the lines apart.
func blockBreaks(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/32)
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 || i+1 >= len(s) {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name := strings.TrimPrefix(s[i+1:min(len(s), i+13)], "/")
		if n := strings.IndexAny(name, " \t\r\n/>"); n >= 0 {
			name = name[:n]
		}
		if blockTags[strings.ToLower(name)] {
			if strings.HasPrefix(s[i+1:], "/") || strings.EqualFold(name, "br") {
				b.WriteString("\n")
			} else {
				b.WriteString("\n\n")
			}
		}
		b.WriteByte('<')
		s = s[i+1:]
	}
}

var blockTags = map[string]bool{
	"p": true, "br": true, "div": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"li": true, "tr": true, "table": true, "ul": true, "ol": true, "blockquote": true, "pre": true, "hr": true,
}
