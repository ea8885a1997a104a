package clienttest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Exec runs IMAP command lines (session syntax without the connection
// prefix: "a1 SELECT INBOX") on one connection to t and returns the
// transcript; a tagged NO or BAD is an error.
func Exec(ctx context.Context, t Target, lines ...string) (*Transcript, error) {
	var b strings.Builder
	b.WriteString("# Exec\n")
	for _, l := range lines {
		b.WriteString("A: " + l + "\n")
	}
	s, err := ParseSession("exec", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	tr, err := RunSession(ctx, t, s)
	if err != nil {
		return nil, err
	}
	for _, r := range tr.Records {
		if r.Err != "" {
			return tr, fmt.Errorf("clienttest: %s: %s", r.Step.Text, r.Err)
		}
		if n := len(r.Responses); n > 0 {
			last := string(r.Responses[n-1])
			tag, _, _ := strings.Cut(r.Step.Text, " ")
			if strings.HasPrefix(last, tag+" NO") || strings.HasPrefix(last, tag+" BAD") {
				return tr, fmt.Errorf("clienttest: %s: %s", r.Step.Text, last)
			}
		}
	}
	return tr, nil
}

var messageIDRE = regexp.MustCompile(`(?i)Message-ID:\s*<([^>\r\n]*)>`)

// ServerFlags returns the flags of every message in folder (its name as
// sent on the wire, modified UTF-7), keyed by Message-ID, each set sorted
// and rendered "(\Flagged \Seen)".
func ServerFlags(ctx context.Context, t Target, folder string) (map[string]string, error) {
	tr, err := Exec(ctx, t, "f1 EXAMINE "+quoteIMAP(folder), "f2 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, resp := range tr.Records[1].Responses {
		line := string(resp)
		_, data, ok := strings.Cut(line, " FETCH ")
		if !ok {
			continue
		}
		toks, err := tokenizeAll([]byte(data))
		if err != nil || len(toks) != 1 {
			return nil, fmt.Errorf("clienttest: cannot parse %q", line)
		}
		var id, flags string
		l := toks[0].list
		for i := 0; i+1 < len(l); i += 2 {
			switch k := strings.ToUpper(l[i].s); {
			case k == "FLAGS":
				flags = renderFlags(l[i+1])
			case strings.HasPrefix(k, "BODY["):
				if m := messageIDRE.FindStringSubmatch(l[i+1].s); m != nil {
					id = m[1]
				}
			}
		}
		out[id] = flags
	}
	return out, nil
}
