package migrate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Fuzz targets for the identity of messages in a migration: the key, the
// Message-ID as each side reads it, and the matching of source against
// destination messages.

// FuzzIdKey: two identities are one exactly when both have the same
// Message-ID, or neither has one and their dates fall in the same second
// (an unknown date counts as second 0).
func FuzzIdKey(f *testing.F) {
	f.Add("a@x", int64(1), "a@x", int64(2), false, false)
	f.Add("", int64(0), "", int64(0), true, false)
	f.Add("d:5", int64(5), "", int64(5), false, false)
	f.Fuzz(func(t *testing.T, id1 string, sec1 int64, id2 string, sec2 int64, zero1, zero2 bool) {
		date := func(sec int64, zero bool) (time.Time, int64) {
			if zero {
				return time.Time{}, 0
			}
			sec %= 1 << 40 // years -32000..36000: time.Time keeps them exactly
			return time.Unix(sec, 999_999_999), sec
		}
		d1, s1 := date(sec1, zero1)
		d2, s2 := date(sec2, zero2)
		same := idKey(id1, d1) == idKey(id2, d2)
		want := id1 != "" && id1 == id2 || id1 == "" && id2 == "" && s1 == s2
		if same != want {
			t.Fatalf("idKey(%q, %v) = %q, idKey(%q, %v) = %q", id1, d1, idKey(id1, d1), id2, d2, idKey(id2, d2))
		}
	})
}

// messageIDFields is what a server answers to BODY.PEEK[HEADER.FIELDS
// (Message-ID)]: the Message-ID fields of the header, continuation lines
// included, as sent (CRLF), then an empty line.
func messageIDFields(lines []string) string {
	var sb strings.Builder
	in := false
	for _, l := range lines {
		if l[0] == ' ' || l[0] == '\t' {
			if in {
				sb.WriteString(l + "\r\n")
			}
			continue
		}
		name, _, _ := strings.Cut(l, ":")
		in = strings.EqualFold(name, "Message-ID")
		if in {
			sb.WriteString(l + "\r\n")
		}
	}
	return sb.String() + "\r\n"
}

// FuzzMessageIDBothSides: the Message-ID that identifies a message is the
// same read from the stored copy's whole header (LF line ends, as the
// source's index reads it) and from the destination server's answer
// holding only the Message-ID fields (CRLF): else a copied message looks
// missing and is copied again on every run.
func FuzzMessageIDBothSides(f *testing.F) {
	f.Add("Subject: x\nMessage-ID: <a@b>\nFrom: y", "")
	f.Add("Message-Id:\n <folded@x>\nmessage-id: <second@x>", "x")
	f.Add("X-Message-ID: <no@x>\nMessage-ID:<tight@x> (comment)", "")
	f.Add("Message-ID: a@b c@d\nTo: x", "body")
	f.Fuzz(func(t *testing.T, hdr, body string) {
		// A well-formed header: field lines "Name: value" with a token
		// name, and continuation lines; others are left out.
		var lines []string
		for _, l := range strings.Split(hdr, "\n") {
			l = strings.TrimRight(l, "\r")
			name, _, ok := strings.Cut(l, ":")
			cont := l != "" && (l[0] == ' ' || l[0] == '\t') && len(lines) > 0 && strings.TrimSpace(l) != ""
			if strings.ContainsAny(l, "\r\x00") || !cont && (!ok || !isToken(name)) {
				continue
			}
			lines = append(lines, l)
		}
		stored := strings.Join(lines, "\n") + "\n\n" + body
		if len(lines) == 0 {
			stored = "\n" + body
		}
		fields := messageIDFields(lines)
		src := index.ParseHeader([]byte(stored)).MessageID
		dst := index.ParseHeader([]byte(fields)).MessageID
		d := time.Unix(1e9, 0)
		if idKey(src, d) != idKey(dst, d) {
			t.Fatalf("stored header %q has Message-ID %q; the server's fields %q give %q", stored, src, fields, dst)
		}
	})
}

// isToken reports whether s is a header field name (RFC 5322 ftext).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// FuzzMatch: matching source against destination messages pairs each
// matched source message with its own destination message of the same
// identity (Message-ID or date, and a size: the recorded one, or the CRLF
// size when larger); a missing one has none left over; the counts add up.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 2, 2}, []byte{0, 0, 1, 3})
	f.Add([]byte{5, 9, 5, 9}, []byte{5, 13, 5})
	f.Fuzz(func(t *testing.T, srcB, destB []byte) {
		ids := []idHash{hashID("a", time.Time{}), hashID("b", time.Time{}), hashID("", time.Unix(7, 0)), hashID("", time.Time{})}
		var src []srcRec
		var crlf []int64
		for i, b := range srcB {
			s := srcRec{id: ids[b&3], size: int64(100 + b>>2&3), flags: maildir.Flags(b >> 4 & 1), date: int64(b >> 5 & 1), dated: true}
			c := s.size + int64(b>>6) - 1 // one less, the same, or one or two more
			if i%5 == 4 {
				c = -1 // cannot be read
			}
			src = append(src, s)
			crlf = append(crlf, c)
		}
		var dest []destRec
		for _, b := range destB {
			dest = append(dest, destRec{id: ids[b&3], size: int64(100 + b>>2&3), flags: maildir.Flags(b >> 4 & 1), date: int64(b >> 5 & 1)})
		}
		calls := 0
		r := match(src, dest, func(i int) (int64, error) {
			calls++
			if crlf[i] < 0 {
				return 0, errors.New("unreadable")
			}
			return crlf[i], nil
		})
		matched := len(src) - len(r.missing)
		used, bytes := 0, int64(0)
		for _, d := range dest {
			bytes += d.size
			if d.used {
				used++
			}
		}
		if used != matched || r.extra != len(dest)-matched || r.dest != len(dest) || r.bytes != bytes || r.differ > matched || r.differ < 0 {
			t.Fatalf("match: %d of %d matched, %d used, extra %d, dest %d, bytes %d, differ %d", matched, len(src), used, r.extra, r.dest, r.bytes, r.differ)
		}
		for _, i := range r.missing {
			s := src[i]
			for _, d := range dest {
				if d.used || d.id != s.id {
					continue
				}
				if d.size == s.size || crlf[i] > s.size && d.size == crlf[i] {
					t.Fatalf("source %+v is missing, but destination %+v is left over", s, d)
				}
			}
		}
		// Every used destination message has a source message of its
		// identity, and there are no more of them per identity than sources.
		for _, d := range dest {
			if !d.used {
				continue
			}
			n, m := 0, 0
			for i, s := range src {
				if s.id == d.id && (s.size == d.size || crlf[i] > s.size && crlf[i] == d.size) {
					n++
				}
			}
			for _, d2 := range dest {
				if d2.used && d2.id == d.id && d2.size == d.size {
					m++
				}
			}
			if m > n {
				t.Fatalf("%d destination copies of %x/%d used for %d source messages", m, d.id, d.size, n)
			}
		}
	})
}
