package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/maildir"
)

// FuzzMboxrd: any bytes, as one message among others in an mbox with any
// flags and keywords, read back identical, with their flags, keywords
// and internal date; the mbox has no line "From " but the From_ lines.
func FuzzMboxrd(f *testing.F) {
	for _, s := range []string{
		"", "\n", "From x", "From \n", ">From \n", ">>From a\nFrom b\n", "a\n\nFrom b\n\n",
		"no newline at the end", "\r\n\r\nFrom x\r\n", ">From", "\n\n\n", "Status: RO\n\nbody\n",
		"X-Postfach-Export: v=1; added=0; flags=-; eol=yes; sha256=00\n\nx",
		strings.Repeat(">", 200) + "From x\n" + strings.Repeat(">", 61) + "From y\n" + strings.Repeat(">", 60) + "Fro\n",
		strings.Repeat("x", 200) + "\n\n" + strings.Repeat(">", 64) + "\n" + strings.Repeat(">", 63) + "From",
	} {
		f.Add([]byte(s), uint8(0), "")
		f.Add([]byte(s), uint8(0x3f), "$Label1 foo%bar")
	}
	f.Fuzz(func(t *testing.T, raw []byte, flags uint8, kws string) {
		fl := maildir.Flags(flags) & 0x3f
		var keywords []string
		for _, k := range strings.Fields(kws) {
			if k != "$Forwarded" {
				keywords = append(keywords, k)
			}
		}
		date := time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)
		msgs := [][]byte{[]byte("From a\nb\n"), raw, raw, []byte("last")}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		for _, m := range msgs {
			if err := writeMboxMessage(w, m, fl, keywords, date); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		froms := 0
		for _, l := range strings.SplitAfter(buf.String(), "\n") {
			if strings.HasPrefix(l, "From ") {
				froms++
			}
		}
		if froms != len(msgs) {
			t.Fatalf("%d lines start with \"From \" in an mbox of %d messages", froms, len(msgs))
		}
		// The buffer of 64 bytes reads most lines in pieces.
		for _, size := range []int{64 << 10, 64} {
			r := newMboxReaderSize(bytes.NewReader(buf.Bytes()), size)
			for i, want := range msgs {
				var got bytes.Buffer
				m, err := r.next(&got)
				if err != nil {
					t.Fatalf("buffer %d, message %d: %v", size, i, err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("buffer %d, message %d: read back %q, wrote %q", size, i, got.Bytes(), want)
				}
				if m.Size != int64(len(want)) || m.Sum != sha256.Sum256(want) || m.Sum != m.SHA256 {
					t.Fatalf("buffer %d, message %d: size %d, SHA-256 %x, header %x", size, i, m.Size, m.Sum, m.SHA256)
				}
				if !m.Ours || m.Flags != fl || !slices.Equal(m.Keywords, keywords) || !m.Date.Equal(date) {
					t.Fatalf("message %d: flags %v keywords %q date %v; wrote %v %q %v", i, m.Flags, m.Keywords, m.Date, fl, keywords, date)
				}
			}
			if _, err := r.next(io.Discard); err != io.EOF {
				t.Fatalf("after the last message: %v", err)
			}
		}
	})
}

// TestMboxForeignTools: what other tools read of an exported message:
// the From_ line with the Return-Path's address, Status/X-Status/
// X-Keywords, and mboxrd quoting.
func TestMboxForeignTools(t *testing.T) {
	raw := "Return-Path: <bounce@example.org>\nSubject: x\n\nFrom here\n>From there\nend"
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	date := time.Date(2023, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if err := writeMboxMessage(w, []byte(raw), maildir.FlagSeen|maildir.FlagFlagged|maildir.FlagAnswered|maildir.FlagPassed, []string{"work"}, date); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	lines := strings.Split(buf.String(), "\n")
	want := []string{
		"From bounce@example.org Mon Jan  2 02:04:05 2023",
		"", // X-Postfach-Export, checked below
		"Status: RO",
		"X-Status: AF",
		"X-Keywords: $Forwarded work",
		"Return-Path: <bounce@example.org>",
		"Subject: x",
		"",
		">From here",
		">>From there",
		"end",
		"",
		"",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %q", lines)
	}
	for i, l := range want {
		if i == 1 {
			if !strings.HasPrefix(lines[i], "X-Postfach-Export: v=1; added=3; flags=FPRS; eol=no; sha256=") {
				t.Errorf("line 2: %q", lines[i])
			}
			continue
		}
		if lines[i] != l {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], l)
		}
	}
}
