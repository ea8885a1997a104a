package index

import (
	"bufio"
	"bytes"
	"mime"
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
