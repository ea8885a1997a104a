package index

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 charsets
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// ParseHeader decodes the index's header fields from a raw header block
// (the bytes up to and including the blank line). It never fails: a
// malformed header yields whatever fields could be read.
func ParseHeader(raw []byte) Header {
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil && th.Len() == 0 {
		return Header{}
	}
	h := mail.Header{Header: message.Header{Header: th}}
	var out Header
	out.MessageID = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	if d, err := h.Date(); err == nil {
		out.Date = d
	}
	out.Subject = decodeText(h.Get("Subject"))
	out.From = addresses(h, "From")
	out.To = addresses(h, "To")
	out.Cc = addresses(h, "Cc")
	return out
}

var wordDecoder = &mime.WordDecoder{CharsetReader: message.CharsetReader}

func decodeText(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		s = d
	}
	return validUTF8(s)
}

func addresses(h mail.Header, key string) string {
	if list, err := h.AddressList(key); err == nil && len(list) > 0 {
		parts := make([]string, len(list))
		for i, a := range list {
			parts[i] = validUTF8(a.String())
			if a.Name != "" {
				parts[i] = validUTF8(a.Name + " <" + a.Address + ">")
			}
		}
		return strings.Join(parts, ", ")
	}
	return decodeText(h.Get(key))
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

var tagRE = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)

// ExtractText returns up to limit bytes of decoded text from the text/plain
// and text/html parts of a message, for the full-text index. Other parts are
// skipped without being decoded; memory stays bounded by limit.
func ExtractText(r io.Reader, limit int) string {
	ent, err := message.Read(r)
	if ent == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		return ""
	}
	var b strings.Builder
	_ = ent.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return nil
		}
		if b.Len() >= limit {
			return io.EOF
		}
		t, _, _ := part.Header.ContentType()
		if t != "text/plain" && t != "text/html" && t != "" {
			return nil
		}
		if part.MultipartReader() != nil {
			return nil
		}
		if disp, _, _ := part.Header.ContentDisposition(); disp == "attachment" {
			return nil
		}
		chunk, _ := io.ReadAll(io.LimitReader(part.Body, int64(limit-b.Len())))
		s := string(chunk)
		if t == "text/html" {
			s = tagRE.ReplaceAllString(s, " ")
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(validUTF8(s))
		return nil
	})
	return b.String()
}
