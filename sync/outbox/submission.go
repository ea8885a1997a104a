// PLACEHOLDER: replaced by part Q at merge

// Package outbox sends queued mail (placeholder: only ReadSubmission).
package outbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// Submission is a message read for queueing: Bcc removed, addresses
// of its header fields.
type Submission struct {
	From        string    // address of From (or Sender) field; "" if none
	To, Cc, Bcc []string  // addresses of To, Cc, Bcc (and Resent-*)
	Body        io.Reader // the whole message without Bcc/Resent-Bcc fields
}

// ReadSubmission reads the header of a message from r (CRLF or LF line
// ends). A malformed header is an error naming the line.
func ReadSubmission(r io.Reader) (*Submission, error) {
	br := bufio.NewReader(r)
	var fields []string
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF {
				break
			}
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, fmt.Errorf("outbox: header line %d: continuation without a field", n)
			}
			fields[len(fields)-1] += "\r\n" + line
			continue
		}
		if i := strings.IndexByte(line, ':'); i <= 0 || strings.ContainsAny(line[:i], " \t") {
			return nil, fmt.Errorf("outbox: header line %d: not a header field: %q", n, line)
		}
		fields = append(fields, line)
	}
	s := &Submission{}
	var sender string
	var head bytes.Buffer
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		addrs := func() []string {
			list, _ := mail.ParseAddressList(strings.TrimSpace(strings.ReplaceAll(value, "\r\n", "")))
			var out []string
			for _, a := range list {
				out = append(out, a.Address)
			}
			return out
		}
		switch strings.ToLower(name) {
		case "bcc", "resent-bcc":
			s.Bcc = append(s.Bcc, addrs()...)
			continue
		case "from":
			if a := addrs(); len(a) > 0 && s.From == "" {
				s.From = a[0]
			}
		case "sender":
			if a := addrs(); len(a) > 0 {
				sender = a[0]
			}
		case "to", "resent-to":
			s.To = append(s.To, addrs()...)
		case "cc", "resent-cc":
			s.Cc = append(s.Cc, addrs()...)
		}
		head.WriteString(f + "\r\n")
	}
	if s.From == "" {
		s.From = sender
	}
	head.WriteString("\r\n")
	s.Body = io.MultiReader(&head, br)
	return s, nil
}
