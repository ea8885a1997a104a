package outbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/charset"
)

// maxHeader is the most of a submitted message's header ReadSubmission
// reads (the body is streamed).
const maxHeader = 1 << 20

// Submission is a message read for queueing: Bcc removed, addresses
// of its header fields.
type Submission struct {
	From        string    // address of From (or Sender) field; "" if none
	To, Cc, Bcc []string  // addresses of To, Cc, Bcc (and Resent-*)
	Body        io.Reader // the whole message without Bcc/Resent-Bcc fields; header parsed, body streamed from r
}

// ReadSubmission reads the header of a message from r (CRLF or LF
// line ends; the stored message uses CRLF: Body gives the header's
// lines with CRLF, then the body as r has it). A malformed header is an
// error naming the line. A first line "From " (an mbox separator, as
// some programs hand sendmail) is dropped.
func ReadSubmission(r io.Reader) (*Submission, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		hdr    bytes.Buffer
		fields []field
		n      int // header bytes read
	)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("message header: line %d is longer than %d bytes", lineNo, br.Size())
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("message header: line %d: %w", lineNo, err)
		}
		if n += len(line); n > maxHeader {
			return nil, fmt.Errorf("message header: longer than %d bytes (line %d)", maxHeader, lineNo)
		}
		text := strings.TrimRight(string(line), "\r\n")
		eof := err == io.EOF
		if text == "" {
			if len(line) == 0 && lineNo == 1 {
				return nil, errors.New("message header: the message is empty")
			}
			break // end of the header (or of a message without a body)
		}
		switch {
		case lineNo == 1 && strings.HasPrefix(text, "From "):
			// mbox separator
		case text[0] == ' ' || text[0] == '\t':
			if len(fields) == 0 {
				return nil, fmt.Errorf("message header: line %d continues no field: %q", lineNo, clip(text))
			}
			f := &fields[len(fields)-1]
			f.lines = append(f.lines, text)
		default:
			name, _, ok := strings.Cut(text, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") || !printableASCII(name) {
				return nil, fmt.Errorf("message header: line %d is not a header field: %q", lineNo, clip(text))
			}
			fields = append(fields, field{name: name, lines: []string{text}})
		}
		if eof {
			break
		}
	}
	s := &Submission{}
	var from, sender string
	for _, f := range fields {
		key := strings.ToLower(f.name)
		var dst *[]string
		switch key {
		case "to", "resent-to":
			dst = &s.To
		case "cc", "resent-cc":
			dst = &s.Cc
		case "bcc", "resent-bcc":
			dst = &s.Bcc
		case "from", "sender":
		default:
			writeField(&hdr, f)
			continue
		}
		addrs, err := parseAddrs(f.value())
		if err != nil {
			return nil, fmt.Errorf("message header: %s field: %w", f.name, err)
		}
		switch {
		case key == "from" && from == "" && len(addrs) > 0:
			from = addrs[0]
		case key == "sender" && len(addrs) > 0:
			sender = addrs[0]
		case dst != nil:
			*dst = append(*dst, addrs...)
		}
		if dst != &s.Bcc {
			writeField(&hdr, f)
		}
	}
	s.From = from
	if s.From == "" {
		s.From = sender
	}
	hdr.WriteString("\r\n")
	s.Body = io.MultiReader(&hdr, br)
	return s, nil
}

// field is one header field as read: its lines, without line ends.
type field struct {
	name  string
	lines []string
}

func (f field) value() string {
	v := strings.Join(f.lines, " ")
	return strings.TrimSpace(v[len(f.name)+1:])
}

func writeField(b *bytes.Buffer, f field) {
	for _, l := range f.lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
}

var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}

// parseAddrs returns the addresses of an address-list field (groups'
// members included; an empty field or group gives none).
func parseAddrs(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	list, err := addrParser.ParseList(v)
	if err != nil {
		return nil, fmt.Errorf("%v in %q", err, clip(v))
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// clip shortens s for an error message and keeps control characters out.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
